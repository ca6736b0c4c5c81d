"""DUALTOKEN_ACCESS_ALGORITHM = "EdDSA": access tokens signed with an Ed25519 key whose seed
is HMAC-SHA256(secret, "access-ed25519"), its public half published at {prefix}/jwks.json.

The keys are derived here independently, with hmac and cryptography and no code of ours,
and tokens are verified by PyJWT from the published key set alone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from forge import b64, forge, login_claims, unverified
from helpers import SECRET, Api

from flask_dualtoken import ConfigError
from flask_dualtoken.keys import SigningKeys

NEW_SECRET = "rotated-secret-" + "n" * 40


def outside_private_key(secret: str) -> Ed25519PrivateKey:
    seed = hmac.new(secret.encode(), b"access-ed25519", hashlib.sha256).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def jwks_of(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/auth/jwks.json")
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    return body


def verify_from_jwks(key_set: dict[str, Any], token: str) -> dict[str, Any]:
    """What another service does: pick the key by kid from the set, verify as EdDSA."""
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(key_set)[kid]
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["EdDSA"])
    return claims


@pytest.fixture
def eddsa_app(make_app: Any) -> Flask:
    app: Flask = make_app(DUALTOKEN_ACCESS_ALGORITHM="EdDSA")
    return app


@pytest.fixture
def eddsa(eddsa_app: Flask) -> Api:
    return Api(eddsa_app)


# -- the keys ------------------------------------------------------------------------------


def test_the_published_key_is_the_one_derived_from_the_secret(eddsa_app: Flask) -> None:
    (jwk,) = jwks_of(eddsa_app)["keys"]
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64(raw_public(outside_private_key(SECRET))),
        "kid": SigningKeys.from_secret(SECRET.encode()).kid,
        "use": "sig",
        "alg": "EdDSA",
    }


def test_access_tokens_are_signed_by_the_derived_private_key(eddsa: Api) -> None:
    token = eddsa.login()["access_token"]
    public = outside_private_key(SECRET).public_key()
    claims = jwt.decode(token, public, algorithms=["EdDSA"])
    assert claims["sub"] == "1"
    assert claims["role"] == "admin"
    assert jwt.get_unverified_header(token) == {
        "alg": "EdDSA",
        "typ": "at+jwt",
        "kid": SigningKeys.from_secret(SECRET.encode()).kid,
    }


def test_refresh_tokens_stay_hs256_under_the_refresh_key(eddsa: Api) -> None:
    token = eddsa.login()["refresh_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    refresh_key = hmac.new(SECRET.encode(), b"refresh", hashlib.sha256).digest()
    assert jwt.decode(token, refresh_key, algorithms=["HS256"])["sub"] == "1"


def test_a_token_verifies_with_pyjwt_from_the_key_set_alone(eddsa_app: Flask) -> None:
    token = Api(eddsa_app).login()["access_token"]
    assert verify_from_jwks(jwks_of(eddsa_app), token)["sid"]


def test_the_key_set_is_cacheable_and_holds_no_private_part(eddsa_app: Flask) -> None:
    response = eddsa_app.test_client().get("/auth/jwks.json")
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.mimetype == "application/json"
    for jwk in response.json["keys"]:
        assert "d" not in jwk
    seed = hmac.new(SECRET.encode(), b"access-ed25519", hashlib.sha256).digest()
    assert b64(seed) not in response.text
    assert eddsa_app.test_client().head("/auth/jwks.json").status_code == 200


def test_the_private_key_is_never_printed(eddsa_app: Flask) -> None:
    codec = eddsa_app.extensions["dualtoken"].codec
    shown = repr(codec.access_key_pairs) + repr(eddsa_app.extensions["dualtoken"].settings)
    seed = hmac.new(SECRET.encode(), b"access-ed25519", hashlib.sha256).digest()
    assert seed.hex() not in shown
    assert b64(seed) not in shown
    assert "hidden" in shown


def test_with_hs256_there_is_no_key_set_to_publish(make_app: Any) -> None:
    response = make_app().test_client().get("/auth/jwks.json")
    assert response.status_code == 404
    assert response.json == {"error": "not_found", "message": "Not found."}


def test_the_key_set_route_takes_only_get(eddsa_app: Flask) -> None:
    response = eddsa_app.test_client().post("/auth/jwks.json")
    assert response.status_code == 405
    assert response.json["error"] == "method_not_allowed"


# -- secret rotation ------------------------------------------------------------------------


def test_previous_secrets_publish_their_keys_and_their_tokens_still_verify(
    make_app: Any,
) -> None:
    old_pair = Api(make_app(DUALTOKEN_ACCESS_ALGORITHM="EdDSA")).login()
    rotated_app = make_app(
        DUALTOKEN_ACCESS_ALGORITHM="EdDSA",
        DUALTOKEN_SECRET_KEY=NEW_SECRET,
        DUALTOKEN_PREVIOUS_SECRET_KEYS=[SECRET],
    )
    key_set = jwks_of(rotated_app)
    assert [k["kid"] for k in key_set["keys"]] == [
        SigningKeys.from_secret(NEW_SECRET.encode()).kid,
        SigningKeys.from_secret(SECRET.encode()).kid,
    ]
    assert [k["x"] for k in key_set["keys"]] == [
        b64(raw_public(outside_private_key(NEW_SECRET))),
        b64(raw_public(outside_private_key(SECRET))),
    ]
    rotated = Api(rotated_app)
    assert verify_from_jwks(key_set, old_pair["access_token"])["sub"] == "1"
    assert rotated.get("/me", old_pair["access_token"]).status_code == 200
    new_pair = rotated.reissue(old_pair).json
    assert jwt.get_unverified_header(new_pair["access_token"])["kid"] == key_set["keys"][0]["kid"]
    assert verify_from_jwks(key_set, new_pair["access_token"])["sub"] == "1"


def test_once_a_secret_is_dropped_its_key_is_unpublished_and_refused(make_app: Any) -> None:
    old_pair = Api(make_app(DUALTOKEN_ACCESS_ALGORITHM="EdDSA")).login()
    only_new = make_app(DUALTOKEN_ACCESS_ALGORITHM="EdDSA", DUALTOKEN_SECRET_KEY=NEW_SECRET)
    assert len(jwks_of(only_new)["keys"]) == 1
    assert Api(only_new).get("/me", old_pair["access_token"]).json["error"] == "token_invalid"


# -- algorithm confusion: each kind's algorithm comes from the settings, never the token ---


def test_an_hs256_access_token_is_refused_in_eddsa_mode(make_app: Any) -> None:
    hs256_pair = Api(make_app()).login()  # the same secret, the same kid
    eddsa = Api(make_app(DUALTOKEN_ACCESS_ALGORITHM="EdDSA"))
    assert eddsa.get("/me", hs256_pair["access_token"]).json["error"] == "token_invalid"
    assert eddsa.reissue(hs256_pair).json["error"] == "token_invalid"


def test_an_eddsa_access_token_is_refused_in_hs256_mode(make_app: Any) -> None:
    eddsa_pair = Api(make_app(DUALTOKEN_ACCESS_ALGORITHM="EdDSA")).login()
    hs256 = Api(make_app())
    assert hs256.get("/me", eddsa_pair["access_token"]).json["error"] == "token_invalid"
    assert hs256.reissue(eddsa_pair).json["error"] == "token_invalid"


def test_a_refresh_token_is_no_access_token_in_eddsa_mode(eddsa: Api) -> None:
    pair = eddsa.login()
    assert eddsa.get("/me", pair["refresh_token"]).json["error"] == "token_invalid"
    swapped = {"access_token": pair["refresh_token"], "refresh_token": pair["access_token"]}
    assert eddsa.reissue(swapped).status_code == 401


def test_the_public_key_used_as_an_hmac_secret_forges_nothing(eddsa_app: Flask) -> None:
    eddsa = Api(eddsa_app)
    header, claims = login_claims(eddsa)
    jwk = jwks_of(eddsa_app)["keys"][0]
    public = raw_public(outside_private_key(SECRET))
    pem = (
        outside_private_key(SECRET)
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    candidates = [public, pem, jwk["x"].encode(), json.dumps(jwk).encode()]
    for key in candidates:
        for alg in ("HS256", "EdDSA"):
            forged = forge({**header, "alg": alg}, claims, key)
            assert eddsa.get("/me", forged).json["error"] == "token_invalid", (alg, key)


def test_a_token_signed_with_another_ed25519_key_is_refused(eddsa: Api) -> None:
    """Under our kid, and with the attacker's public key offered in the header (jwk), as a
    key URL (jku) or not at all: only the published keys verify."""
    _, claims = login_claims(eddsa)
    mine = Ed25519PrivateKey.generate()
    kid = SigningKeys.from_secret(SECRET.encode()).kid
    offered = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw_public(mine))}
    for extra in ({}, {"jwk": offered}, {"jku": "https://attacker.example/jwks.json"}):
        headers = {"typ": "at+jwt", "kid": kid, **extra}
        forged = jwt.encode(claims, mine, algorithm="EdDSA", headers=headers)
        assert eddsa.get("/me", forged).json["error"] == "token_invalid", extra


def test_an_unsigned_token_is_refused(eddsa: Api) -> None:
    header, claims = login_claims(eddsa)
    for alg in ("none", "EdDSA"):
        forged = forge({**header, "alg": alg}, claims, None)
        assert eddsa.get("/me", forged).json["error"] == "token_invalid"


@pytest.mark.parametrize(
    "kid", ["unknown-kid", "../../etc/passwd", "", 7, None, "x" * 5000, {"kid": 1}]
)
def test_a_kid_that_names_no_key_is_refused(make_app: Any, kid: Any) -> None:
    app = make_app(
        DUALTOKEN_ACCESS_ALGORITHM="EdDSA",
        DUALTOKEN_SECRET_KEY=NEW_SECRET,
        DUALTOKEN_PREVIOUS_SECRET_KEYS=[SECRET],
    )
    api = Api(app)
    token = api.login()["access_token"]
    _, payload, signature = token.split(".")
    header = {**jwt.get_unverified_header(token), "kid": kid}
    tampered = f"{b64(json.dumps(header).encode())}.{payload}.{signature}"
    assert api.get("/me", tampered).json["error"] == "token_invalid"


def test_the_claims_of_an_eddsa_token_cannot_be_changed(eddsa: Api) -> None:
    token = eddsa.login()["access_token"]
    head, _, signature = token.split(".")
    claims = {**unverified(token), "role": "superuser"}
    tampered = f"{head}.{b64(json.dumps(claims).encode())}.{signature}"
    assert eddsa.get("/me", tampered).json["error"] == "token_invalid"


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["RS256", "eddsa", "none", "", None, 1])
def test_an_unknown_algorithm_stops_the_app(make_app: Any, value: Any) -> None:
    with pytest.raises(ConfigError, match="DUALTOKEN_ACCESS_ALGORITHM"):
        make_app(DUALTOKEN_ACCESS_ALGORITHM=value)


def test_eddsa_without_cryptography_stops_the_app_saying_what_to_install(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cryptography", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"DUALTOKEN_ACCESS_ALGORITHM.*flask-dualtoken\[eddsa\]"):
        make_app(DUALTOKEN_ACCESS_ALGORITHM="EdDSA")
    make_app()  # HS256 needs no cryptography
