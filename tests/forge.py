"""The attacker's toolkit for the attack modules: tokens built by hand, byte by byte, so
that no library smooths over what an attacker would really send."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
from helpers import SECRET, Api

from flask_dualtoken.keys import SigningKeys

KEYS = SigningKeys.from_secret(SECRET.encode())
ACCESS_HEADER = {"alg": "HS256", "typ": "at+jwt", "kid": KEYS.kid}
REFRESH_HEADER = {"alg": "HS256", "typ": "rt+jwt", "kid": KEYS.kid}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A JWS with the given header and claims; ``key=None`` leaves the signature empty."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def unverified(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def login_claims(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    """The claims of a fresh real pair: (access, refresh)."""
    pair = api.login()
    return unverified(pair["access_token"]), unverified(pair["refresh_token"])


def assert_access_refused(api: Api, token: str) -> None:
    response = api.get("/me", token)
    assert response.status_code == 401, response.json
    assert response.json["error"] in ("token_invalid", "token_expired")


def assert_reissue_refused(api: Api, access: str, refresh: str) -> None:
    response = api.reissue({"access_token": access, "refresh_token": refresh})
    assert response.status_code == 401, response.json
