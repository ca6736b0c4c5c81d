"""POST /auth/introspect (RFC 7662): configured clients, HTTP Basic, a form-encoded token;
the claims of a live access token of a live session, and exactly {"active": false} for
anything else."""

from __future__ import annotations

import base64
from typing import Any

import jwt
import pytest
from flask import Flask
from helpers import Api, Clock

from flask_dualtoken import ConfigError

CLIENT_SECRET = "gateway-secret-" + "g" * 40
CLIENTS = {"gateway": CLIENT_SECRET, "worker": "worker-secret-" + "w" * 40}


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def ask(app: Flask, token: str, headers: dict[str, str] | None = None) -> Any:
    return app.test_client().post(
        "/auth/introspect",
        data={"token": token},
        headers=basic("gateway", CLIENT_SECRET) if headers is None else headers,
    )


@pytest.fixture
def app(make_app: Any) -> Flask:
    built: Flask = make_app(DUALTOKEN_INTROSPECTION_CLIENTS=CLIENTS)
    return built


def test_a_live_access_token_is_active_with_its_claims(app: Flask) -> None:
    pair = Api(app).login()
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    response = ask(app, pair["access_token"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json == {
        "active": True,
        "sub": "1",
        "sid": claims["sid"],
        "role": "admin",
        "exp": claims["exp"],
        "iat": claims["iat"],
        "auth_time": claims["auth_time"],
        "token_type": "access_token",
    }


@pytest.mark.parametrize("access_algorithm", ["HS256", "EdDSA"])
def test_an_ended_session_is_inactive_at_once(app: Flask) -> None:
    api = Api(app)
    pair = api.login()
    assert api.logout(pair).status_code == 204
    response = ask(app, pair["access_token"])
    assert response.status_code == 200
    assert response.json == {"active": False}


def test_everything_else_is_exactly_inactive(app: Flask, make_app: Any) -> None:
    pair = Api(app).login()
    head, payload, _ = pair["access_token"].split(".")
    other_secret = Api(make_app(DUALTOKEN_SECRET_KEY="another-secret-" + "o" * 40)).login()
    for token in (
        pair["refresh_token"],
        f"{head}.{payload}.AAAA",
        other_secret["access_token"],
        "garbage",
        "a.b.c",
        "x" * 9000,
        "\u00e9\u00e9",
    ):
        response = ask(app, token)
        assert response.status_code == 200, token
        assert response.json == {"active": False}, token


def test_an_expired_token_is_inactive(make_app: Any, clock: Clock) -> None:
    app = make_app(DUALTOKEN_INTROSPECTION_CLIENTS=CLIENTS, DUALTOKEN_ACCESS_EXPIRES=1)
    pair = Api(app).login()
    clock.advance(2.1)
    assert ask(app, pair["access_token"]).json == {"active": False}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("gateway", "wrong-" + CLIENT_SECRET),
        basic("gateway", CLIENT_SECRET[:-1]),
        basic("nobody", CLIENT_SECRET),
        basic("worker", CLIENT_SECRET),  # another client's secret
        basic("", ""),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": f"Bearer {CLIENT_SECRET}"},
    ],
)
def test_bad_client_credentials_are_one_401_with_a_basic_challenge(
    app: Flask, headers: dict[str, str]
) -> None:
    pair = Api(app).login()
    response = ask(app, pair["access_token"], headers)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith('Basic realm="introspection"')
    assert "active" not in response.json


def test_every_client_may_ask(app: Flask) -> None:
    pair = Api(app).login()
    answer = ask(app, pair["access_token"], basic("worker", CLIENTS["worker"]))
    assert answer.json["active"] is True


def test_failed_client_authentications_are_throttled_per_address(make_app: Any) -> None:
    app = make_app(
        DUALTOKEN_INTROSPECTION_CLIENTS=CLIENTS, DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=3
    )
    for _ in range(3):
        assert ask(app, "t", basic("gateway", "guess-" + "x" * 40)).status_code == 401
    refused = ask(app, "t")  # even the right secret waits now, from this address
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0


def test_successful_authentications_do_not_use_up_the_budget(make_app: Any) -> None:
    app = make_app(
        DUALTOKEN_INTROSPECTION_CLIENTS=CLIENTS, DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=3
    )
    for _ in range(10):
        assert ask(app, "t").status_code == 200


@pytest.mark.parametrize(
    "kwargs",
    [
        {"json": {"token": "x"}},
        {"data": "token=a&token=b", "content_type": "application/x-www-form-urlencoded"},
        {"data": "", "content_type": "application/x-www-form-urlencoded"},
        {"data": "tok=x", "content_type": "application/x-www-form-urlencoded"},
        {"data": "token=", "content_type": "application/x-www-form-urlencoded"},
        {"data": b"\xff\xfe", "content_type": "application/x-www-form-urlencoded"},
    ],
)
def test_a_malformed_body_is_400(app: Flask, kwargs: dict[str, Any]) -> None:
    response = app.test_client().post(
        "/auth/introspect", headers=basic("gateway", CLIENT_SECRET), **kwargs
    )
    assert response.status_code in (200, 400), response.json
    if response.status_code == 200:  # undecodable bytes are just a token that is not ours
        assert response.json == {"active": False}
    else:
        assert response.json["error"] == "invalid_request"


def test_an_oversized_body_is_413(app: Flask) -> None:
    response = app.test_client().post(
        "/auth/introspect",
        headers=basic("gateway", CLIENT_SECRET),
        data={"token": "x" * 100_000},
    )
    assert response.status_code == 413
    assert response.json["error"] == "request_too_large"


def test_without_clients_the_route_is_a_json_404(make_app: Any) -> None:
    response = make_app().test_client().post("/auth/introspect", data={"token": "x"})
    assert response.status_code == 404
    assert response.json["error"] == "not_found"


def test_client_secrets_are_never_printed(app: Flask) -> None:
    shown = repr(app.extensions["dualtoken"].settings)
    assert "gateway" in shown
    assert CLIENT_SECRET not in shown


@pytest.mark.parametrize(
    "clients",
    [["gateway"], {"gateway": "short"}, {"bad id!": CLIENT_SECRET}, {"": CLIENT_SECRET}, "x"],
)
def test_clients_are_checked_at_start_up(make_app: Any, clients: Any) -> None:
    with pytest.raises(ConfigError, match="DUALTOKEN_INTROSPECTION_CLIENTS"):
        make_app(DUALTOKEN_INTROSPECTION_CLIENTS=clients)
