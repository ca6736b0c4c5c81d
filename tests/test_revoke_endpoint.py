"""POST /auth/revoke (RFC 7009): a form-encoded token (and an optional token_type_hint) ends
the session of a valid access or refresh token; the answer is the same 200 for any token.
With introspection clients configured only they may ask; in cookie mode a browser's request
needs its CSRF header."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from flask import Flask
from helpers import Api, Clock, sid_of

from flask_dualtoken import signals

FORM = "application/x-www-form-urlencoded"
CLIENT_SECRET = "gateway-secret-" + "g" * 40


def revoke(app: Flask, token: str, **form: str) -> Any:
    headers = form.pop("headers", None) or {}
    return app.test_client().post("/auth/revoke", data={"token": token, **form}, headers=headers)


@pytest.mark.parametrize("access_algorithm", ["HS256", "EdDSA"])
@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_a_valid_token_ends_its_session(app: Flask, kind: str) -> None:
    api = Api(app)
    pair, other = api.login(), api.login()
    ended = []
    with signals.session_revoked.connected_to(lambda _, **kw: ended.append(kw), app):
        response = revoke(app, pair[kind], token_type_hint=kind)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_data() == b""
    assert [e["session_id"] for e in ended] == [sid_of(pair)]
    assert api.get("/me", pair["access_token"]).json["error"] == "session_revoked"
    assert api.reissue(pair).json["error"] == "session_revoked"
    assert api.get("/me", other["access_token"]).status_code == 200


@pytest.mark.parametrize("hint", ["refresh_token", "access_token", "nonsense"])
def test_the_hint_is_only_a_hint(app: Flask, hint: str) -> None:
    api = Api(app)
    pair = api.login()
    assert revoke(app, pair["access_token"], token_type_hint=hint).status_code == 200
    assert api.reissue(pair).json["error"] == "session_revoked"


def test_any_other_token_gets_the_same_200_and_changes_nothing(app: Flask) -> None:
    api = Api(app)
    pair = api.login()
    head, payload, _ = pair["access_token"].split(".")
    for token in (f"{head}.{payload}.AAAA", "garbage", "a.b.c", "x" * 9000, "\u00e9"):
        response = revoke(app, token)
        assert (response.status_code, response.get_data()) == (200, b""), token
    assert api.get("/me", pair["access_token"]).status_code == 200


def test_an_expired_access_token_ends_nothing(make_app: Any, clock: Clock) -> None:
    app = make_app(DUALTOKEN_ACCESS_EXPIRES=1)
    api = Api(app)
    pair = api.login()
    clock.advance(2.1)
    assert revoke(app, pair["access_token"]).status_code == 200
    assert api.reissue(pair).status_code == 200  # the session lives on


def test_revoking_twice_is_200_both_times(app: Flask) -> None:
    pair = Api(app).login()
    assert revoke(app, pair["refresh_token"]).status_code == 200
    assert revoke(app, pair["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    "kwargs",
    [
        {"json": {"token": "x"}},
        {"data": "", "content_type": FORM},
        {"data": "token=a&token=b", "content_type": FORM},
        {"data": "token_type_hint=access_token", "content_type": FORM},
    ],
)
def test_a_malformed_request_is_400(app: Flask, kwargs: dict[str, Any]) -> None:
    response = app.test_client().post("/auth/revoke", **kwargs)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_with_clients_only_they_may_revoke(make_app: Any) -> None:
    app = make_app(DUALTOKEN_INTROSPECTION_CLIENTS={"gateway": CLIENT_SECRET})
    api = Api(app)
    pair = api.login()
    refused = revoke(app, pair["refresh_token"])
    assert refused.status_code == 401
    assert refused.json["error"] == "invalid_client"
    assert api.reissue(pair).status_code == 200
    raw = base64.b64encode(f"gateway:{CLIENT_SECRET}".encode()).decode()
    fresh = api.login()
    done = revoke(app, fresh["refresh_token"], headers={"Authorization": f"Basic {raw}"})
    assert done.status_code == 200
    assert api.reissue(fresh).json["error"] == "session_revoked"


def cookie_login(app: Flask) -> tuple[Any, dict[str, Any]]:
    client = app.test_client()
    body = client.post(
        "/auth/login",
        json={"username": "alice", "password": "correct horse"},
        headers={"X-Token-Transport": "cookies"},
    ).json
    return client, body


@pytest.mark.parametrize("location", ["cookies", "both"])
def test_in_cookie_mode_a_browser_needs_its_csrf_header(make_app: Any, location: str) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION=location, DUALTOKEN_ACCESS_COOKIE=False)
    client, body = cookie_login(app)
    token = body["access_token"]
    missing = client.post("/auth/revoke", data={"token": token})
    assert missing.status_code == 403
    assert missing.json["error"] == "csrf_failed"
    wrong = client.post("/auth/revoke", data={"token": token}, headers={"X-CSRF-Token": "x"})
    assert wrong.status_code == 403
    assert Api(app).get("/me", token).status_code == 200  # nothing ended
    done = client.post(
        "/auth/revoke", data={"token": token}, headers={"X-CSRF-Token": body["csrf_token"]}
    )
    assert done.status_code == 200
    assert Api(app).get("/me", token).json["error"] == "session_revoked"


@pytest.mark.parametrize("location", ["cookies", "both"])
def test_a_csrf_header_must_match_the_request_s_cookie_whatever_the_token(
    make_app: Any, location: str
) -> None:
    """The header is checked against the CSRF cookie first, before the token is looked
    at; a header of another session (its own cookie's) ends nothing, and gets the same
    200 as an invalid token: no answer tells whether a token is valid."""
    app = make_app(DUALTOKEN_TOKEN_LOCATION=location, DUALTOKEN_ACCESS_COOKIE=False)
    mine, my_body = cookie_login(app)
    _, their_body = cookie_login(app)
    theirs = their_body["access_token"]
    for token in (theirs, "not.a.token"):
        refused = mine.post(  # their CSRF token, not my cookie's
            "/auth/revoke",
            data={"token": token},
            headers={"X-CSRF-Token": their_body["csrf_token"]},
        )
        assert refused.status_code == 403
        assert refused.json["error"] == "csrf_failed"
        done = mine.post(  # my cookie's, not their session's
            "/auth/revoke", data={"token": token}, headers={"X-CSRF-Token": my_body["csrf_token"]}
        )
        assert (done.status_code, done.get_data()) == (200, b"")
    assert Api(app).get("/me", theirs).status_code == 200  # nothing ended
    assert Api(app).get("/me", my_body["access_token"]).status_code == 200


def test_in_both_mode_a_header_client_needs_no_csrf_header(make_app: Any) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION="both")
    pair = Api(app).login()
    assert revoke(app, pair["refresh_token"]).status_code == 200
    assert Api(app).reissue(pair).json["error"] == "session_revoked"
