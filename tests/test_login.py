"""POST /auth/login: credentials in, a stored session and its token pair out."""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any

import jwt
import pytest
from flask import Flask
from helpers import SECRET, Api, Users, session_hash
from werkzeug.serving import make_server

from flask_dualtoken.config import ACCESS_ALGORITHMS
from flask_dualtoken.keys import SigningKeys
from flask_dualtoken.store import SessionStore


@pytest.mark.parametrize("access_algorithm", ACCESS_ALGORITHMS)
def test_login_returns_a_pair_that_must_not_be_cached(api: Api) -> None:
    response = api.client.post(
        "/auth/login", json={"username": "alice", "password": "correct horse"}
    )
    assert response.status_code == 200
    body = response.json
    assert set(body) == {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "refresh_expires_in",
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["refresh_expires_in"] == 14 * 86400
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("access_algorithm", ACCESS_ALGORITHMS)
def test_the_access_token_carries_id_role_and_session(api: Api, access_algorithm: str) -> None:
    pair = api.login()
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    refresh = jwt.decode(pair["refresh_token"], options={"verify_signature": False})
    assert claims["sub"] == "1" and claims["role"] == "admin"
    assert claims["sid"] == refresh["sid"]
    assert claims["rti"] == refresh["jti"], "the AT names the RT it was issued with"
    assert claims["exp"] - claims["iat"] == 900
    kid = SigningKeys.from_secret(SECRET.encode()).kid
    assert jwt.get_unverified_header(pair["access_token"]) == {
        "alg": access_algorithm,
        "typ": "at+jwt",
        "kid": kid,
    }
    assert jwt.get_unverified_header(pair["refresh_token"]) == {
        "alg": "HS256",
        "typ": "rt+jwt",
        "kid": kid,
    }


def test_login_stores_the_session_before_returning_it(api: Api, store: SessionStore) -> None:
    pair = api.login()
    refresh = jwt.decode(pair["refresh_token"], options={"verify_signature": False})
    session = session_hash(store, "1", refresh["sid"])
    assert session["uid"] == "1"
    assert session["cur"] == refresh["jti"]
    assert session["gen"] == "0"


def test_each_login_is_a_new_session(api: Api) -> None:
    first, second = api.login(), api.login()
    sid = [
        jwt.decode(p["access_token"], options={"verify_signature": False})["sid"]
        for p in (first, second)
    ]
    assert sid[0] != sid[1]


def test_wrong_password_and_unknown_user_get_the_same_answer(api: Api) -> None:
    wrong = api.client.post("/auth/login", json={"username": "alice", "password": "nope"})
    unknown = api.client.post("/auth/login", json={"username": "mallory", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.data == unknown.data
    assert wrong.json["error"] == "invalid_credentials"
    assert "WWW-Authenticate" not in wrong.headers


def test_a_disabled_user_cannot_log_in(api: Api, users: Users) -> None:
    users.by_id["2"].active = False
    response = api.client.post(
        "/auth/login", json={"username": "bob", "password": "correct horse"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": "username=alice&password=x", "content_type": "application/x-www-form-urlencoded"},
        {"data": "{not json", "content_type": "application/json"},
        {"data": '{"username": "alice", "password": "x"}', "content_type": "text/plain"},
        {"json": ["alice", "x"]},
        {"json": "alice"},
        {"json": {}},
        {"json": {"username": "alice"}},
        {"json": {"password": "x"}},
        {"json": {"username": "", "password": "x"}},
        {"json": {"username": 1, "password": "x"}},
        {"json": {"username": "alice", "password": ["x"]}},
        {"json": {"username": "alice", "password": None}},
        {"json": {"username": "a" * 257, "password": "x"}},
        {"json": {"username": "alice", "password": "x" * 1025}},
        {"json": {"username": "al\nice", "password": "x"}},
        {"json": {"username": "alice\x00", "password": "x"}},
        {"json": {"username": "\x1b[31malice", "password": "x"}},
        {"json": {"username": "\ud800", "password": "x"}},
        {"json": {"username": "alice", "password": "\udfff"}},
        {"data": "[" * 5000 + "]" * 5000, "content_type": "application/json"},
        {"data": b"\xff\xfe\x00", "content_type": "application/json"},
        {},
    ],
)
def test_a_malformed_login_is_400_invalid_request(api: Api, kwargs: dict[str, Any]) -> None:
    response = api.client.post("/auth/login", **kwargs)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert response.json["message"]


def test_an_oversized_body_is_413_json(api: Api) -> None:
    response = api.client.post(
        "/auth/login", json={"username": "alice", "password": "x", "pad": "y" * 20000}
    )
    assert response.status_code == 413
    assert response.json["error"] == "request_too_large"


def chunked_post(app: Flask, body: bytes) -> tuple[int, dict[str, Any]]:
    """POST /auth/login with a chunked body (no Content-Length) to a real server."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        connection.request(
            "POST",
            "/auth/login",
            body=iter([body[i : i + 4096] for i in range(0, len(body), 4096)]),
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.mark.parametrize("extra", [16 * 1024, 1024 * 1024])
def test_an_oversized_chunked_body_is_413_json(app: Flask, extra: int) -> None:
    body = json.dumps({"username": "alice", "password": "x", "pad": "y" * extra}).encode()
    status, answer = chunked_post(app, body)
    assert (status, answer["error"]) == (413, "request_too_large")


def test_a_chunked_body_within_the_limit_is_read_whole(app: Flask) -> None:
    body = json.dumps({"username": "alice", "password": "correct horse", "pad": "y" * 16000})
    status, answer = chunked_post(app, body.encode())
    assert status == 200, answer


ROUTES = {
    "/auth/login": "POST",
    "/auth/reissue": "POST",
    "/auth/logout": "POST",
    "/auth/logout-all": "POST",
    "/auth/sessions": "GET",
    "/auth/sessions/AAAAAAAAAAAAAAAAAAAAAA": "DELETE",
}


@pytest.mark.parametrize(
    ("route", "method"),
    [
        (route, method)
        for route, allowed in ROUTES.items()
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
        if method != allowed
    ],
)
def test_a_wrong_method_is_a_json_405(api: Api, route: str, method: str) -> None:
    response = api.client.open(route, method=method)
    assert response.status_code == 405
    assert response.json["error"] == "method_not_allowed"
    # The same Allow header as the route's OPTIONS answer.
    assert response.headers["Allow"] == api.client.options(route).headers["Allow"]
    allowed = ROUTES[route]
    assert response.headers["Allow"] == (
        "GET, HEAD, OPTIONS" if allowed == "GET" else f"{allowed}, OPTIONS"
    )
