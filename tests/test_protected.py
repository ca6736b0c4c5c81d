"""@jwt_required and the request context: current_user, get_jwt, get_jwt_identity."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import jwt
import pytest
from flask import Flask
from helpers import Api, Clock, Users

from flask_dualtoken import get_jwt, get_jwt_identity, jwt_required
from flask_dualtoken.config import ACCESS_ALGORITHMS


@pytest.mark.parametrize("access_algorithm", ACCESS_ALGORITHMS)
def test_a_valid_token_reaches_the_view(api: Api) -> None:
    pair = api.login()
    response = api.get("/me", pair["access_token"])
    assert response.status_code == 200
    assert response.json == {"id": 1, "role": "admin"}


def test_a_missing_token_is_401_token_missing_with_a_bearer_challenge(api: Api) -> None:
    response = api.get("/me")
    assert response.status_code == 401
    assert response.json["error"] == "token_missing"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.headers["Content-Type"] == "application/json"


def test_another_auth_scheme_counts_as_missing(api: Api) -> None:
    response = api.client.get("/me", headers={"Authorization": "Basic YWxpY2U6eA=="})
    assert response.json["error"] == "token_missing"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer garbage",
        "Bearer a.b.c",
        "bearer ...",
        "Bearer " + "A" * 9000,
        "Bearer ünïcode.tök.en",
    ],
)
def test_a_bad_token_is_401_token_invalid(api: Api, header: str) -> None:
    response = api.client.get("/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json["error"] == "token_invalid"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_an_oversized_but_well_signed_token_is_refused(api: Api, app: Flask, state) -> None:
    pair = api.login()
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    claims["pad"] = "x" * 9000
    big = jwt.encode(claims, state.codec._keys.access, headers={"typ": "at+jwt"})
    assert api.get("/me", big).json["error"] == "token_invalid"


@pytest.mark.parametrize("access_algorithm", ACCESS_ALGORITHMS)
def test_a_tampered_token_is_refused(api: Api) -> None:
    header, payload, signature = api.login(username="bob")["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert api.get("/admin", f"{header}.{forged}.{signature}").json["error"] == "token_invalid"


@pytest.mark.parametrize("access_algorithm", ACCESS_ALGORITHMS)
def test_a_refresh_token_is_not_an_access_token(api: Api) -> None:
    pair = api.login()
    response = api.get("/me", pair["refresh_token"])
    assert response.status_code == 401
    assert response.json["error"] == "token_invalid"


@pytest.mark.parametrize("access_algorithm", ACCESS_ALGORITHMS)
def test_an_expired_token_is_401_token_expired(api: Api, clock: Clock, make_app) -> None:
    api = Api(make_app(DUALTOKEN_ACCESS_EXPIRES=1))
    clock.align()
    pair = api.login()
    assert api.get("/me", pair["access_token"]).status_code == 200
    clock.advance(2.1)
    response = api.get("/me", pair["access_token"])
    assert response.status_code == 401
    assert response.json["error"] == "token_expired"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_leeway_accepts_a_token_just_past_expiry(clock: Clock, make_app) -> None:
    api = Api(make_app(DUALTOKEN_ACCESS_EXPIRES=1, DUALTOKEN_LEEWAY=5))
    pair = api.login()
    clock.advance(2.1)
    assert api.get("/me", pair["access_token"]).status_code == 200


@pytest.mark.parametrize("access_algorithm", ACCESS_ALGORITHMS)
def test_a_wrong_role_is_403_insufficient_role(api: Api) -> None:
    response = api.get("/admin", api.login(username="bob")["access_token"])
    assert response.status_code == 403
    assert response.json["error"] == "insufficient_role"
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert api.get("/admin", api.login()["access_token"]).status_code == 200


def test_options_requests_pass_for_cors_preflight(api: Api) -> None:
    assert api.client.options("/admin").status_code == 200


def test_an_optional_route_without_a_token_sees_no_user(api: Api, users: Users) -> None:
    response = api.get("/optional")
    assert response.status_code == 200
    assert response.json == {"user": None}
    assert users.loads == 0


def test_an_optional_route_with_a_token_sees_the_user(api: Api) -> None:
    assert api.get("/optional", api.login()["access_token"]).json == {"user": "alice"}


def test_an_optional_route_still_refuses_a_bad_token(api: Api) -> None:
    assert api.get("/optional", "not-a-token").status_code == 401


def test_async_views_work(api: Api) -> None:
    assert api.get("/async", api.login()["access_token"]).json == {"id": 1}


def test_current_user_is_loaded_lazily_and_at_most_once(
    app: Flask, api: Api, users: Users
) -> None:
    seen = []

    @app.get("/twice")
    @jwt_required
    def twice() -> dict[str, str]:
        from flask_dualtoken import current_user

        seen.append(users.loads)
        return {"a": current_user.username, "b": current_user.username}

    @app.get("/claims-only")
    @jwt_required
    def claims_only() -> dict[str, str | None]:
        return {"sub": get_jwt_identity(), "role": get_jwt()["role"]}

    token = api.login()["access_token"]
    before = users.loads
    assert api.get("/claims-only", token).json == {"sub": "1", "role": "admin"}
    assert users.loads == before, "no user_loader call when the view does not touch the user"
    assert api.get("/twice", token).json == {"a": "alice", "b": "alice"}
    assert users.loads == before + 1


def test_a_user_gone_while_the_token_is_valid_is_401_user_unavailable(
    api: Api, users: Users
) -> None:
    token = api.login()["access_token"]
    del users.by_id["1"]
    response = api.get("/me", token)
    assert response.status_code == 401
    assert response.json["error"] == "user_unavailable"


def test_outside_a_protected_route_there_are_no_claims(app: Flask) -> None:
    with app.test_request_context():
        assert get_jwt() == {}
        assert get_jwt_identity() is None


def test_errors_need_no_app_error_handler(api: Api, app: Flask) -> None:
    assert not app.error_handler_spec.get(None)
    assert api.get("/me", "x").headers["Content-Type"] == "application/json"


def test_errors_survive_an_app_that_handles_http_exceptions_itself(app: Flask, api: Api) -> None:
    from werkzeug.exceptions import HTTPException

    @app.errorhandler(HTTPException)
    def generic(exc: HTTPException):  # the pattern Flask-RESTful-style apps use
        return exc.get_response()

    response = api.get("/me")
    assert response.status_code == 401
    assert response.json["error"] == "token_missing"


def test_a_memoised_token_is_still_refused_once_expired(make_app, clock: Clock) -> None:
    api = Api(make_app(DUALTOKEN_ACCESS_EXPIRES=2))
    clock.align()
    token = api.login()["access_token"]
    for _ in range(3):  # verified once, then served from the memo
        assert api.get("/me", token).status_code == 200
    clock.advance(2.1)
    assert api.get("/me", token).json["error"] == "token_expired"


def test_the_memo_is_bounded_and_can_be_turned_off(make_app, state) -> None:
    from flask_dualtoken.state import get_state

    small = make_app(DUALTOKEN_TOKEN_CACHE_SIZE=2)
    api = Api(small)
    tokens = [api.login()["access_token"] for _ in range(3)]
    for token in tokens:
        api.get("/me", token)
    memo = get_state(small).codec._verified
    assert memo is not None
    assert list(memo._entries) == tokens[1:], "the oldest entry went first"
    off = make_app(DUALTOKEN_TOKEN_CACHE_SIZE=0)
    assert get_state(off).codec._verified is None
    assert Api(off).get("/me", Api(off).login()["access_token"]).status_code == 200


def test_claims_of_a_verified_token_are_read_only(app: Flask, api: Api) -> None:
    from flask_dualtoken.context import get_request_token

    @app.get("/mutate")
    @jwt_required
    def mutate() -> dict[str, str]:
        token = get_request_token()
        assert token is not None
        try:
            token.claims["role"] = "admin"  # type: ignore[index]
        except TypeError:
            return {"mutable": "no"}
        return {"mutable": "yes"}

    token = api.login(username="bob")["access_token"]
    assert api.get("/mutate", token).json == {"mutable": "no"}
    assert api.get("/admin", token).status_code == 403


def test_error_bodies_are_compact_json_like_success_bodies(api: Api) -> None:
    response = api.get("/me")
    assert response.data.startswith(b'{"error":"token_missing","message":"')


def test_verify_request_guards_a_whole_blueprint_from_a_before_request_hook(
    make_app: Callable[..., Flask],
) -> None:
    from flask import Blueprint

    from flask_dualtoken import current_user, verify_request

    app = make_app()
    admin = Blueprint("admin_area", __name__, url_prefix="/area")

    @admin.before_request
    def guard() -> None:
        verify_request(roles="admin")

    @admin.get("/report")
    def report() -> dict[str, object]:
        return {"who": current_user.username, "sub": get_jwt_identity()}

    app.register_blueprint(admin)
    api = Api(app)
    assert api.get("/area/report").json["error"] == "token_missing"  # type: ignore[index]
    bob = api.get("/area/report", api.login(username="bob")["access_token"])
    assert (bob.status_code, bob.json["error"]) == (403, "insufficient_role")  # type: ignore[index]
    alice = api.get("/area/report", api.login()["access_token"])
    assert alice.json == {"who": "alice", "sub": "1"}


def test_verify_request_optional_lets_an_anonymous_request_through(
    make_app: Callable[..., Flask],
) -> None:
    from flask_dualtoken import current_user, verify_request

    app = make_app()

    @app.get("/maybe")
    def maybe() -> dict[str, object]:
        verify_request(optional=True)
        return {"user": current_user.username if current_user else None}

    api = Api(app)
    assert api.get("/maybe").json == {"user": None}
    assert api.get("/maybe", api.login()["access_token"]).json == {"user": "alice"}
    assert api.get("/maybe", "not-a-token").status_code == 401
