"""POST /auth/reauth: the user of a live session proves who they are again, and gets a new
pair for the same session whose access token says so (``auth_time`` now, ``amr`` pwd);
throttled as login, one atomic rotation in the store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from flask import Flask
from helpers import Api, Clock, Users, bearer, session_hash, sid_of
from werkzeug.test import TestResponse

from flask_dualtoken import jwt_required, signals
from flask_dualtoken.limits import MAX_BODY_BYTES
from flask_dualtoken.state import get_state
from flask_dualtoken.store import ClientInfo, SessionStore
from flask_dualtoken.tokens import new_id

CSRF = "__Host-dualtoken_csrf"
PAIR_KEYS = {"access_token", "refresh_token", "token_type", "expires_in", "refresh_expires_in"}


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def stored(store: SessionStore, pair: dict[str, Any]) -> dict[str, str]:
    return session_hash(store, claims(pair["access_token"])["sub"], sid_of(pair))


def login_attempt(api: Api, username: str = "alice", password: str = "wrong") -> TestResponse:
    return api.client.post("/auth/login", json={"username": username, "password": password})


# -- the new pair ---------------------------------------------------------------------------


def test_reauth_answers_a_new_pair_for_the_same_session_with_auth_time_now(
    api: Api, store: SessionStore, clock: Clock
) -> None:
    clock.align()
    pair = api.login()
    before = stored(store, pair)
    clock.advance(1.2)
    response = api.reauth(pair)
    assert response.status_code == 200, response.json
    assert response.headers["Cache-Control"] == "no-store"
    new: dict[str, Any] = response.json  # type: ignore[assignment]
    assert set(new) == PAIR_KEYS  # the shape of a login or reissue answer
    access, refresh = claims(new["access_token"]), claims(new["refresh_token"])
    old = claims(pair["access_token"])
    assert access["sid"] == refresh["sid"] == old["sid"]
    assert access["auth_time"] == access["iat"] > old["auth_time"]
    assert access["amr"] == ["pwd"]
    assert access["rti"] == refresh["jti"] != claims(pair["refresh_token"])["jti"]
    after = stored(store, new)
    assert after["auth"] == str(access["auth_time"])
    assert after["gen"] == str(int(before["gen"]) + 1) == str(refresh["gen"])
    assert after["cur"] == refresh["jti"]
    assert after["prev"] == before["cur"]
    assert after["created"] == before["created"]  # the same session, not a new one
    assert api.get("/me", new["access_token"]).status_code == 200
    assert [s["sid"] for s in api.get_json("/auth/sessions", new)["sessions"]] == [sid_of(pair)]


def test_a_reauthenticated_token_passes_a_route_that_needs_a_fresh_login(
    make_app: Callable[..., Flask], clock: Clock
) -> None:
    app = make_app()

    @app.post("/sensitive")
    @jwt_required(fresh=1)
    def sensitive() -> dict[str, bool]:
        return {"ok": True}

    api = Api(app)
    clock.align()
    pair = api.login()
    clock.advance(1.5)
    refused = api.client.post("/sensitive", headers=bearer(pair["access_token"]))
    assert refused.json["error"] == "insufficient_user_authentication"  # type: ignore[index]
    new = api.reauth(pair).json
    assert new is not None
    assert api.client.post("/sensitive", headers=bearer(new["access_token"])).status_code == 200


def test_the_new_refresh_token_reissues_and_keeps_the_new_auth_time(
    api: Api, clock: Clock
) -> None:
    clock.align()
    pair = api.login()
    clock.advance(1.2)
    new = api.reauth(pair).json
    assert new is not None
    clock.advance(1.2)
    later = api.reissue(new).json
    assert later is not None
    assert claims(later["access_token"])["auth_time"] == claims(new["access_token"])["iat"]
    assert claims(later["access_token"])["amr"] == ["pwd"]


# -- the refresh token it replaced ------------------------------------------------------------


def test_a_reissue_with_the_old_refresh_token_within_grace_gets_the_reauthenticated_pair(
    api: Api,
) -> None:
    pair = api.login()
    new = api.reauth(pair).json
    replayed = api.reissue(pair)  # another tab, with the pair from before
    assert replayed.status_code == 200
    assert replayed.json == new  # byte for byte, fresh auth_time included


def test_the_old_refresh_token_after_grace_is_reuse(
    make_app: Callable[..., Flask], clock: Clock
) -> None:
    api = Api(make_app(DUALTOKEN_REUSE_GRACE=1))
    pair = api.login()
    new = api.reauth(pair).json
    assert new is not None
    clock.advance(1.3)
    assert api.reissue(pair).json["error"] == "refresh_token_reused"  # type: ignore[index]
    assert api.reissue(new).json["error"] == "session_revoked"  # type: ignore[index]


def test_a_reissue_that_rotated_just_before_still_works_within_grace(api: Api) -> None:
    pair = api.login()
    rotated = api.reissue(pair).json  # one tab reissued...
    assert rotated is not None
    new = api.reauth(pair).json  # ...and another re-authenticated with the older AT
    assert new is not None
    assert api.reissue(rotated).json == new  # the first tab catches up within grace


# -- throttled exactly as login -----------------------------------------------------------


def test_wrong_passwords_are_counted_like_failed_logins_then_429_with_retry_after(
    api: Api, store: SessionStore
) -> None:
    pair = api.login()
    before = stored(store, pair)
    for _ in range(5):
        response = api.reauth(pair, password="wrong")
        assert response.status_code == 401
        assert response.json == {
            "error": "invalid_credentials",
            "message": "The username or password is incorrect.",
        }
    throttled = api.reauth(pair)  # the right password, refused unchecked
    assert throttled.status_code == 429
    assert throttled.json["error"] == "too_many_attempts"  # type: ignore[index]
    assert 290 <= int(throttled.headers["Retry-After"]) <= 300
    assert login_attempt(api, password="correct horse").status_code == 429  # one budget
    assert stored(store, pair) == before  # nothing changed
    assert api.reissue(pair).status_code == 200


def test_failed_logins_count_at_reauth_too(api: Api) -> None:
    pair = api.login()
    for _ in range(5):
        assert login_attempt(api).status_code == 401
    assert api.reauth(pair).status_code == 429


def test_no_password_is_checked_while_throttled(
    make_app: Callable[..., Flask], users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real = users.authenticate

    def authenticate(username: str, password: str) -> Any:
        checked.append(username)
        return real(username, password)

    monkeypatch.setattr(users, "authenticate", authenticate)
    api = Api(make_app())
    pair = api.login()
    for _ in range(5):
        api.reauth(pair, password="wrong")
    assert len(checked) == 6
    assert api.reauth(pair).status_code == 429
    assert len(checked) == 6


def test_a_success_gives_back_its_own_attempt_and_clears_no_failure(api: Api) -> None:
    pair = api.login()
    for _ in range(4):
        api.reauth(pair, password="wrong")
    for _ in range(3):
        response = api.reauth(pair)
        assert response.status_code == 200
        pair = response.json  # type: ignore[assignment]
    assert api.reauth(pair, password="wrong").status_code == 401  # the fifth failure
    assert api.reauth(pair).status_code == 429


def test_the_address_limit_applies_too(make_app: Callable[..., Flask]) -> None:
    api = Api(make_app(DUALTOKEN_LOGIN_MAX_ATTEMPTS=0, DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=3))
    pair = api.login()
    for name in ("carol", "dave", "erin"):
        assert api.reauth(pair, username=name).status_code == 401
    assert api.reauth(pair).status_code == 429


# -- another user's credentials, a wrong password ------------------------------------------


def test_another_users_credentials_are_invalid_counted_and_change_nothing(
    app: Flask, api: Api, store: SessionStore
) -> None:
    pair = api.login()  # alice
    before = stored(store, pair)
    failed: list[dict[str, Any]] = []
    with signals.login_failed.connected_to(lambda sender, **kw: failed.append(kw), app):
        for _ in range(5):
            response = api.reauth(pair, username="bob")  # bob's right password
            assert response.status_code == 401
            assert response.json["error"] == "invalid_credentials"  # type: ignore[index]
            assert "WWW-Authenticate" not in response.headers
    assert failed == [{"username": "bob", "ip": "127.0.0.1"}] * 5
    assert stored(store, pair) == before
    assert api.reauth(pair, username="bob").status_code == 429  # bob's budget is spent
    assert login_attempt(api, "bob", "correct horse").status_code == 429
    assert api.reauth(pair).status_code == 200  # alice's own is not


def test_an_unknown_username_is_invalid_credentials(api: Api) -> None:
    pair = api.login()
    for name in ("nobody", "ålice", "ユーザー", "alice "):
        response = api.reauth(pair, username=name)
        assert response.json["error"] == "invalid_credentials", name  # type: ignore[index]


# -- sessions that ended, tokens that do not fit ---------------------------------------------


@pytest.mark.parametrize("mode", ["push", "strict", "expiry"])
def test_an_ended_session_cannot_reauthenticate(
    make_app: Callable[..., Flask], store: SessionStore, mode: str
) -> None:
    api = Api(make_app(DUALTOKEN_REVOCATION=mode))
    pair, other = api.login(), api.login()
    ended = api.client.delete(
        f"/auth/sessions/{sid_of(pair)}", headers=bearer(other["access_token"])
    )
    assert ended.status_code == 204
    for _ in range(6):  # the right password: no attempt is kept, whoever refuses
        response = api.reauth(pair)
        assert response.status_code == 401
        assert response.json["error"] == "session_revoked"  # type: ignore[index]
    assert api.reissue(pair).json["error"] == "session_revoked"  # type: ignore[index]
    assert api.reauth(other).status_code == 200


def test_a_session_ended_by_logout_all_cannot_reauthenticate(api: Api) -> None:
    pair = api.login()
    api.client.post("/auth/logout-all", headers=bearer(pair["access_token"]))
    assert api.reauth(pair).json["error"] == "session_revoked"  # type: ignore[index]


def test_an_expired_access_token_is_token_expired(
    make_app: Callable[..., Flask], clock: Clock
) -> None:
    api = Api(make_app(DUALTOKEN_ACCESS_EXPIRES=1))
    pair = api.login()
    clock.advance(2.1)
    assert api.reauth(pair).json["error"] == "token_expired"  # type: ignore[index]


def test_a_lapsed_refresh_token_is_not_revived_by_a_password(
    make_app: Callable[..., Flask], clock: Clock
) -> None:
    api = Api(make_app(DUALTOKEN_ACCESS_EXPIRES=30, DUALTOKEN_REFRESH_EXPIRES=1))
    clock.align()
    pair = api.login()
    clock.advance(1.2)  # the refresh token has lapsed; the access token has not
    response = api.reauth(pair)
    assert response.status_code == 401
    assert response.json["error"] == "refresh_token_expired"  # type: ignore[index]


def test_a_refresh_token_is_no_access_token(api: Api) -> None:
    pair = api.login()
    fake = {"access_token": pair["refresh_token"]}
    assert api.reauth(fake).json["error"] == "token_invalid"  # type: ignore[index]


def test_no_token_is_token_missing(api: Api) -> None:
    response = api.client.post(
        "/auth/reauth", json={"username": "alice", "password": "correct horse"}
    )
    assert response.json["error"] == "token_missing"  # type: ignore[index]


BAD_BODIES: list[dict[str, Any]] = [
    {"data": "username=alice", "content_type": "application/x-www-form-urlencoded"},
    {"data": "{not json", "content_type": "application/json"},
    {"data": "[" * 5_000 + "]" * 5_000, "content_type": "application/json"},
    {"json": ["alice", "correct horse"]},
    {"json": {}},
    {"json": {"username": "alice"}},
    {"json": {"password": "correct horse"}},
    {"json": {"username": "", "password": "correct horse"}},
    {"json": {"username": 1, "password": "correct horse"}},
    {"json": {"username": ["alice"], "password": "correct horse"}},
    {"json": {"username": "alice", "password": None}},
    {"json": {"username": "alice", "password": 12345}},
    {"json": {"username": "a" * 257, "password": "x"}},
    {"json": {"username": "alice", "password": "x" * 1025}},
    {"json": {"username": "ali\nce", "password": "x"}},
    {"json": {"username": "alice\u202e", "password": "x"}},
    {"json": {"username": "\ud800", "password": "x"}},
    {"json": {"username": "alice", "password": "\udfff"}},
]


@pytest.mark.parametrize("kwargs", BAD_BODIES)
def test_a_malformed_body_is_400_and_costs_no_attempt(api: Api, kwargs: dict[str, Any]) -> None:
    pair = api.login()
    for _ in range(6):
        response = api.client.post("/auth/reauth", headers=bearer(pair["access_token"]), **kwargs)
        assert response.status_code == 400, response.json
        assert response.json["error"] == "invalid_request"  # type: ignore[index]
    assert api.reauth(pair).status_code == 200


def test_an_oversized_body_is_413(api: Api) -> None:
    pair = api.login()
    body = {"username": "alice", "password": "x" * MAX_BODY_BYTES}
    response = api.client.post("/auth/reauth", headers=bearer(pair["access_token"]), json=body)
    assert response.status_code == 413
    assert response.json["error"] == "request_too_large"  # type: ignore[index]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_another_method_is_a_json_405(api: Api, method: str) -> None:
    response = api.client.open("/auth/reauth", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST, OPTIONS"


# -- where the pair goes: bearer clients, browsers -------------------------------------------


def browser_login(client: Any, **headers: str) -> dict[str, Any]:
    response = client.post(
        "/auth/login", json={"username": "alice", "password": "correct horse"}, headers=headers
    )
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


def csrf_of(client: Any) -> dict[str, str]:
    cookie = client.get_cookie(CSRF)
    return {"X-CSRF-Token": cookie.value if cookie is not None else ""}


def access_cookie(client: Any) -> str:
    return str(client.get_cookie("__Host-dualtoken_at").value)


CREDENTIALS = {"username": "alice", "password": "correct horse"}


def test_in_cookie_mode_it_needs_the_csrf_header_and_answers_in_cookies(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION="cookies")
    store = get_state(app).store
    browser = app.test_client()
    browser_login(browser)
    token = access_cookie(browser)
    sid = claims(token)["sid"]
    before = session_hash(store, "1", sid)
    refused = browser.post("/auth/reauth", json=CREDENTIALS)
    assert refused.status_code == 403
    assert refused.json["error"] == "csrf_failed"
    wrong = browser.post("/auth/reauth", json=CREDENTIALS, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    assert session_hash(store, "1", sid) == before
    response = browser.post("/auth/reauth", json=CREDENTIALS, headers=csrf_of(browser))
    assert response.status_code == 200, response.json
    assert set(response.json) == {"csrf_token", "expires_in", "refresh_expires_in"}
    names = {h.split("=", 1)[0] for h in response.headers.getlist("Set-Cookie")}
    assert names == {"__Host-dualtoken_at", "__Secure-dualtoken_rt", CSRF}
    renewed = claims(access_cookie(browser))
    assert renewed["sid"] == sid and renewed["jti"] != claims(token)["jti"]
    assert renewed["amr"] == ["pwd"]
    assert session_hash(store, "1", sid)["gen"] == "1"
    # The browser's refresh cookie is the new one: a reissue rotates it.
    reissued = browser.post("/auth/reissue", headers=csrf_of(browser))
    assert reissued.status_code == 200
    assert session_hash(store, "1", sid)["gen"] == "2"


def test_in_both_mode_a_bearer_client_gets_json_and_a_browser_cookies(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION="both")
    api = Api(app)
    pair = api.login()
    assert set(api.reauth(pair).json or {}) == PAIR_KEYS
    browser = app.test_client()
    browser_login(browser, **{"X-Token-Transport": "cookies"})
    response = browser.post("/auth/reauth", json=CREDENTIALS, headers=csrf_of(browser))
    assert response.status_code == 200
    assert "refresh_token" not in response.json
    assert any(
        h.startswith("__Secure-dualtoken_rt=") for h in response.headers.getlist("Set-Cookie")
    )


def test_a_page_that_holds_its_access_token_gets_the_refresh_token_in_its_cookie(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION="both", DUALTOKEN_ACCESS_COOKIE=False)
    browser = app.test_client()
    access = browser_login(browser, **{"X-Token-Transport": "cookies"})["access_token"]
    response = browser.post(
        "/auth/reauth", json=CREDENTIALS, headers={**bearer(access), **csrf_of(browser)}
    )
    assert response.status_code == 200
    body = response.json
    assert set(body) == {
        "csrf_token",
        "expires_in",
        "refresh_expires_in",
        "access_token",
        "token_type",
    }
    rt_cookie = browser.get_cookie("__Secure-dualtoken_rt", path="/auth/reissue")
    assert rt_cookie is not None
    assert rt_cookie.value.startswith(body["access_token"] + "~")
    assert browser.post("/auth/reissue", headers=csrf_of(browser)).status_code == 200


# -- audit ----------------------------------------------------------------------------------


def test_a_reauth_sends_its_signal_and_logs_without_a_token(
    app: Flask, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    pair = api.login()
    seen: list[dict[str, Any]] = []
    caplog.set_level(logging.INFO, logger="flask_dualtoken")
    with signals.user_reauthenticated.connected_to(lambda sender, **kw: seen.append(kw), app):
        new = api.reauth(pair).json
    assert new is not None
    assert seen == [{"user_id": "1", "session_id": sid_of(pair), "ip": "127.0.0.1"}]
    assert "user re-authenticated" in caplog.text
    for token in (*pair.values(), *new.values()):
        if isinstance(token, str) and len(token) > 20:
            assert token not in caplog.text
    assert "correct horse" not in caplog.text


# -- the store's step ------------------------------------------------------------------------


def test_a_store_call_run_twice_answers_as_it_did_once(app: Flask, store: SessionStore) -> None:
    """redis-py retries a call once on a dropped connection, which may come after the
    script ran: the second run must not rotate again."""
    sid, jti, new_jti = new_id(), new_id(), new_id()
    client = ClientInfo("::1", "test")
    store.create("1", sid, jti, "{}", "{}", client)
    args = ("1", sid, new_jti, "{}", "{}", client)
    once = store.reauthenticate(*args, amr=("pwd",))
    twice = store.reauthenticate(*args, amr=("pwd",))
    assert once.outcome == twice.outcome == "rotated"
    assert once.grant == twice.grant
    assert session_hash(store, "1", sid)["gen"] == "1"


def test_a_session_that_is_gone_is_refused_as_ended(app: Flask, store: SessionStore) -> None:
    client = ClientInfo()
    result = store.reauthenticate("1", new_id(), new_id(), "{}", "{}", client, amr=("pwd",))
    assert result.outcome == "unknown" and result.grant is None


# -- at the same time ------------------------------------------------------------------------


def at_once(*calls: Callable[[], TestResponse]) -> list[TestResponse]:
    results: list[TestResponse | None] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def test_a_reauth_racing_a_reissue_of_the_same_pair_leaves_one_live_session(
    app: Flask, store: SessionStore
) -> None:
    pair = Api(app).login()
    first, second = Api(app), Api(app)
    reauthed, reissued = at_once(lambda: first.reauth(pair), lambda: second.reissue(pair))
    assert reauthed.status_code == reissued.status_code == 200
    fresh, other = reauthed.json, reissued.json
    assert fresh is not None and other is not None
    if other != fresh:  # the reissue rotated first: its pair is now the predecessor...
        assert stored(store, fresh)["gen"] == "2"
        assert first.reissue(other).json == fresh  # ...and catches up within grace
    # Otherwise the reauth rotated first, and the reissue got its very pair back.
    assert claims(fresh["access_token"])["amr"] == ["pwd"]
    assert first.reissue(fresh).status_code == 200


def test_two_reauths_at_once_both_succeed_and_the_earlier_pair_catches_up(
    app: Flask, store: SessionStore
) -> None:
    pair = Api(app).login()
    first, second = Api(app), Api(app)
    one, two = at_once(lambda: first.reauth(pair), lambda: second.reauth(pair))
    assert one.status_code == two.status_code == 200
    pairs = [one.json, two.json]
    assert pairs[0] != pairs[1]
    session = stored(store, pair)
    assert session["gen"] == "2"
    current = next(p for p in pairs if claims(p["refresh_token"])["jti"] == session["cur"])
    earlier = next(p for p in pairs if p is not current)
    assert claims(earlier["refresh_token"])["jti"] == session["prev"]
    assert first.reissue(earlier).json == current  # within grace: the later pair
    assert login_attempt(first).status_code == 401  # both successes gave their attempts back
