"""POST /auth/introspect (RFC 7662): configured clients, HTTP Basic, a form-encoded token;
the claims of a live access token of a live session, and exactly {"active": false} for
anything else."""

from __future__ import annotations

import base64
import threading
from typing import Any

import jwt
import pytest
from flask import Flask
from helpers import Api, Clock, Users, app_on_url

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
    wrong = basic("gateway", "guess-" + "x" * 40)
    for _ in range(3):
        assert ask(app, "t", wrong).status_code == 401
    refused = ask(app, "t", wrong)  # a wrong secret waits now, from this address
    assert refused.status_code == 429
    assert refused.json["error"] == "too_many_attempts"
    assert "login" not in refused.json["message"]
    assert int(refused.headers["Retry-After"]) > 0
    assert ask(app, "t").status_code == 200  # the right secret is never refused for it
    assert ask(app, "t", basic("nobody", CLIENT_SECRET)).status_code == 429


def test_failed_client_authentications_leave_the_login_counter_alone(make_app: Any) -> None:
    app = make_app(
        DUALTOKEN_INTROSPECTION_CLIENTS=CLIENTS, DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=3
    )
    for _ in range(4):
        ask(app, "t", basic("gateway", "guess-" + "x" * 40))
    login = app.test_client().post(
        "/auth/login", json={"username": "alice", "password": "correct horse"}
    )
    assert login.status_code == 200


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


# -- the per-client request limit ---------------------------------------------------------------


def limited(make_app: Any, limit: int, window: int = 60, **config: Any) -> Flask:
    app: Flask = make_app(
        DUALTOKEN_INTROSPECTION_CLIENTS=CLIENTS,
        DUALTOKEN_INTROSPECTION_MAX_REQUESTS=limit,
        DUALTOKEN_INTROSPECTION_WINDOW=window,
        **config,
    )
    return app


def test_a_client_over_its_limit_waits_and_others_do_not(make_app: Any) -> None:
    app = limited(make_app, 3)
    token = Api(app).login()["access_token"]
    for _ in range(3):
        assert ask(app, token).json["active"] is True
    refused = ask(app, token)
    assert refused.status_code == 429
    assert refused.json["error"] == "too_many_requests"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["Cache-Control"] == "no-store"
    assert "active" not in refused.json
    # Per client: another one, from the very same address, has its own budget.
    assert ask(app, token, basic("worker", CLIENTS["worker"])).json["active"] is True


def test_the_limit_is_per_window(make_app: Any, clock: Clock) -> None:
    app = limited(make_app, 2, window=1)
    clock.align()
    for _ in range(2):
        assert ask(app, "t").status_code == 200
    assert ask(app, "t").status_code == 429
    clock.advance(1.1)
    assert ask(app, "t").status_code == 200


def test_only_an_authenticated_client_uses_up_its_budget(make_app: Any) -> None:
    """Failed authentications count on the address (as before), not on the client: whoever
    knows a client id cannot use up that client's requests."""
    app = limited(make_app, 2)
    for _ in range(5):
        assert ask(app, "t", basic("gateway", "guess-" + "x" * 40)).status_code == 401
    for _ in range(2):
        assert ask(app, "t").status_code == 200
    assert ask(app, "t").status_code == 429


def test_a_refused_client_still_gets_its_authentication_attempt_back(make_app: Any) -> None:
    app = limited(make_app, 1, DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=3)
    assert ask(app, "t").status_code == 200
    for _ in range(5):  # over the client's limit, but authenticated: no address failure
        assert ask(app, "t").json["error"] == "too_many_requests"
    assert ask(app, "t", basic("worker", CLIENTS["worker"])).status_code == 200


def test_zero_turns_the_limit_off(make_app: Any) -> None:
    app = limited(make_app, 0)
    for _ in range(20):
        assert ask(app, "t").status_code == 200


def test_racing_requests_get_exactly_the_limit(make_app: Any) -> None:
    """Checking and counting are one script: 20 requests racing at a limit of 5, exactly
    5 answered (on fakeredis, a real server and a cluster)."""
    app = limited(make_app, 5)
    token = Api(app).login()["access_token"]
    threads_count = 20
    barrier = threading.Barrier(threads_count)
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post(
            "/auth/introspect", data={"token": token}, headers=basic("gateway", CLIENT_SECRET)
        )
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200] * 5 + [429] * 15


def test_with_redis_down_the_count_is_a_503(users: Users) -> None:
    with app_on_url(
        users,
        "redis://127.0.0.1:1/0",
        DUALTOKEN_INTROSPECTION_CLIENTS=CLIENTS,
        DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=0,  # so the count is the first call
    ) as app:
        response = ask(app, "t")
    assert response.status_code == 503
    assert response.json["error"] == "store_unavailable"
    assert response.headers["Retry-After"] == "1"


def test_the_limit_is_in_the_openapi_document(make_app: Any) -> None:
    app = limited(make_app, 5, window=30)
    document = app.test_client().get("/auth/openapi.json").json
    answer = document["paths"]["/auth/introspect"]["post"]["responses"]["429"]
    assert "too_many_requests" in answer["description"]
    assert "5 times in 30 s" in answer["description"]
    assert "Retry-After" in answer["headers"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DUALTOKEN_INTROSPECTION_MAX_REQUESTS", -1),
        ("DUALTOKEN_INTROSPECTION_MAX_REQUESTS", "600"),
        ("DUALTOKEN_INTROSPECTION_MAX_REQUESTS", True),
        ("DUALTOKEN_INTROSPECTION_WINDOW", 0),
        ("DUALTOKEN_INTROSPECTION_WINDOW", 1.5),
    ],
)
def test_the_limit_is_checked_at_start_up(make_app: Any, key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        make_app(DUALTOKEN_INTROSPECTION_CLIENTS=CLIENTS, **{key: value})
