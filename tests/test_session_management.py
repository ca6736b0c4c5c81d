"""Logout everywhere, the session list, revoking one session, and strict mode
(sessions.md 11-12; ASVS 7.4.1-7.4.3)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
from flask import Flask
from helpers import Api, Users, bearer, sid_of

from flask_dualtoken import signals
from flask_dualtoken.store import SessionStore


def dualtoken_of(app: Flask) -> Any:
    return app.extensions["dualtoken_object"]


# -- logout-all ---------------------------------------------------------------------------


def test_logout_all_ends_every_session_of_the_caller_only(api: Api) -> None:
    phone, laptop, tablet = api.login(), api.login(), api.login()
    bob = api.login(username="bob")
    response = api.client.post("/auth/logout-all", headers=bearer(laptop["access_token"]))
    assert response.status_code == 204
    for pair in (phone, laptop, tablet):
        assert api.reissue(pair).json["error"] == "session_revoked"
    assert api.reissue(bob).status_code == 200


def test_a_login_right_after_logout_all_works(api: Api) -> None:
    pair = api.login()
    api.client.post("/auth/logout-all", headers=bearer(pair["access_token"]))
    fresh = api.login()
    assert api.reissue(fresh).status_code == 200
    assert [s["sid"] for s in api.get_json("/auth/sessions", fresh)["sessions"]] == [sid_of(fresh)]


def test_logout_all_needs_a_valid_access_token(api: Api) -> None:
    assert api.client.post("/auth/logout-all").json["error"] == "token_missing"
    assert api.client.post("/auth/logout-all", headers=bearer("x")).status_code == 401


def test_logout_all_ends_every_session_and_leaves_only_short_lived_markers(
    api: Api, store: SessionStore
) -> None:
    pairs = [api.login() for _ in range(20)]
    api.client.post("/auth/logout-all", headers=bearer(pairs[0]["access_token"]))
    assert not store.client.exists(store.index_key("1"))
    hashes = [store.client.hgetall(k) for k in store.client.scan_iter("*:s:*")]
    assert hashes == [{b"uid": b"1", b"revoked": b"logout_all"}] * 20
    assert all(0 < store.client.ttl(k) <= 900 for k in store.client.scan_iter("*:s:*"))
    assert all(api.reissue(p).json["error"] == "session_revoked" for p in pairs)


def test_logins_racing_with_logout_all_are_either_before_or_after(
    make_app: Callable[..., Flask],
) -> None:
    # Eight logins in flight at once would each hold one of the five attempts per window.
    app = make_app(DUALTOKEN_LOGIN_MAX_ATTEMPTS=20)
    api = Api(app)
    first = api.login()
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(9)

    def log_in() -> None:
        client = app.test_client()
        barrier.wait()
        body = client.post(
            "/auth/login", json={"username": "alice", "password": "correct horse"}
        ).json
        results.append(body)

    threads = [threading.Thread(target=log_in) for _ in range(8)]
    for t in threads:
        t.start()
    barrier.wait()
    api.client.post("/auth/logout-all", headers=bearer(first["access_token"]))
    for t in threads:
        t.join()
    live = {s["sid"] for s in api.get_json("/auth/sessions", api.login())["sessions"]}
    for body in results:
        works = api.reissue(body).status_code == 200
        listed = sid_of(body) in live
        assert works == listed, "a session is listed exactly when it still works"


def test_revoke_all_sessions_from_python(app: Flask, api: Api) -> None:
    pairs = [api.login(), api.login()]
    with app.app_context():
        dualtoken_of(app).revoke_all_sessions("1")
        assert dualtoken_of(app).list_sessions("1") == []
    assert all(api.reissue(p).json["error"] == "session_revoked" for p in pairs)


# -- the session list ---------------------------------------------------------------------


def test_the_session_list_shows_each_live_session(api: Api) -> None:
    first = api.login()
    api.client.environ_base["HTTP_USER_AGENT"] = "Firefox/200"
    second = api.login()
    body = api.get_json("/auth/sessions", second)
    sessions = body["sessions"]
    assert [s["sid"] for s in sessions] == [sid_of(first), sid_of(second)]
    assert [s["current"] for s in sessions] == [False, True]
    assert sessions[1]["user_agent"] == "Firefox/200"
    assert sessions[1]["ip"] == "127.0.0.1"
    for s in sessions:
        assert set(s) == {
            "sid",
            "created_at",
            "last_used_at",
            "expires_at",
            "current",
            "user_agent",
            "ip",
        }
        assert s["created_at"] <= s["last_used_at"] < s["expires_at"]


def test_the_list_follows_rotation_and_drops_ended_sessions(api: Api) -> None:
    kept, ended = api.login(), api.login()
    api.logout(ended)
    kept = api.reissue(kept).json
    sessions = api.get_json("/auth/sessions", kept)["sessions"]
    assert [s["sid"] for s in sessions] == [sid_of(kept)]
    assert sessions[0]["current"] is True


def test_the_list_is_served_from_the_index_without_scanning(
    api: Api, store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = api.login()

    def no_scans(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the keyspace must not be scanned")

    monkeypatch.setattr(store.client, "scan", no_scans)
    monkeypatch.setattr(store.client, "keys", no_scans)
    assert len(api.get_json("/auth/sessions", pair)["sessions"]) == 1


def test_the_list_only_shows_the_callers_sessions(api: Api) -> None:
    api.login(username="bob")
    alice = api.login()
    assert len(api.get_json("/auth/sessions", alice)["sessions"]) == 1


# -- revoking one session -----------------------------------------------------------------


def test_delete_revokes_one_of_the_callers_sessions(api: Api) -> None:
    here, there = api.login(), api.login()
    response = api.client.delete(
        f"/auth/sessions/{sid_of(there)}", headers=bearer(here["access_token"])
    )
    assert response.status_code == 204
    assert api.reissue(there).json["error"] == "session_revoked"
    assert api.reissue(here).status_code == 200


@pytest.mark.parametrize("which", ["other_user", "missing", "malformed", "already_revoked"])
def test_delete_answers_404_alike_for_anything_not_a_live_own_session(
    api: Api, which: str
) -> None:
    alice, bob = api.login(), api.login(username="bob")
    sid = {
        "other_user": sid_of(bob),
        "missing": "A" * 22,
        "malformed": "not a session id",
        "already_revoked": sid_of(alice),
    }[which]
    if which == "already_revoked":
        alice = api.login()
        api.client.delete(f"/auth/sessions/{sid}", headers=bearer(alice["access_token"]))
    response = api.client.delete(f"/auth/sessions/{sid}", headers=bearer(alice["access_token"]))
    assert response.status_code == 404
    assert response.json == {
        "error": "session_not_found",
        "message": "No live session of yours has this id.",
    }
    assert api.reissue(bob).status_code == 200


def test_session_signals_fire(app: Flask, api: Api) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def record(name: str) -> Any:
        def receiver(sender: Flask, **kw: Any) -> None:
            seen.append((name, kw))

        return receiver

    one_receiver = record("one")
    all_receiver = record("all")
    with (
        signals.session_revoked.connected_to(one_receiver, app),
        signals.all_sessions_revoked.connected_to(all_receiver, app),
    ):
        a, b = api.login(), api.login()
        api.client.delete(f"/auth/sessions/{sid_of(b)}", headers=bearer(a["access_token"]))
        api.client.post("/auth/logout-all", headers=bearer(a["access_token"]))
    assert seen == [
        ("one", {"user_id": "1", "session_id": sid_of(b), "ip": "127.0.0.1", "reason": "revoked"}),
        ("all", {"user_id": "1", "ip": "127.0.0.1"}),
    ]


# -- strict mode --------------------------------------------------------------------------


@pytest.fixture
def strict(make_app: Any) -> Api:
    return Api(make_app(DUALTOKEN_REVOCATION="strict"))


def test_in_expiry_mode_an_access_token_outlives_its_session(
    make_app: Callable[..., Flask],
) -> None:
    api = Api(make_app(DUALTOKEN_REVOCATION="expiry"))
    pair = api.login()
    api.logout(pair)
    assert api.get("/me", pair["access_token"]).status_code == 200


@pytest.mark.parametrize("end", ["logout", "logout_all", "reuse", "delete"])
def test_strict_mode_refuses_the_access_token_of_an_ended_session(strict: Api, end: str) -> None:
    pair = strict.login()
    assert strict.get("/me", pair["access_token"]).status_code == 200
    if end == "logout":
        strict.logout(pair)
    elif end == "logout_all":
        strict.client.post("/auth/logout-all", headers=bearer(pair["access_token"]))
    elif end == "delete":
        other = strict.login()
        strict.client.delete(
            f"/auth/sessions/{sid_of(pair)}", headers=bearer(other["access_token"])
        )
    else:
        strict.reissue(pair)
        strict.reissue(pair)  # within grace: fine
        new = strict.reissue(pair).json
        gen2 = strict.reissue(new).json
        assert strict.reissue(new).status_code == 200  # grace replay of gen2
        strict.reissue(pair)  # gen 0 again: reuse, the session ends
        pair = gen2
    response = strict.get("/me", pair["access_token"])
    assert response.status_code == 401
    assert response.json["error"] == "session_revoked"


def test_strict_mode_costs_one_redis_call_per_request(
    strict: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = strict.login()
    store: SessionStore = strict.client.application.extensions["dualtoken"].store
    calls: list[Any] = []
    original = store._run

    def counting(*args: Any) -> Any:
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(store, "_run", counting)
    assert strict.get("/me", pair["access_token"]).status_code == 200
    assert len(calls) == 1


def test_strict_mode_with_redis_down_is_503(strict: Api, users: Users) -> None:
    pair = strict.login()
    store: SessionStore = strict.client.application.extensions["dualtoken"].store

    def down(*args: Any) -> Any:
        from flask_dualtoken.errors import StoreUnavailable

        raise StoreUnavailable()

    store._run = down  # type: ignore[method-assign]
    assert strict.get("/me", pair["access_token"]).status_code == 503


def test_a_long_user_agent_is_listed_whole_and_the_session_stays_compact(
    api: Api, store: SessionStore
) -> None:
    agent = "Mozilla/5.0 (X11; Linux x86_64; é) " + "AppleWebKit/537.36 " * 10
    api.client.environ_base["HTTP_USER_AGENT"] = agent
    pair = api.login()
    assert api.get_json("/auth/sessions", pair)["sessions"][0]["user_agent"] == agent
    key = store.session_key("1", sid_of(pair))
    assert all(len(v) <= 64 for v in store.client.hgetall(key).values())
    if not isinstance(store.client, fakeredis.FakeRedis):
        assert store.client.object("encoding", key) == b"listpack"
    api.client.environ_base["HTTP_USER_AGENT"] = "curl/8.5.0"
    new = api.reissue(pair).json
    assert api.get_json("/auth/sessions", new)["sessions"][0]["user_agent"] == "curl/8.5.0"
    assert not store.client.hexists(key, "ua2"), "pieces of the longer agent are gone"
