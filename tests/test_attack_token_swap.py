"""Attack class: one token kind presented where the other is expected, on every route."""

from __future__ import annotations

from helpers import Api, bearer


def test_a_refresh_token_never_passes_as_an_access_token(api: Api) -> None:
    pair = api.login()
    rt = pair["refresh_token"]
    assert api.get("/me", rt).json["error"] == "token_invalid"
    assert api.client.post("/auth/logout-all", headers=bearer(rt)).status_code == 401
    assert api.get("/auth/sessions", rt).status_code == 401


def test_an_access_token_never_passes_as_a_refresh_token(api: Api) -> None:
    pair = api.login()
    at = pair["access_token"]
    response = api.reissue({"access_token": at, "refresh_token": at})
    assert response.json["error"] == "refresh_token_invalid"
    assert api.logout({"access_token": at, "refresh_token": at}).status_code == 401


def test_swapped_pairs_are_refused_and_change_nothing(api: Api) -> None:
    pair = api.login()
    swapped = {"access_token": pair["refresh_token"], "refresh_token": pair["access_token"]}
    assert api.reissue(swapped).json["error"] == "token_invalid"
    assert api.logout(swapped).status_code == 401
    assert api.reissue(pair).status_code == 200
