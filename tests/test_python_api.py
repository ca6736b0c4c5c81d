"""The Python side: issue() for apps that authenticate users themselves, revoke_session(),
and the loader callbacks."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from flask import Flask
from helpers import Api, Users

from flask_dualtoken import DualToken
from flask_dualtoken.state import get_state


def dualtoken_of(app: Flask) -> DualToken:
    return app.extensions["dualtoken_object"]


def test_issue_gives_a_stored_pair_for_a_user_the_app_authenticated(
    app: Flask, api: Api, users: Users
) -> None:
    with app.app_context():
        pair = dualtoken_of(app).issue(users.by_id["2"])
    assert pair.user_id == "2"
    assert pair.access_token not in repr(pair), "tokens stay out of repr"
    assert pair.refresh_token not in repr(pair)
    body = pair.to_dict()
    assert api.get("/me", body["access_token"]).json["id"] == 2
    assert api.reissue(body).status_code == 200


def test_revoke_session_ends_it_at_once(app: Flask, api: Api) -> None:
    body = api.login()
    sid = jwt.decode(body["access_token"], options={"verify_signature": False})["sid"]
    with app.app_context():
        assert dualtoken_of(app).revoke_session("1", sid) is True
        assert dualtoken_of(app).revoke_session("1", sid) is False
    assert api.reissue(body).json["error"] == "session_revoked"


def test_revoking_someone_elses_session_id_does_nothing(app: Flask, api: Api) -> None:
    body = api.login()
    sid = jwt.decode(body["access_token"], options={"verify_signature": False})["sid"]
    with app.app_context():
        assert dualtoken_of(app).revoke_session("2", sid) is False
    assert api.reissue(body).status_code == 200


def make_custom_app(make_app: Any, users: Users, **loaders: Any) -> Flask:
    app = make_app()
    dualtoken = dualtoken_of(app)
    for name, fn in loaders.items():
        getattr(dualtoken, name)(fn)
    return app


def test_identity_role_and_claims_loaders_shape_the_access_token(
    make_app: Any, users: Users
) -> None:
    app = make_custom_app(
        make_app,
        users,
        identity_loader=lambda u: f"user-{u.id}",
        role_loader=lambda u: "staff",
        claims_loader=lambda u: {"name": u.username, "tenant": 7},
    )
    users.by_id["user-1"] = users.by_id["1"]
    body = Api(app).login()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "user-1"
    assert claims["role"] == "staff"
    assert (claims["name"], claims["tenant"]) == ("alice", 7)
    new = Api(app).reissue(body).json
    assert jwt.decode(new["access_token"], options={"verify_signature": False})["tenant"] == 7


@pytest.mark.parametrize("reserved", ["sub", "role", "sid", "jti", "rti", "exp", "iss", "aud"])
def test_a_claims_loader_returning_a_reserved_claim_is_an_error(
    make_app: Any, users: Users, reserved: str
) -> None:
    app = make_custom_app(make_app, users, claims_loader=lambda u: {reserved: "x"})
    with app.app_context(), pytest.raises(ValueError, match=reserved):
        dualtoken_of(app).issue(users.by_id["1"])


def test_callbacks_registered_after_init_app_are_used(redis_client: Any, users: Users) -> None:
    from helpers import SECRET

    app = Flask("late")
    app.config.update(DUALTOKEN_SECRET_KEY=SECRET, DUALTOKEN_REDIS=redis_client)
    dualtoken = DualToken(app)
    dualtoken.authenticate(users.authenticate)
    dualtoken.user_loader(users.load)
    assert Api(app).login()["token_type"] == "Bearer"


def test_issuer_and_audience_are_set_and_checked(make_app: Any) -> None:
    app = make_app(DUALTOKEN_ISSUER="https://auth.example", DUALTOKEN_AUDIENCE="api")
    api = Api(app)
    body = api.login()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert (claims["iss"], claims["aud"]) == ("https://auth.example", "api")
    assert api.get("/me", body["access_token"]).status_code == 200
    assert api.reissue(body).status_code == 200

    other = Api(make_app(DUALTOKEN_ISSUER="https://other.example", DUALTOKEN_AUDIENCE="api"))
    assert other.get("/me", body["access_token"]).json["error"] == "token_invalid"


def test_a_custom_url_prefix_moves_the_routes(make_app: Any) -> None:
    api = Api(make_app(DUALTOKEN_URL_PREFIX="/api/v1/auth"))
    response = api.client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": "correct horse"}
    )
    assert response.status_code == 200
    assert api.client.post("/auth/login", json={}).status_code == 404


@pytest.mark.parametrize("bad", ["", "x" * 257, 42, None])
def test_an_identity_loader_returning_an_unusable_id_is_an_error(
    make_app: Any, users: Users, bad: Any
) -> None:
    app = make_custom_app(make_app, users, identity_loader=lambda u: bad)
    with app.app_context(), pytest.raises(TypeError, match="identity_loader"):
        dualtoken_of(app).issue(users.by_id["1"])


class Roleless:
    id = 1
    username = "alice"


@pytest.mark.parametrize(
    ("loaders", "named"),
    [
        ({"role_loader": lambda u: u.missing_attribute}, "role_loader"),
        ({"role_loader": lambda u: None}, "role_loader"),
        ({"identity_loader": lambda u: 7}, "identity_loader"),
        ({"identity_loader": lambda u: "a\ud800b"}, "identity_loader"),
        ({"claims_loader": lambda u: {"blob": "x" * 20_000}}, "claims_loader and role_loader"),
        ({"claims_loader": lambda u: {"when": object()}}, "claims_loader"),
        ({"claims_loader": lambda u: {"exp": 1}}, "claims_loader"),
        ({"claims_loader": lambda u: ["x"]}, "claims_loader"),
    ],
)
def test_a_loader_returning_the_wrong_thing_is_a_json_500_and_one_log_line(
    make_app: Any,
    users: Users,
    caplog: pytest.LogCaptureFixture,
    loaders: dict[str, Any],
    named: str,
) -> None:
    app = make_custom_app(make_app, users, **loaders)
    response = app.test_client().post(
        "/auth/login", json={"username": "alice", "password": "correct horse"}
    )
    assert response.status_code == 500
    assert response.json == {
        "error": "server_misconfigured",
        "message": "The server is misconfigured; its log says how to fix it.",
    }
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert f"the {named} " in line
    assert "@dualtoken" in line or "return" in line or "rename" in line


class Unsaved:
    id = None
    role = "user"


class NoRoleYet:
    id = 1
    role = None


@pytest.mark.parametrize(("user", "attribute"), [(Unsaved, "id"), (NoRoleYet, "role")])
def test_a_user_attribute_left_none_is_refused_not_turned_into_the_string_none(
    make_app: Any, caplog: pytest.LogCaptureFixture, user: type, attribute: str
) -> None:
    app = make_app()
    dualtoken_of(app).authenticate(lambda username, password: user())
    response = app.test_client().post("/auth/login", json={"username": "a", "password": "b"})
    assert (response.status_code, response.json["error"]) == (500, "server_misconfigured")
    assert f"user.{attribute} is None" in caplog.text
    store = get_state(app).store
    for uid in ("1", "None"):  # no session was stored, under either id
        assert store.client.zcard(store.index_key(uid)) == 0


def test_a_user_without_a_role_is_told_how_to_fix_it(
    make_app: Any, users: Users, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    dualtoken_of(app).authenticate(lambda username, password: Roleless())
    response = app.test_client().post("/auth/login", json={"username": "a", "password": "b"})
    assert (response.status_code, response.json["error"]) == (500, "server_misconfigured")
    assert "give users a role, or register @dualtoken.role_loader" in caplog.text
