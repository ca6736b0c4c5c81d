"""Attack class: algorithm confusion (alg none, asymmetric algorithms, a PEM as HMAC key)."""

from __future__ import annotations

import pytest
from forge import ACCESS_HEADER, KEYS, REFRESH_HEADER, assert_access_refused, forge, login_claims
from helpers import Api

# What an RS/HS confusion attack uses as the "HMAC secret": the server's public key in
# PEM form (any PEM does: we have no public key, which is the point).
PEM = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7Fxzs1a8XJ0N3pBqv9PBvZ7e6C0m
3C9b6nHxP8Zz9l0d0sJY1bqI2h8fTzGJrWZ7yQf8l3zL6Yv0d4qKJm0k0g==
-----END PUBLIC KEY-----
"""


def test_the_forging_helper_itself_makes_tokens_we_accept(api: Api) -> None:
    access, _ = login_claims(api)
    assert api.get("/me", forge(ACCESS_HEADER, access, KEYS.access)).status_code == 200


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "NoNe", ""])
def test_alg_none_in_any_letter_case_is_refused(api: Api, alg: str) -> None:
    access, _ = login_claims(api)
    assert_access_refused(api, forge({**ACCESS_HEADER, "alg": alg}, access, None))
    assert_access_refused(api, forge({**ACCESS_HEADER, "alg": alg}, access, KEYS.access))


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "EdDSA", "HS384", "HS512", "hs256"])
def test_any_other_algorithm_is_refused(api: Api, alg: str) -> None:
    access, _ = login_claims(api)
    assert_access_refused(api, forge({**ACCESS_HEADER, "alg": alg}, access, KEYS.access))


@pytest.mark.parametrize("alg", ["HS256", "RS256"])
def test_a_pem_used_as_the_hmac_secret_is_refused(api: Api, alg: str) -> None:
    access, refresh = login_claims(api)
    assert_access_refused(api, forge({**ACCESS_HEADER, "alg": alg}, access, PEM))
    forged_refresh = forge({**REFRESH_HEADER, "alg": alg}, refresh, PEM)
    genuine_access = forge(ACCESS_HEADER, access, KEYS.access)
    response = api.reissue({"access_token": genuine_access, "refresh_token": forged_refresh})
    assert response.json["error"] == "refresh_token_invalid"
