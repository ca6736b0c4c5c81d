"""Attack: the access token of an ended session manages the user's sessions. After reuse
detection ended the thief's session, the thief's unexpired access token must not list,
end or log out the victim's sessions: the session routes check the caller's own session
in the same script that does their work, in every mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from helpers import Api, Clock, bearer, sid_of


@pytest.fixture(params=["expiry", "strict", "push"])
def api(make_app: Callable[..., Flask], request: pytest.FixtureRequest) -> Api:
    # Grace 0: the stolen refresh token's second use is reuse at once.
    return Api(make_app(DUALTOKEN_REUSE_GRACE=0, DUALTOKEN_REVOCATION=request.param))


def thief_after_reuse(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    """The victim keeps one session; in another, the thief's copy is caught as reuse.
    Returns (the thief's pair, the victim's other session)."""
    victim_other = api.login()
    stolen = api.login()
    thief = api.reissue(stolen).json  # the thief rotates first
    assert api.reissue(stolen).json["error"] == "refresh_token_reused"  # the victim's try
    return thief, victim_other


def refused(response: Any) -> bool:
    return bool(response.status_code == 401 and response.json["error"] == "session_revoked")


def test_an_ended_sessions_token_cannot_list_sessions(api: Api) -> None:
    thief, _ = thief_after_reuse(api)
    assert refused(api.get("/auth/sessions", thief["access_token"]))


def test_an_ended_sessions_token_cannot_end_another_session(api: Api) -> None:
    thief, victim = thief_after_reuse(api)
    response = api.client.delete(
        f"/auth/sessions/{sid_of(victim)}", headers=bearer(thief["access_token"])
    )
    assert refused(response)
    assert api.reissue(victim).status_code == 200


def test_an_ended_sessions_token_cannot_log_everyone_out(api: Api) -> None:
    thief, victim = thief_after_reuse(api)
    assert refused(api.client.post("/auth/logout-all", headers=bearer(thief["access_token"])))
    assert api.reissue(victim).status_code == 200


def test_a_logged_out_sessions_token_manages_nothing(api: Api) -> None:
    pair, other = api.login(), api.login()
    assert api.logout(pair).status_code == 204
    token = pair["access_token"]
    assert refused(api.get("/auth/sessions", token))
    assert refused(api.client.delete(f"/auth/sessions/{sid_of(other)}", headers=bearer(token)))
    assert refused(api.client.post("/auth/logout-all", headers=bearer(token)))
    assert api.reissue(other).status_code == 200


def test_a_live_session_may_end_itself_and_then_manages_nothing(api: Api) -> None:
    pair = api.login()
    response = api.client.delete(
        f"/auth/sessions/{sid_of(pair)}", headers=bearer(pair["access_token"])
    )
    assert response.status_code == 204
    assert refused(api.get("/auth/sessions", pair["access_token"]))


def test_a_session_past_its_absolute_end_manages_nothing(
    make_app: Callable[..., Flask], clock: Clock
) -> None:
    api = Api(make_app(DUALTOKEN_SESSION_MAX_AGE=1, DUALTOKEN_ACCESS_EXPIRES=900))
    pair = api.login()
    clock.advance(1.5)
    # Its access token ends with it, though the access lifetime is longer.
    assert api.get("/auth/sessions", pair["access_token"]).json["error"] == "token_expired"
