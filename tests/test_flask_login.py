"""The Flask-Login adapter: ``@login_required`` views accept access tokens, checked as
``@jwt_required`` checks them, and ``flask_login.current_user`` is flask-dualtoken's user;
Flask-Login's own session logins keep working, and win when both come. docs/flask-login.md
runs as written (its blocks marked ``<!-- run: NAME -->``, as in tests/test_docs_pages.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import flask_login
import pytest
from flask import Flask, abort, request
from flask_login import LoginManager, UserMixin, fresh_login_required, login_required
from helpers import Api, Clock, User, Users, bearer
from optional import DocPage, imported_with_every_module, works_without

import flask_dualtoken
from flask_dualtoken import get_jwt, jwt_required
from flask_dualtoken.config import KNOWN_KEYS
from flask_dualtoken.errors import TokenInvalid
from flask_dualtoken.flask_login import accept_access_tokens, raise_refusal, user_from_token
from flask_dualtoken.openapi import ERROR_CODES
from flask_dualtoken.state import get_state

PAGE = DocPage("flask-login.md")


class LoginUser(UserMixin, User):
    """A test user with Flask-Login's interface (``is_authenticated``, ``get_id``...)."""


@dataclass
class Site:
    """An app of the suite with Flask-Login on it, and what its views saw."""

    app: Flask
    manager: LoginManager
    users: Users
    saved: list[str] = field(default_factory=list)
    seen_after: list[bool] = field(default_factory=list)

    def session_login(self, client: Any, username: str, *, remember: bool = False) -> None:
        form = {"username": username, "password": "correct horse"}
        if remember:
            form["remember"] = "yes"
        response = client.post("/session/login", data=form)
        assert response.status_code == 200, response.data


def with_flask_login(app: Flask, users: Users) -> Site:
    """Flask-Login on ``app``, its users Flask-Login users, the adapter installed."""
    users.by_id = {k: LoginUser(**dataclasses.asdict(u)) for k, u in users.by_id.items()}
    app.secret_key = "flask-session-key-for-the-tests"
    manager = LoginManager(app)
    manager.user_loader(users.load)
    accept_access_tokens(manager)
    site = Site(app, manager, users)

    @app.get("/profile")
    @login_required
    def profile() -> dict[str, Any]:
        theirs = flask_login.current_user._get_current_object()
        ours = flask_dualtoken.current_user._get_current_object()
        for _ in range(3):  # read often, through both names: loaded once all the same
            assert flask_login.current_user.username == theirs.username
            assert flask_dualtoken.current_user == ours
        return {"id": theirs.id, "same": theirs is ours, "sid": get_jwt().get("sid")}

    @app.post("/notes")
    @login_required
    def notes() -> dict[str, bool]:
        site.saved.append(flask_login.current_user.username)
        return {"saved": True}

    @app.get("/reports")
    @login_required
    def reports() -> dict[str, bool]:
        if flask_login.current_user.role != "admin":
            abort(403)
        return {"ok": True}

    def same_user() -> dict[str, bool]:
        theirs = flask_login.current_user._get_current_object()
        return {"same": theirs is flask_dualtoken.current_user._get_current_object()}

    @app.get("/api/reports")
    @login_required
    @jwt_required(roles="admin")
    def api_reports() -> dict[str, bool]:
        return same_user()

    @app.get("/api/summary")
    @jwt_required
    @login_required
    def api_summary() -> dict[str, bool]:
        return same_user()

    @app.get("/fresh")
    @fresh_login_required
    def fresh() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/session/login")
    def session_login() -> dict[str, bool]:
        user = users.authenticate(request.form["username"], request.form["password"])
        if user is None:
            abort(401)
        flask_login.login_user(user, remember="remember" in request.form)
        return {"ok": True}

    @app.post("/session/logout")
    def session_logout() -> dict[str, bool]:
        flask_login.logout_user()
        return {"ok": True}

    @app.after_request
    def look(response: Any) -> Any:
        site.seen_after.append(flask_login.current_user.is_authenticated)
        return response

    return site


@pytest.fixture(autouse=True)
def _forget_the_signal_receiver() -> Iterator[None]:
    """The adapter connects to Flask-Login's process-wide signal: each test starts without."""
    yield
    flask_login.user_unauthorized.disconnect(raise_refusal)


@pytest.fixture
def site(app: Flask, users: Users) -> Site:
    return with_flask_login(app, users)


@pytest.fixture
def cookie_site(make_app: Any, users: Users) -> Site:
    return with_flask_login(make_app(DUALTOKEN_TOKEN_LOCATION="cookies"), users)


# -- a token on a @login_required view ---------------------------------------------------------


def test_a_login_required_view_accepts_a_bearer_access_token(site: Site, api: Api) -> None:
    pair = api.login("bob")
    response = api.get("/profile", pair["access_token"])
    assert response.status_code == 200, response.json
    assert response.json["id"] == 2
    assert response.json["sid"] is not None  # get_jwt() holds the token's claims


def test_flask_login_s_current_user_is_flask_dualtoken_s_loaded_once_per_request(
    site: Site, api: Api, users: Users
) -> None:
    pair = api.login()
    before = users.loads
    assert api.get_json("/profile", pair)["same"] is True
    assert users.loads == before + 1


def test_a_token_request_starts_no_flask_login_session(site: Site, api: Api) -> None:
    pair = api.login()
    response = api.get("/profile", pair["access_token"])
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert api.client.get_cookie("session") is None
    assert api.get("/profile").status_code == 401  # the next request, without the token


def test_stacked_with_jwt_required_either_way_the_user_is_one_object_loaded_once(
    site: Site, api: Api, users: Users
) -> None:
    pair = api.login()
    for path in ("/api/reports", "/api/summary"):  # login_required outside, then inside
        before = users.loads
        assert api.get_json(path, pair) == {"same": True}
        assert users.loads == before + 1, path


# -- no token: Flask-Login's own answer --------------------------------------------------------


def test_without_a_token_flask_login_answers_with_its_401_or_its_login_view(
    site: Site, client: Any
) -> None:
    plain = client.get("/profile")
    assert plain.status_code == 401
    assert plain.mimetype == "text/html"  # Flask-Login's abort(401), not ours
    site.manager.login_view = "session_login"
    redirected = client.get("/profile")
    assert redirected.status_code == 302
    assert redirected.headers["Location"].startswith("/session/login?next=")


def test_options_requests_pass_login_required_without_a_token(site: Site, client: Any) -> None:
    assert client.options("/notes").status_code == 200


# -- a bad token: the JSON 401 of @jwt_required ---------------------------------------------


def assert_same_refusal(api: Api, token: str, error: str) -> None:
    """``/profile`` (@login_required) answers as ``/me`` (@jwt_required) does."""
    ours, theirs = api.get("/profile", token), api.get("/me", token)
    assert ours.status_code == theirs.status_code == 401
    assert ours.json == theirs.json
    assert ours.json["error"] == error
    assert ours.headers["WWW-Authenticate"] == theirs.headers["WWW-Authenticate"]
    assert "Location" not in ours.headers


def test_a_forged_or_wrong_kind_of_token_is_the_json_401_of_jwt_required(
    site: Site, api: Api
) -> None:
    pair = api.login()
    head, payload, _ = pair["access_token"].split(".")
    for token in ("garbage", f"{head}.{payload}.AAAA", pair["refresh_token"]):
        assert_same_refusal(api, token, "token_invalid")


def test_an_expired_token_is_401_token_expired_not_the_login_view(
    make_app: Any, users: Users, clock: Clock
) -> None:
    site = with_flask_login(make_app(DUALTOKEN_ACCESS_EXPIRES=1), users)
    site.manager.login_view = "session_login"
    api = Api(site.app)
    clock.align()
    pair = api.login()
    assert api.get("/profile", pair["access_token"]).status_code == 200
    clock.advance(2.1)
    assert_same_refusal(api, pair["access_token"], "token_expired")
    # The reissue sends the expired token in the header: the hook reading current_user
    # (Site.seen_after) meets it as anonymous, and the reissue goes through.
    site.seen_after.clear()
    assert api.reissue(pair).status_code == 200
    assert site.seen_after == [False]


def test_a_session_ended_by_logout_is_refused_on_a_login_required_view(
    site: Site, api: Api
) -> None:
    pair = api.login()
    assert api.get("/profile", pair["access_token"]).status_code == 200
    assert api.logout(pair).status_code == 204  # its hook read current_user: no 500
    assert_same_refusal(api, pair["access_token"], "session_revoked")


def test_a_token_whose_user_is_gone_is_401_user_unavailable(
    site: Site, api: Api, users: Users
) -> None:
    pair = api.login("bob")
    users.by_id["2"].active = False
    assert_same_refusal(api, pair["access_token"], "user_unavailable")


def test_a_bad_token_is_answered_before_the_app_s_unauthorized_handler(
    site: Site, api: Api, client: Any
) -> None:
    site.manager.unauthorized_handler(lambda: ({"error": "log in, please"}, 401))
    assert client.get("/profile").json == {"error": "log in, please"}  # no token: the app's
    assert api.get("/profile", "garbage").json["error"] == "token_invalid"


def test_a_refused_token_leaves_current_user_anonymous_for_the_rest_of_the_request(
    site: Site, api: Api
) -> None:
    """An error handler or ``after_request`` hook reading it does not fail in turn."""
    handled: list[bool] = []

    @site.app.errorhandler(TokenInvalid)  # the 401s of a token (Flask looks up by code)
    def unauthorized(error: TokenInvalid) -> Any:
        handled.append(flask_login.current_user.is_authenticated)
        return error.get_response()

    site.seen_after.clear()
    response = api.get("/profile", "garbage")
    assert response.status_code == 401
    assert response.json["error"] == "token_invalid"
    assert handled == [False]
    assert site.seen_after == [False]


def test_a_page_open_to_everyone_sees_a_bad_token_as_anonymous(site: Site, api: Api) -> None:
    @site.app.get("/welcome")
    def welcome() -> dict[str, bool]:
        return {"signed_in": flask_login.current_user.is_authenticated}

    assert api.get("/welcome", "garbage").json == {"signed_in": False}
    assert api.get("/welcome").json == {"signed_in": False}
    assert api.get_json("/welcome", api.login()) == {"signed_in": True}


def test_a_failing_jwt_required_view_with_a_hook_reading_current_user_is_still_its_401(
    site: Site, api: Api
) -> None:
    """Flask-Login, asked in ``after_request``, meets the same bad token: anonymous."""
    site.seen_after.clear()
    assert api.get("/me", "garbage").json["error"] == "token_invalid"
    assert site.seen_after == [False]


# -- cookie mode ------------------------------------------------------------------------------


def test_in_cookie_mode_a_safe_request_needs_only_the_access_cookie(cookie_site: Site) -> None:
    browser = cookie_site.app.test_client()
    browser.post("/auth/login", json={"username": "bob", "password": "correct horse"})
    response = browser.get("/profile")
    assert response.status_code == 200
    assert response.json["id"] == 2
    assert response.json["same"] is True


def test_in_cookie_mode_a_state_changing_request_needs_the_csrf_header(
    cookie_site: Site,
) -> None:
    jar = get_state(cookie_site.app).cookies
    browser = cookie_site.app.test_client()
    browser.post("/auth/login", json={"username": "bob", "password": "correct horse"})
    refused = browser.post("/notes")
    assert refused.status_code == 403
    assert refused.json["error"] == "csrf_failed"
    wrong = browser.post("/notes", headers={jar.csrf_header: "not-the-token"})
    assert wrong.status_code == 403
    assert cookie_site.saved == []  # the view never ran
    csrf = browser.get_cookie(jar.csrf_name)
    assert csrf is not None
    accepted = browser.post("/notes", headers={jar.csrf_header: csrf.value})
    assert accepted.json == {"saved": True}
    assert cookie_site.saved == ["bob"]


# -- Flask-Login's own session logins ---------------------------------------------------------


def test_flask_login_session_logins_still_work_and_carry_no_token(site: Site, client: Any) -> None:
    site.session_login(client, "bob")
    response = client.get("/profile")
    assert response.status_code == 200
    assert response.json == {"id": 2, "same": False, "sid": None}  # no token: get_jwt() {}
    client.post("/session/logout")
    assert client.get("/profile").status_code == 401


def test_a_flask_login_session_wins_over_a_token_which_is_not_read(
    site: Site, client: Any, api: Api
) -> None:
    alice = api.login("alice")
    site.session_login(client, "bob")
    for token in (alice["access_token"], "garbage"):
        response = client.get("/profile", headers=bearer(token))
        assert response.status_code == 200
        assert response.json == {"id": 2, "same": False, "sid": None}


def test_a_flask_login_remember_me_cookie_wins_over_a_token_as_its_session_does(
    site: Site, client: Any, api: Api
) -> None:
    alice = api.login("alice")
    site.session_login(client, "bob", remember=True)
    client.delete_cookie("session")  # the browser was closed: the remember-me cookie stays
    assert client.get_cookie("remember_token") is not None
    for token in (alice["access_token"], "garbage"):
        response = client.get("/profile", headers=bearer(token))
        assert response.status_code == 200
        assert response.json == {"id": 2, "same": False, "sid": None}


def test_a_session_login_and_a_token_login_end_separately(
    site: Site, client: Any, api: Api
) -> None:
    pair = api.login("bob")
    site.session_login(client, "bob")
    assert api.logout(pair).status_code == 204
    assert client.get("/profile").status_code == 200  # the Flask-Login session lives on
    client.post("/session/logout")
    assert client.get("/profile").status_code == 401


# -- roles and fresh logins -------------------------------------------------------------------


def test_a_role_check_on_current_user_holds_for_tokens_and_sessions_alike(
    site: Site, client: Any, api: Api
) -> None:
    assert api.get("/reports", api.login("alice")["access_token"]).status_code == 200
    assert api.get("/reports", api.login("bob")["access_token"]).status_code == 403
    site.session_login(client, "bob")
    assert client.get("/reports").status_code == 403


def test_jwt_required_roles_checks_the_token_s_role_and_refuses_session_logins(
    site: Site, client: Any, api: Api
) -> None:
    assert api.get("/api/reports", api.login("alice")["access_token"]).status_code == 200
    refused = api.get("/api/reports", api.login("bob")["access_token"])
    assert refused.status_code == 403
    assert refused.json["error"] == "insufficient_role"
    site.session_login(client, "alice")
    assert client.get("/api/reports").json["error"] == "token_missing"


def test_fresh_login_required_refuses_token_requests(site: Site, api: Api) -> None:
    """Flask-Login's freshness lives in its session: tokens use jwt_required(fresh=)."""
    assert api.get("/fresh", api.login()["access_token"]).status_code == 401


# -- installing the loader --------------------------------------------------------------------


def test_accept_access_tokens_does_not_replace_another_request_loader(app: Flask) -> None:
    manager = LoginManager(app)
    accept_access_tokens(manager)
    accept_access_tokens(manager)  # twice is harmless
    assert manager.request_callback is user_from_token
    other = LoginManager()
    other.request_loader(lambda request: None)
    with pytest.raises(RuntimeError, match="already has a request loader"):
        accept_access_tokens(other)


def test_no_module_of_flask_dualtoken_imports_flask_login() -> None:
    imported = imported_with_every_module("flask_login", "flask_dualtoken.flask_login")
    assert imported == [False, True]


def test_flask_dualtoken_works_without_flask_login_installed() -> None:
    assert works_without(("flask_login",), "flask_login")


# -- docs/flask-login.md ----------------------------------------------------------------------


def test_every_python_block_of_the_page_runs() -> None:
    python, marked = PAGE.python_blocks()
    assert python == marked == 3


def test_the_page_s_app_answers_its_demo_as_the_page_shows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLASK_SECRET_KEY", "a-flask-session-key-for-this-test-only")
    monkeypatch.setenv("FLASK_DUALTOKEN_SECRET_KEY", "d" * 48)
    monkeypatch.setenv("FLASK_DUALTOKEN_REDIS_URL", "memory://")
    namespace: dict[str, Any] = {"__name__": "app"}  # as if run as app.py
    PAGE.run("flask-login-app", namespace)
    capsys.readouterr()
    PAGE.run("flask-login-demo", namespace)
    printed = capsys.readouterr().out.splitlines()
    assert printed == PAGE.blocks("output", "flask-login-demo").splitlines()


def test_the_page_s_own_request_loader_serves_api_keys_and_tokens(
    site: Site, api: Api, users: Users
) -> None:
    site.manager.request_loader(lambda request: None)  # what the app had before
    namespace: dict[str, Any] = {
        "login_manager": site.manager,
        "user_for_api_key": lambda key: users.by_id["2"] if key == "bobs-key" else None,
    }
    PAGE.run("own-request-loader", namespace)
    assert site.manager.request_callback is namespace["load_user_from_request"]
    by_key = site.app.test_client().get("/profile", headers={"X-Api-Key": "bobs-key"})
    assert by_key.json["id"] == 2
    assert api.get_json("/profile", api.login())["id"] == 1
    assert api.get("/profile", "garbage").json["error"] == "token_invalid"
    assert api.get("/profile").status_code == 401


def test_the_page_names_only_settings_and_error_codes_that_exist() -> None:
    keys, codes = PAGE.names()
    assert keys
    assert codes
    assert keys <= KNOWN_KEYS, keys - KNOWN_KEYS
    assert codes <= set(ERROR_CODES), codes - set(ERROR_CODES)
