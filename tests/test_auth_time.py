"""``auth_time`` and ``amr``: when and how the user last proved who they are, in every
access token of the session, unchanged by reissue (OIDC Core 2, RFC 8176)."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from flask import Flask
from helpers import Api, Clock, Users

from flask_dualtoken import DualToken


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def dualtoken_of(app: Flask) -> DualToken:
    extension: DualToken = app.extensions["dualtoken_object"]
    return extension


def test_a_password_login_says_when_and_how(api: Api) -> None:
    access = claims(api.login()["access_token"])
    assert access["auth_time"] == access["iat"]
    assert access["amr"] == ["pwd"]


def test_reissue_carries_the_login_time_and_methods_unchanged(api: Api, clock: Clock) -> None:
    clock.align()
    pair = api.login()
    first = claims(pair["access_token"])
    clock.advance(1.2)
    response = api.reissue(pair)
    assert response.status_code == 200
    assert response.json is not None
    later = claims(response.json["access_token"])
    assert later["iat"] > first["iat"]
    assert later["auth_time"] == first["auth_time"]
    assert later["amr"] == ["pwd"]
    clock.advance(1.2)
    again = api.reissue(response.json).json
    assert again is not None
    assert claims(again["access_token"])["auth_time"] == first["auth_time"]


def test_a_replay_within_grace_carries_them_too(api: Api) -> None:
    pair = api.login()
    first = api.reissue(pair).json
    replayed = api.reissue(pair).json
    assert first == replayed
    assert first is not None
    assert claims(first["access_token"])["auth_time"] == claims(pair["access_token"])["iat"]


def test_issue_takes_the_methods_the_app_used(app: Flask, users: Users) -> None:
    dualtoken = dualtoken_of(app)
    with app.test_request_context():
        pair = dualtoken.issue(users.by_id["1"], amr=["otp", "hwk"])
        plain = dualtoken.issue(users.by_id["1"])
    access = claims(pair.access_token)
    assert access["amr"] == ["otp", "hwk"]
    assert access["auth_time"] == access["iat"]
    assert "amr" not in claims(plain.access_token)  # the app did not say: no claim
    assert "auth_time" in claims(plain.access_token)


@pytest.mark.parametrize(
    "amr", ["pwd", ["pwd", ""], ["a b"], ["x" * 33], [1], ["m"] * 9, ["pwd,otp"]]
)
def test_issue_refuses_methods_that_are_not_short_names(
    app: Flask, users: Users, amr: Any
) -> None:
    with app.test_request_context(), pytest.raises(ValueError, match="amr"):
        dualtoken_of(app).issue(users.by_id["1"], amr=amr)


def test_an_app_cannot_set_them_through_its_claims(make_app: Any) -> None:
    app = make_app()
    dualtoken_of(app).claims_loader(lambda user: {"auth_time": 0})
    response = app.test_client().post(
        "/auth/login", json={"username": "alice", "password": "correct horse"}
    )
    assert response.status_code == 500
    assert response.json["error"] == "server_misconfigured"
