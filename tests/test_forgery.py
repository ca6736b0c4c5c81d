"""Forged tokens, made the way an attacker would (sessions.md, "Security checks")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from conftest import SECRET, Api, Clock

from flask_dualtoken.keys import SigningKeys

KEYS = SigningKeys.from_secret(SECRET.encode())
HEADER = {"alg": "HS256", "typ": "at+jwt", "kid": KEYS.kid}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A JWS built by hand, so nothing in a library smooths over what the attacker sends."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def access_claims(api: Api) -> dict[str, Any]:
    token = api.login()["access_token"]
    return jwt.decode(token, options={"verify_signature": False})


def assert_refused(api: Api, token: str) -> None:
    response = api.get("/me", token)
    assert response.status_code == 401
    assert response.json["error"] in ("token_invalid", "token_expired")


def test_a_well_formed_forgery_with_the_right_key_passes(api: Api) -> None:
    # The control: the forging helper itself makes tokens we accept.
    token = forge(HEADER, access_claims(api), KEYS.access)
    assert api.get("/me", token).status_code == 200


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_letter_case_is_refused(api: Api, alg: str) -> None:
    assert_refused(api, forge({**HEADER, "alg": alg}, access_claims(api), None))


@pytest.mark.parametrize("alg", ["RS256", "ES256", "HS384", "HS512", "PS256"])
def test_other_algorithms_are_refused(api: Api, alg: str) -> None:
    assert_refused(api, forge({**HEADER, "alg": alg}, access_claims(api), KEYS.access))


def test_an_empty_signature_is_refused(api: Api) -> None:
    token = forge(HEADER, access_claims(api), KEYS.access)
    assert_refused(api, token.rsplit(".", 1)[0] + ".")


def test_a_token_signed_with_the_raw_secret_is_refused(api: Api) -> None:
    token = forge(HEADER, access_claims(api), SECRET.encode())
    assert_refused(api, token)


def test_a_refresh_key_signature_does_not_make_an_access_token(api: Api) -> None:
    token = forge(HEADER, access_claims(api), KEYS.refresh)
    assert_refused(api, token)


@pytest.mark.parametrize(
    "change",
    [
        {"kid": None},
        {"typ": None},
        {"typ": "JWT"},
        {"typ": "rt+jwt"},
        {"typ": "AT+JWT"},
        {"kid": "1"},
        {"kid": 7},
        {"kid": "../../../../dev/null"},
        {"kid": "' OR '1'='1"},
        {"kid": KEYS.kid + "x"},
        {"jku": "http://127.0.0.1:1/jwks.json"},
        {"x5u": "http://127.0.0.1:1/cert.pem"},
        {"jwk": {"kty": "oct", "k": "AAAA"}},
        {"x5c": ["MIIB"]},
        {"crit": ["exp"]},
        {"crit": ["x-unknown"], "x-unknown": 1},
        {"cty": "JWT"},
    ],
)
def test_any_header_but_exactly_ours_is_refused(api: Api, change: dict[str, Any]) -> None:
    # Correctly signed with the access key: only the header is wrong.
    header = {k: v for k, v in {**HEADER, **change}.items() if v is not None}
    assert_refused(api, forge(header, access_claims(api), KEYS.access))


@pytest.mark.parametrize("claim", ["sub", "role", "sid", "jti", "rti", "iat", "exp"])
def test_each_required_claim_missing_is_refused(api: Api, claim: str) -> None:
    claims = access_claims(api)
    del claims[claim]
    assert_refused(api, forge(HEADER, claims, KEYS.access))


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("sub", 1),
        ("sub", ""),
        ("role", None),
        ("sid", "short"),
        ("jti", ["x"]),
        ("rti", "has space in it!!"),
        ("exp", "soon"),
        ("exp", True),
        ("iat", "then"),
    ],
)
def test_claims_of_the_wrong_type_are_refused(api: Api, claim: str, value: Any) -> None:
    claims = {**access_claims(api), claim: value}
    assert_refused(api, forge(HEADER, claims, KEYS.access))


def test_nbf_in_the_future_is_refused(api: Api) -> None:
    claims = access_claims(api)
    claims["nbf"] = claims["iat"] + 60
    assert_refused(api, forge(HEADER, claims, KEYS.access))


def test_iat_in_the_future_is_refused(api: Api) -> None:
    claims = access_claims(api)
    claims["iat"] += 3600
    claims["exp"] += 3600
    assert_refused(api, forge(HEADER, claims, KEYS.access))


def test_an_unexpected_audience_is_refused(api: Api) -> None:
    claims = {**access_claims(api), "aud": "someone-else"}
    assert_refused(api, forge(HEADER, claims, KEYS.access))


def test_exp_is_checked_to_the_second(api: Api, clock: Clock) -> None:
    clock.align()
    claims = access_claims(api)
    claims["exp"] = claims["iat"] + 1
    token = forge(HEADER, claims, KEYS.access)
    assert api.get("/me", token).status_code == 200
    clock.advance(1)
    assert api.get("/me", token).json["error"] == "token_expired"


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
@pytest.mark.parametrize("route", ["/auth/login", "/auth/reissue", "/auth/logout"])
def test_a_wrong_method_is_a_json_405(api: Api, method: str, route: str) -> None:
    response = getattr(api.client, method)(route)
    assert response.status_code == 405
    assert response.json["error"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]
