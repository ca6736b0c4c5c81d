"""Two keys from one secret: HMAC-SHA256(secret, "access") and HMAC-SHA256(secret, "refresh").

The checks here verify our tokens the way an outside service would, knowing only the
secret and the formulas, with hmac/base64 and no code of ours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from helpers import SECRET, Api

from flask_dualtoken import derive_key
from flask_dualtoken.keys import SigningKeys


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def independent_verify(token: str, key: bytes) -> dict:
    header, payload, signature = token.split(".")
    expected = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(expected, b64url_decode(signature)), "signature does not verify"
    return json.loads(b64url_decode(payload))


def outside_key(label: bytes) -> bytes:
    return hmac.new(SECRET.encode(), label, hashlib.sha256).digest()


def test_derived_keys_are_the_seed_formulas() -> None:
    keys = SigningKeys.from_secret(SECRET.encode())
    assert keys.access == outside_key(b"access")
    assert keys.refresh == outside_key(b"refresh")
    assert keys.access != keys.refresh
    assert derive_key(SECRET.encode(), b"access") == keys.access


def test_keys_are_never_printed() -> None:
    keys = SigningKeys.from_secret(SECRET.encode())
    assert keys.access.hex() not in repr(keys)
    assert "hidden" in repr(keys)


def test_an_outside_verifier_checks_access_tokens_with_the_access_formula(api: Api) -> None:
    pair = api.login()
    claims = independent_verify(pair["access_token"], outside_key(b"access"))
    assert claims["sub"] == "1"
    assert claims["role"] == "admin"


def test_an_outside_verifier_checks_refresh_tokens_with_the_refresh_formula(api: Api) -> None:
    pair = api.login()
    claims = independent_verify(pair["refresh_token"], outside_key(b"refresh"))
    assert claims["sub"] == "1"


def test_neither_token_verifies_under_the_other_key_or_the_raw_secret(api: Api) -> None:
    pair = api.login()
    for token, wrong_keys in (
        (pair["access_token"], [outside_key(b"refresh"), SECRET.encode()]),
        (pair["refresh_token"], [outside_key(b"access"), SECRET.encode()]),
    ):
        header, payload, signature = token.split(".")
        for key in wrong_keys:
            forged = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            assert not hmac.compare_digest(forged, b64url_decode(signature))


def test_str_and_bytes_secrets_derive_the_same_keys() -> None:
    from flask_dualtoken.config import load_settings

    as_str = load_settings({"DUALTOKEN_SECRET_KEY": "ключ-" + SECRET})
    as_bytes = load_settings({"DUALTOKEN_SECRET_KEY": ("ключ-" + SECRET).encode("utf-8")})
    assert as_str.secret == as_bytes.secret
    assert (
        SigningKeys.from_secret(as_str.secret).access
        == hmac.new(("ключ-" + SECRET).encode("utf-8"), b"access", hashlib.sha256).digest()
    )
