"""Attack class: claims missing, of the wrong type, or at the edges of their time window."""

from __future__ import annotations

from typing import Any

import pytest
from forge import (
    ACCESS_HEADER,
    KEYS,
    REFRESH_HEADER,
    assert_access_refused,
    forge,
    login_claims,
)
from helpers import Api, Clock


@pytest.mark.parametrize("claim", ["sub", "role", "sid", "jti", "rti", "iat", "exp"])
def test_each_required_access_claim_missing_is_refused(api: Api, claim: str) -> None:
    access, _ = login_claims(api)
    del access[claim]
    assert_access_refused(api, forge(ACCESS_HEADER, access, KEYS.access))


@pytest.mark.parametrize("claim", ["sub", "sid", "jti", "gen", "iat", "exp"])
def test_each_required_refresh_claim_missing_is_refused(api: Api, claim: str) -> None:
    access, refresh = login_claims(api)
    del refresh[claim]
    response = api.reissue(
        {
            "access_token": forge(ACCESS_HEADER, access, KEYS.access),
            "refresh_token": forge(REFRESH_HEADER, refresh, KEYS.refresh),
        }
    )
    assert response.json["error"] == "refresh_token_invalid"


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("sub", 1),
        ("sub", ""),
        ("sub", "x" * 300),
        ("role", None),
        ("role", ["admin"]),
        ("sid", "short"),
        ("sid", "../../other"),
        ("jti", ["x"]),
        ("rti", "has space in it!!"),
        ("exp", "soon"),
        ("exp", True),
        ("exp", 1e20),
        ("iat", "then"),
    ],
)
def test_claims_of_the_wrong_type_are_refused(api: Api, claim: str, value: Any) -> None:
    access, _ = login_claims(api)
    access[claim] = value
    assert_access_refused(api, forge(ACCESS_HEADER, access, KEYS.access))


def test_an_unexpected_audience_is_refused(api: Api) -> None:
    access, _ = login_claims(api)
    access["aud"] = "someone-else"
    assert_access_refused(api, forge(ACCESS_HEADER, access, KEYS.access))


def test_a_wrong_issuer_is_refused_where_one_is_configured(make_app: Any) -> None:
    api = Api(make_app(DUALTOKEN_ISSUER="https://auth.example"))
    access, _ = login_claims(api)
    access["iss"] = "https://evil.example"
    assert_access_refused(api, forge(ACCESS_HEADER, access, KEYS.access))


@pytest.mark.parametrize(("leeway", "ahead", "accepted"), [(0, 60, False), (120, 60, True)])
def test_nbf_in_the_future_is_refused_beyond_the_leeway(
    make_app: Any, leeway: int, ahead: int, accepted: bool
) -> None:
    api = Api(make_app(DUALTOKEN_LEEWAY=leeway))
    access, _ = login_claims(api)
    access["nbf"] = access["iat"] + ahead
    status = api.get("/me", forge(ACCESS_HEADER, access, KEYS.access)).status_code
    assert (status == 200) is accepted


@pytest.mark.parametrize(("leeway", "ahead", "accepted"), [(0, 3600, False), (300, 120, True)])
def test_iat_in_the_future_is_refused_beyond_the_leeway(
    make_app: Any, leeway: int, ahead: int, accepted: bool
) -> None:
    api = Api(make_app(DUALTOKEN_LEEWAY=leeway))
    access, _ = login_claims(api)
    access["iat"] += ahead
    access["exp"] += ahead
    status = api.get("/me", forge(ACCESS_HEADER, access, KEYS.access)).status_code
    assert (status == 200) is accepted


def test_exp_is_checked_to_the_second(api: Api, clock: Clock) -> None:
    clock.align()
    access, _ = login_claims(api)
    access["exp"] = access["iat"] + 1
    token = forge(ACCESS_HEADER, access, KEYS.access)
    assert api.get("/me", token).status_code == 200
    clock.advance(1)
    assert api.get("/me", token).json["error"] == "token_expired"


def test_exp_within_the_leeway_is_accepted(make_app: Any, clock: Clock) -> None:
    api = Api(make_app(DUALTOKEN_LEEWAY=2))
    clock.align()
    access, _ = login_claims(api)
    access["exp"] = access["iat"] + 1
    token = forge(ACCESS_HEADER, access, KEYS.access)
    clock.advance(1.5)  # past exp, inside the leeway
    assert api.get("/me", token).status_code == 200


@pytest.mark.parametrize("gen", [-1, "1", True, 1.5, None])
def test_a_refresh_generation_of_the_wrong_type_is_refused(api: Api, gen: Any) -> None:
    access, refresh = login_claims(api)
    refresh["gen"] = gen
    response = api.reissue(
        {
            "access_token": forge(ACCESS_HEADER, access, KEYS.access),
            "refresh_token": forge(REFRESH_HEADER, refresh, KEYS.refresh),
        }
    )
    assert response.json["error"] == "refresh_token_invalid"
