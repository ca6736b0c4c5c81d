"""Cookie mode: tokens in HttpOnly cookies, each sent only where it is needed, and a CSRF
proof on every state-changing request that authenticates with a cookie."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from flask import Flask
from helpers import SECRET, Clock, Users, bearer, build_app
from servers import RedisServer
from werkzeug.http import parse_date
from werkzeug.test import TestResponse

from flask_dualtoken.config import ConfigError
from flask_dualtoken.keys import derive_key
from flask_dualtoken.state import get_state

AT, RT, CSRF = "__Host-dualtoken_at", "__Secure-dualtoken_rt", "__Host-dualtoken_csrf"
REFRESH_PATHS = ("/auth/reissue", "/auth/logout")


class Browser:
    """A test client that behaves like a browser page of the app: it keeps cookies and
    echoes the CSRF cookie in the CSRF header when told to."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()

    def login(self, username: str = "alice", **headers: str) -> TestResponse:
        response = self.client.post(
            "/auth/login",
            json={"username": username, "password": "correct horse"},
            headers=headers,
        )
        assert response.status_code == 200, response.json
        return response

    def cookie(self, name: str, path: str = "/") -> str | None:
        found = self.client.get_cookie(name, path=path)
        return found.value if found is not None else None

    def csrf_headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.cookie(CSRF) or ""}

    def post(self, path: str, csrf: bool = True, **kwargs: Any) -> TestResponse:
        headers = self.csrf_headers() if csrf else {}
        return self.client.post(path, headers=headers, **kwargs)

    def reissue(self, csrf: bool = True) -> TestResponse:
        return self.post("/auth/reissue", csrf)

    def logout(self, csrf: bool = True) -> TestResponse:
        return self.post("/auth/logout", csrf)


def set_cookies(response: TestResponse) -> dict[tuple[str, str], dict[str, str | None]]:
    """Each Set-Cookie header as {(name, path): {attribute: value}} (attribute names lower)."""
    found = {}
    for header in response.headers.getlist("Set-Cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        attrs: dict[str, str | None] = {"value": value}
        for attribute in attributes:
            key, sep, val = attribute.partition("=")
            attrs[key.lower()] = val if sep else None
        found[(name, str(attrs.get("path")))] = attrs
    return found


def csrf_for(session_id: str, secret: str = SECRET) -> str:
    key = derive_key(secret.encode(), b"csrf")
    digest = hmac.new(key, session_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


@pytest.fixture
def cookie_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(DUALTOKEN_TOKEN_LOCATION="cookies")


@pytest.fixture
def browser(cookie_app: Flask) -> Browser:
    return Browser(cookie_app)


# -- what login sets --------------------------------------------------------------------


def test_login_sets_httponly_secure_strict_cookies_scoped_to_their_paths(
    browser: Browser,
) -> None:
    cookies = set_cookies(browser.login())
    assert set(cookies) == {(AT, "/"), (CSRF, "/"), *((RT, p) for p in REFRESH_PATHS)}
    for (name, _), attrs in cookies.items():
        assert "secure" in attrs, name
        assert attrs["samesite"] == "Strict", name
        assert "domain" not in attrs, name  # host-only, as __Host- requires
        assert ("httponly" in attrs) == (name != CSRF), name


def test_cookie_lifetimes_are_the_token_lifetimes(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        DUALTOKEN_TOKEN_LOCATION="cookies",
        DUALTOKEN_ACCESS_EXPIRES=120,
        DUALTOKEN_REFRESH_EXPIRES=3600,
    )
    response = Browser(app).login()
    body = response.json
    cookies = set_cookies(response)
    assert body["expires_in"] == 120 and body["refresh_expires_in"] == 3600
    assert cookies[(AT, "/")]["max-age"] == "120"
    assert cookies[(CSRF, "/")]["max-age"] == "3600"
    for path in REFRESH_PATHS:
        assert cookies[(RT, path)]["max-age"] == "3600"
    access, refresh = cookies[(RT, REFRESH_PATHS[0])]["value"].split("~")  # type: ignore[union-attr]
    assert claims(access)["exp"] - claims(access)["iat"] == 120
    assert claims(refresh)["exp"] - claims(refresh)["iat"] == 3600


def test_login_body_carries_no_token_in_cookie_mode(browser: Browser) -> None:
    response = browser.login()
    body = response.json
    assert set(body) == {"csrf_token", "expires_in", "refresh_expires_in"}
    assert response.headers["Cache-Control"] == "no-store"
    assert body["csrf_token"] == browser.cookie(CSRF)


def test_the_refresh_cookie_holds_the_pair_issued_together(browser: Browser) -> None:
    browser.login()
    access, refresh = (browser.cookie(RT, "/auth/reissue") or "").split("~")
    assert access == browser.cookie(AT)
    assert claims(access)["rti"] == claims(refresh)["jti"]
    assert jwt.get_unverified_header(refresh)["typ"] == "rt+jwt"


def test_the_refresh_cookie_is_sent_only_to_reissue_and_logout(browser: Browser) -> None:
    browser.login()
    jar = browser.client
    assert jar.get_cookie(RT, path="/auth/reissue") is not None
    assert jar.get_cookie(RT, path="/auth/logout") is not None
    assert jar.get_cookie(RT, path="/") is None
    assert jar.get_cookie(RT, path="/auth") is None


def test_csrf_token_is_an_hmac_of_the_session_under_a_derived_key(browser: Browser) -> None:
    body = browser.login().json
    sid = claims(browser.cookie(AT) or "")["sid"]
    assert body["csrf_token"] == csrf_for(sid)


# -- protected routes -------------------------------------------------------------------


#: What the app's own state-changing route did: a refused request must leave no trace.
SAVED: list[str] = []


@pytest.fixture
def post_route(cookie_app: Flask) -> str:
    from flask_dualtoken import get_jwt_identity, jwt_required

    SAVED.clear()

    @cookie_app.post("/notes")
    @jwt_required
    def notes() -> dict[str, bool]:
        SAVED.append(str(get_jwt_identity()))
        return {"saved": True}

    return "/notes"


def test_a_safe_request_needs_only_the_access_cookie(browser: Browser) -> None:
    browser.login()
    response = browser.client.get("/me")
    assert response.status_code == 200
    assert response.json["id"] == 1


def test_a_state_changing_request_with_cookies_needs_the_csrf_header(
    browser: Browser, post_route: str
) -> None:
    browser.login()
    refused = browser.post(post_route, csrf=False)
    assert refused.status_code == 403
    assert refused.json["error"] == "csrf_failed"
    assert "Set-Cookie" not in refused.headers
    assert SAVED == []  # the view never ran
    assert browser.post(post_route).json == {"saved": True}
    assert SAVED == ["1"]


def test_a_wrong_csrf_value_is_refused(browser: Browser, post_route: str) -> None:
    browser.login()
    for proof in ("x", csrf_for("another-session-id-00"), (browser.cookie(CSRF) or "")[:-1]):
        response = browser.client.post(post_route, headers={"X-CSRF-Token": proof})
        assert response.status_code == 403, proof
        assert response.json["error"] == "csrf_failed"
    assert SAVED == []


def test_another_sessions_csrf_token_does_not_work(cookie_app: Flask, post_route: str) -> None:
    mine, theirs = Browser(cookie_app), Browser(cookie_app)
    mine.login()
    theirs.login("bob")
    response = mine.client.post(post_route, headers=theirs.csrf_headers())
    assert response.status_code == 403
    assert SAVED == []
    assert mine.reissue().status_code == 200  # and neither session was touched
    assert theirs.reissue().status_code == 200


def test_the_csrf_header_name_is_configurable(make_app: Callable[..., Flask]) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION="cookies", DUALTOKEN_CSRF_HEADER="X-Requested-By")
    browser = Browser(app)
    browser.login()
    assert browser.reissue().status_code == 403
    proof = {"X-Requested-By": browser.cookie(CSRF) or ""}
    assert browser.client.post("/auth/reissue", headers=proof).status_code == 200


def test_cookie_mode_ignores_bearer_headers_when_the_access_token_is_a_cookie(
    cookie_app: Flask, make_app: Callable[..., Flask]
) -> None:
    pair = Browser(make_app()).login().json  # a header-mode pair, same secret and store
    response = cookie_app.test_client().get("/me", headers=bearer(pair["access_token"]))
    assert response.status_code == 401
    assert response.json["error"] == "token_missing"


def test_header_mode_ignores_cookies(app: Flask, browser: Browser) -> None:
    browser.login()
    header_client = app.test_client()
    header_client.set_cookie(AT, browser.cookie(AT) or "")
    assert header_client.get("/me").json["error"] == "token_missing"
    header_client.set_cookie(RT, browser.cookie(RT, "/auth/reissue") or "", path="/auth/reissue")
    assert header_client.post("/auth/reissue").json["error"] == "token_missing"


# -- reissue ----------------------------------------------------------------------------


def test_reissue_with_cookies_rotates_and_sets_new_cookies(browser: Browser) -> None:
    browser.login()
    old_at, old_rt = browser.cookie(AT), browser.cookie(RT, "/auth/reissue")
    response = browser.reissue()
    assert response.status_code == 200
    assert set(response.json) == {"csrf_token", "expires_in", "refresh_expires_in"}
    assert set(set_cookies(response)) == {(AT, "/"), (CSRF, "/")} | {
        (RT, p) for p in REFRESH_PATHS
    }
    assert browser.cookie(AT) != old_at
    assert browser.cookie(RT, "/auth/logout") == browser.cookie(RT, "/auth/reissue") != old_rt
    assert browser.client.get("/me").status_code == 200


def test_reissue_with_cookies_needs_the_csrf_header_and_changes_nothing_without(
    browser: Browser,
) -> None:
    browser.login()
    before = browser.cookie(RT, "/auth/reissue")
    refused = browser.reissue(csrf=False)
    assert refused.status_code == 403
    assert refused.json["error"] == "csrf_failed"
    assert "Set-Cookie" not in refused.headers
    generation = claims((before or "").split("~")[1])["gen"]
    rotated = browser.reissue()
    assert rotated.status_code == 200
    # Had the refused call rotated, this one would be a replay or reuse, not generation+1.
    new_refresh = (browser.cookie(RT, "/auth/reissue") or "").split("~")[1]
    assert claims(new_refresh)["gen"] == generation + 1


def test_reissue_works_after_the_access_cookie_expired(
    make_app: Callable[..., Flask], clock: Clock
) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION="cookies", DUALTOKEN_ACCESS_EXPIRES=1)
    browser = Browser(app)
    clock.align()
    browser.login()
    clock.advance(2.1)
    browser.client.delete_cookie(AT)  # what the browser does when Max-Age runs out
    assert browser.client.get("/me").json["error"] == "token_missing"
    assert browser.reissue().status_code == 200
    assert browser.client.get("/me").status_code == 200


def test_replaying_an_old_refresh_cookie_after_grace_revokes_the_session(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION="cookies", DUALTOKEN_REUSE_GRACE=0)
    browser = Browser(app)
    browser.login()
    stolen = browser.cookie(RT, "/auth/reissue") or ""
    proof = browser.csrf_headers()
    assert browser.reissue().status_code == 200
    thief = app.test_client()
    thief.set_cookie(RT, stolen, path="/auth/reissue")
    reused = thief.post("/auth/reissue", headers=proof)
    assert reused.json["error"] == "refresh_token_reused"
    assert browser.reissue().json["error"] == "session_revoked"


def test_a_failed_cookie_reissue_clears_the_cookies(browser: Browser) -> None:
    browser.login()
    refresh = browser.cookie(RT, "/auth/reissue") or ""
    proof = browser.csrf_headers()
    browser.logout()  # ends the session and clears the cookies
    browser.client.set_cookie(RT, refresh, path="/auth/reissue")  # planted back
    response = browser.client.post("/auth/reissue", headers=proof)
    assert response.json["error"] == "session_revoked"
    cleared = set_cookies(response)
    assert set(cleared) == {(AT, "/"), (CSRF, "/")} | {(RT, p) for p in REFRESH_PATHS}
    assert all(attrs["max-age"] == "0" for attrs in cleared.values())
    assert browser.cookie(RT, "/auth/reissue") is None


@pytest.mark.parametrize(
    "value",
    ["", "~", "abc", "a~b", "a.b.c~", "~a.b.c", "x" * 5000, "a~b~c", "\u00e9~\u00e9"],
)
def test_a_malformed_refresh_cookie_is_401_never_500(
    cookie_app: Flask, browser: Browser, value: str
) -> None:
    browser.login()
    headers = {**browser.csrf_headers(), "Cookie": f"{RT}={value}"}
    response = cookie_app.test_client().post("/auth/reissue", headers=headers)
    assert response.status_code == 401
    assert response.json["error"] in {"token_missing", "token_invalid", "refresh_token_invalid"}


def test_no_refresh_cookie_is_token_missing(cookie_app: Flask) -> None:
    response = cookie_app.test_client().post("/auth/reissue")
    assert response.status_code == 401
    assert response.json["error"] == "token_missing"


def test_a_body_pair_is_not_accepted_in_cookie_mode(cookie_app: Flask, browser: Browser) -> None:
    browser.login()
    access, refresh = (browser.cookie(RT, "/auth/reissue") or "").split("~")
    stranger = cookie_app.test_client()
    response = stranger.post(
        "/auth/reissue", headers=bearer(access), json={"refresh_token": refresh}
    )
    assert response.json["error"] == "token_missing"


# -- logout -----------------------------------------------------------------------------


def test_logout_ends_the_session_and_clears_every_cookie_with_its_attributes(
    browser: Browser,
) -> None:
    login_cookies = set_cookies(browser.login())
    refresh = browser.cookie(RT, "/auth/reissue") or ""
    response = browser.logout()
    assert response.status_code == 204
    cleared = set_cookies(response)
    assert set(cleared) == set(login_cookies)
    for key, attrs in cleared.items():
        assert attrs["value"] == ""
        assert attrs["max-age"] == "0"
        assert parse_date(attrs["expires"]).timestamp() == 0  # type: ignore[union-attr]
        for attribute in ("secure", "httponly", "samesite", "domain"):
            assert (attribute in attrs) == (attribute in login_cookies[key]), (key, attribute)
            assert attrs.get(attribute) == login_cookies[key].get(attribute)
    assert browser.cookie(AT) is None and browser.cookie(CSRF) is None
    replay = browser.client
    replay.set_cookie(RT, refresh, path="/auth/reissue")
    proof = {"X-CSRF-Token": csrf_for(claims(refresh.split("~")[1])["sid"])}
    assert replay.post("/auth/reissue", headers=proof).json["error"] == "session_revoked"


def test_logout_with_cookies_needs_the_csrf_header(browser: Browser) -> None:
    browser.login()
    refused = browser.logout(csrf=False)
    assert refused.status_code == 403
    assert "Set-Cookie" not in refused.headers
    assert browser.reissue().status_code == 200


def test_logout_all_with_cookies_needs_csrf_and_clears_this_browsers_cookies(
    cookie_app: Flask,
) -> None:
    laptop, phone = Browser(cookie_app), Browser(cookie_app)
    laptop.login()
    phone.login()
    assert laptop.post("/auth/logout-all", csrf=False).status_code == 403
    assert phone.reissue().status_code == 200  # the refused call ended nothing
    response = laptop.post("/auth/logout-all")
    assert response.status_code == 204
    assert {attrs["max-age"] for attrs in set_cookies(response).values()} == {"0"}
    assert phone.reissue().json["error"] == "session_revoked"


def test_ending_a_session_by_id_with_cookies_needs_csrf(cookie_app: Flask) -> None:
    laptop, phone = Browser(cookie_app), Browser(cookie_app)
    laptop.login()
    phone.login()
    sessions = laptop.client.get("/auth/sessions").json["sessions"]
    other = next(s["sid"] for s in sessions if not s["current"])
    assert laptop.client.delete(f"/auth/sessions/{other}").status_code == 403
    assert other in [s["sid"] for s in laptop.client.get("/auth/sessions").json["sessions"]]
    deleted = laptop.client.delete(f"/auth/sessions/{other}", headers=laptop.csrf_headers())
    assert deleted.status_code == 204
    assert phone.reissue().json["error"] == "session_revoked"


# -- variants ---------------------------------------------------------------------------


def test_access_token_in_the_body_for_a_spa(make_app: Callable[..., Flask]) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION="cookies", DUALTOKEN_ACCESS_COOKIE=False)
    browser = Browser(app)
    response = browser.login()
    body = response.json
    assert set(body) == {"access_token", "token_type", "csrf_token", "expires_in",
                         "refresh_expires_in"}  # fmt: skip
    assert "refresh_token" not in body
    assert (AT, "/") not in set_cookies(response)
    # The bearer header is no ambient credential: no CSRF proof needed for it.
    assert browser.client.get("/me", headers=bearer(body["access_token"])).status_code == 200
    assert browser.client.get("/me").json["error"] == "token_missing"
    # After a page reload the SPA has lost its in-memory AT: the refresh cookie suffices.
    again = browser.reissue()
    assert again.status_code == 200
    assert claims(again.json["access_token"])["sid"] == claims(body["access_token"])["sid"]


def test_both_mode_answers_each_client_in_its_own_transport(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION="both")
    api_client = Browser(app)
    pair = api_client.login().json
    assert "refresh_token" in pair
    assert api_client.client.get_cookie(AT) is None
    reissued = api_client.client.post(
        "/auth/reissue",
        headers=bearer(pair["access_token"]),
        json={"refresh_token": pair["refresh_token"]},
    )
    assert "refresh_token" in reissued.json
    assert "Set-Cookie" not in reissued.headers

    browser = Browser(app)
    body = browser.login(**{"X-Token-Transport": "cookies"}).json
    assert "refresh_token" not in body
    assert browser.client.get("/me").status_code == 200
    assert browser.reissue(csrf=False).status_code == 403
    assert browser.reissue().status_code == 200
    assert browser.client.get("/me", headers=bearer(pair["access_token"])).status_code == 200


def test_a_cookie_domain_gives_up_the_host_prefix(make_app: Callable[..., Flask]) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION="cookies", DUALTOKEN_COOKIE_DOMAIN="example.com")
    cookies = set_cookies(Browser(app).login())
    names = {name for name, _ in cookies}
    assert names == {"__Secure-dualtoken_at", "__Secure-dualtoken_csrf", RT}
    assert {attrs["domain"] for attrs in cookies.values()} == {"example.com"}


def test_insecure_cookies_for_plain_http_development_carry_no_prefix(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION="cookies", DUALTOKEN_COOKIE_SECURE=False)
    browser = Browser(app)
    cookies = set_cookies(browser.login())
    assert {name for name, _ in cookies} == {"dualtoken_at", "dualtoken_rt", "dualtoken_csrf"}
    assert not any("secure" in attrs for attrs in cookies.values())
    proof = {"X-CSRF-Token": browser.cookie("dualtoken_csrf") or ""}
    assert browser.client.post("/auth/reissue", headers=proof).status_code == 200


def test_samesite_lax_can_be_chosen(make_app: Callable[..., Flask]) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION="cookies", DUALTOKEN_COOKIE_SAMESITE="Lax")
    cookies = set_cookies(Browser(app).login())
    assert {attrs["samesite"] for attrs in cookies.values()} == {"Lax"}


def test_csrf_tokens_of_the_previous_secret_pass_during_a_rotation(
    make_app: Callable[..., Flask],
) -> None:
    new_secret = "n" * 48
    old_app = make_app(DUALTOKEN_TOKEN_LOCATION="cookies")
    browser = Browser(old_app)
    browser.login()
    proof = browser.csrf_headers()
    refresh = browser.cookie(RT, "/auth/reissue") or ""
    rotated = make_app(
        DUALTOKEN_TOKEN_LOCATION="cookies",
        DUALTOKEN_SECRET_KEY=new_secret,
        DUALTOKEN_PREVIOUS_SECRET_KEYS=[SECRET],
    )
    client = rotated.test_client()
    client.set_cookie(RT, refresh, path="/auth/reissue")
    response = client.post("/auth/reissue", headers=proof)
    assert response.status_code == 200
    sid = claims(refresh.split("~")[1])["sid"]
    assert response.json["csrf_token"] == csrf_for(sid, new_secret) != proof["X-CSRF-Token"]


@pytest.mark.real_redis
def test_with_redis_down_no_cookie_is_set_or_cleared(
    own_redis_server: RedisServer, users: Users
) -> None:
    app = build_app(
        None,
        users,
        DUALTOKEN_REDIS_URL=own_redis_server.url,
        DUALTOKEN_TOKEN_LOCATION="cookies",
    )
    try:
        browser = Browser(app)
        browser.login()
        own_redis_server.stop()
        for response in (
            browser.reissue(),
            browser.logout(),
            browser.client.post("/auth/login", json={"username": "alice", "password": "x"}),
        ):
            assert response.status_code == 503
            assert "Set-Cookie" not in response.headers
        assert browser.cookie(AT) is not None  # the session may be fine: keep the cookies
        assert browser.client.get("/me").status_code == 200
    finally:
        get_state(app).store.client.close()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DUALTOKEN_TOKEN_LOCATION", "cookie"),
        ("DUALTOKEN_TOKEN_LOCATION", ["cookies"]),
        ("DUALTOKEN_COOKIE_SAMESITE", "None"),
        ("DUALTOKEN_COOKIE_SAMESITE", "strict"),
        ("DUALTOKEN_COOKIE_SECURE", "yes"),
        ("DUALTOKEN_ACCESS_COOKIE", 1),
        ("DUALTOKEN_COOKIE_DOMAIN", ""),
        ("DUALTOKEN_COOKIE_DOMAIN", "exa mple.com"),
        ("DUALTOKEN_COOKIE_DOMAIN", "example.com; Path=/"),
        ("DUALTOKEN_CSRF_HEADER", "Content-Type"),
        ("DUALTOKEN_CSRF_HEADER", "X CSRF"),
        ("DUALTOKEN_CSRF_HEADER", ""),
    ],
)
def test_bad_cookie_settings_fail_at_start_up(
    make_app: Callable[..., Flask], key: str, value: Any
) -> None:
    with pytest.raises(ConfigError, match=key):
        make_app(**{key: value})


def test_an_app_can_put_a_pair_it_issued_itself_into_cookies(
    cookie_app: Flask, users: Users
) -> None:
    from flask import redirect

    dualtoken = cookie_app.extensions["dualtoken_object"]

    @cookie_app.get("/sso/callback")
    def sso_callback() -> Any:
        # After an identity provider vouched for alice: no password involved.
        response = redirect("/")
        body = dualtoken.set_cookies(response, dualtoken.issue(users.by_id["1"]))
        assert set(body) == {"csrf_token", "expires_in", "refresh_expires_in"}
        return response

    @cookie_app.get("/forget-me")
    def forget() -> Any:
        response = redirect("/")
        dualtoken.clear_cookies(response)
        return response

    browser = Browser(cookie_app)
    response = browser.client.get("/sso/callback")
    assert response.status_code == 302
    assert response.headers["Cache-Control"] == "no-store"
    assert browser.client.get("/me").json["id"] == 1
    assert browser.reissue().status_code == 200
    browser.client.get("/forget-me")
    assert browser.cookie(AT) is None and browser.cookie(CSRF) is None


# -- forged and spliced cookies ---------------------------------------------------------


def test_a_refresh_cookie_with_its_halves_swapped_is_refused(browser: Browser) -> None:
    browser.login()
    access, refresh = (browser.cookie(RT, "/auth/reissue") or "").split("~")
    proof = browser.csrf_headers()
    browser.client.set_cookie(RT, f"{refresh}~{access}", path="/auth/reissue")
    response = browser.client.post("/auth/reissue", headers=proof)
    assert response.status_code == 401
    assert response.json["error"] == "token_invalid"


def test_a_refresh_cookie_spliced_from_two_sessions_is_a_mismatch(cookie_app: Flask) -> None:
    mine, theirs = Browser(cookie_app), Browser(cookie_app)
    mine.login()
    theirs.login()
    my_access = (mine.cookie(RT, "/auth/reissue") or "").split("~")[0]
    their_refresh = (theirs.cookie(RT, "/auth/reissue") or "").split("~")[1]
    mine.client.set_cookie(RT, f"{my_access}~{their_refresh}", path="/auth/reissue")
    response = mine.client.post("/auth/reissue", headers=mine.csrf_headers())
    assert response.json["error"] == "token_mismatch"
    assert theirs.reissue().status_code == 200  # the other session is untouched


def test_the_csrf_cookie_alone_is_no_proof(browser: Browser) -> None:
    # Double-submit schemes that only compare cookie and header fall to a planted cookie;
    # here the header must match the session the tokens name, whatever the cookie says.
    browser.login()
    planted = csrf_for("planted-session-id-0000")
    browser.client.set_cookie(CSRF, planted)
    response = browser.client.post("/auth/reissue", headers={"X-CSRF-Token": planted})
    assert response.status_code == 403
    assert "Set-Cookie" not in response.headers
    proof = {"X-CSRF-Token": csrf_for(claims(browser.cookie(AT) or "")["sid"])}
    assert browser.client.post("/auth/reissue", headers=proof).status_code == 200


def test_both_mode_takes_a_browser_fetch_with_an_empty_json_body_for_a_cookie_request(
    make_app: Callable[..., Flask],
) -> None:
    browser = Browser(make_app(DUALTOKEN_TOKEN_LOCATION="both"))
    browser.login(**{"X-Token-Transport": "cookies"})
    response = browser.client.post("/auth/reissue", json={}, headers=browser.csrf_headers())
    assert response.status_code == 200
    assert "refresh_token" not in response.json


def test_in_both_mode_a_body_less_reissue_is_told_both_ways_to_send_the_token(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(DUALTOKEN_TOKEN_LOCATION="both").test_client()
    response = client.post("/auth/reissue")
    assert response.json["error"] == "token_missing"
    assert "refresh_token" in response.json["message"]
    assert "cookie" in response.json["message"]
