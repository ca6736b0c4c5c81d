"""DUALTOKEN_SESSION_ADMIN_FRESH: ending another session, or every session, needs a recent
login (OWASP ASVS 5.0 7.5.2), with the same RFC 9470 challenge as ``fresh=``; ending
one's own session does not; off by default."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
import time_machine
from flask import Flask
from helpers import SECRET, Api, bearer, sid_of

from flask_dualtoken import ConfigError
from flask_dualtoken.config import load_settings
from flask_dualtoken.openapi import openapi_document

N = 60


def auth_time(pair: dict[str, Any]) -> int:
    value: int = jwt.decode(pair["access_token"], options={"verify_signature": False})["auth_time"]
    return value


def end_other(api: Api, pair: dict[str, Any], other: dict[str, Any]) -> Any:
    return api.client.delete(
        f"/auth/sessions/{sid_of(other)}", headers=bearer(pair["access_token"])
    )


def logout_all(api: Api, pair: dict[str, Any]) -> Any:
    return api.client.post("/auth/logout-all", headers=bearer(pair["access_token"]))


def live(api: Api, pair: dict[str, Any]) -> bool:
    return bool(api.get("/me", pair["access_token"]).status_code == 200)


def at(seconds: float) -> Any:
    """The app's clock at an exact second (the freshness check reads it; Redis keeps its
    own, which decides only whether sessions are alive)."""
    return time_machine.travel(seconds, tick=False)


@pytest.fixture
def api(make_app: Callable[..., Flask]) -> Api:
    return Api(make_app(DUALTOKEN_SESSION_ADMIN_FRESH=N))


def assert_challenge(response: Any) -> None:
    assert response.status_code == 401
    assert response.json["error"] == "insufficient_user_authentication"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="api", error="insufficient_user_authentication"')
    assert challenge.endswith(f', max_age="{N}"')


def test_ending_another_session_exactly_n_seconds_after_the_login_is_allowed(api: Api) -> None:
    pair, other = api.login(), api.login()
    with at(auth_time(pair) + N):
        assert end_other(api, pair, other).status_code == 204
    assert not live(api, other)


def test_ending_another_session_n_plus_one_seconds_after_is_refused_and_changes_nothing(
    api: Api,
) -> None:
    pair, other = api.login(), api.login()
    with at(auth_time(pair) + N + 1):
        assert_challenge(end_other(api, pair, other))
    assert live(api, other)
    assert api.reissue(other).status_code == 200


def test_logout_all_at_the_boundary(api: Api) -> None:
    pair, other = api.login(), api.login()
    with at(auth_time(pair) + N + 1):
        assert_challenge(logout_all(api, pair))
    assert live(api, pair) and live(api, other)
    with at(auth_time(pair) + N):
        assert logout_all(api, pair).status_code == 204
    assert not live(api, pair) and not live(api, other)


def test_ending_ones_own_session_needs_no_fresh_login(api: Api) -> None:
    pair, other = api.login(), api.login()
    with at(auth_time(pair) + N + 1):
        own = api.client.delete(
            f"/auth/sessions/{sid_of(pair)}", headers=bearer(pair["access_token"])
        )
        assert own.status_code == 204
    assert live(api, other)


def test_an_unknown_session_id_of_another_is_challenged_before_it_is_looked_up(
    api: Api,
) -> None:
    pair = api.login()
    with at(auth_time(pair) + N + 1):
        assert_challenge(
            api.client.delete("/auth/sessions/nope", headers=bearer(pair["access_token"]))
        )
    with at(auth_time(pair) + N):
        response = api.client.delete("/auth/sessions/nope", headers=bearer(pair["access_token"]))
        assert response.json["error"] == "session_not_found"


def test_a_reauthentication_makes_the_login_fresh_again(api: Api) -> None:
    pair, other = api.login(), api.login()
    with at(auth_time(pair) + N + 1):
        assert_challenge(end_other(api, pair, other))
    # Redis's clock decides the new auth_time: travel to it again.
    new = api.reauth(pair).json
    assert new is not None
    with at(auth_time(new) + N):
        assert end_other(api, new, other).status_code == 204


def test_reissue_does_not_make_it_fresh(api: Api) -> None:
    pair, other = api.login(), api.login()
    new = api.reissue(pair).json
    assert new is not None
    with at(auth_time(pair) + N + 1):
        assert_challenge(end_other(api, new, other))


def test_it_is_off_by_default(make_app: Callable[..., Flask]) -> None:
    api = Api(make_app())
    pair, other, third = api.login(), api.login(), api.login()
    with at(auth_time(pair) + 600):  # the access token (15 minutes) is still valid
        assert end_other(api, pair, other).status_code == 204
        assert logout_all(api, pair).status_code == 204
    assert not live(api, third)


def test_the_python_api_is_not_affected(make_app: Callable[..., Flask]) -> None:
    app = make_app(DUALTOKEN_SESSION_ADMIN_FRESH=1)
    api = Api(app)
    pair = api.login()
    dualtoken = app.extensions["dualtoken_object"]
    with at(auth_time(pair) + 600), app.test_request_context():
        assert dualtoken.revoke_session("1", sid_of(pair)) is True
        dualtoken.revoke_all_sessions("1")


@pytest.mark.parametrize(("value", "seconds"), [(0, 0), (300, 300), (timedelta(minutes=2), 120)])
def test_it_takes_seconds_or_a_timedelta(value: Any, seconds: int) -> None:
    settings = load_settings(
        {"DUALTOKEN_SECRET_KEY": SECRET, "DUALTOKEN_SESSION_ADMIN_FRESH": value}
    )
    assert settings.session_admin_fresh == seconds


@pytest.mark.parametrize("value", [-1, "300", 1.5, True, None, timedelta(seconds=1.5)])
def test_a_bad_value_stops_the_app_at_init(make_app: Callable[..., Flask], value: Any) -> None:
    with pytest.raises(ConfigError, match="DUALTOKEN_SESSION_ADMIN_FRESH"):
        make_app(DUALTOKEN_SESSION_ADMIN_FRESH=value)


def test_the_openapi_description_names_the_challenge_only_when_it_applies() -> None:
    def unauthorized(fresh: int) -> dict[str, Any]:
        settings = load_settings(
            {"DUALTOKEN_SECRET_KEY": SECRET, "DUALTOKEN_SESSION_ADMIN_FRESH": fresh}
        )
        paths = openapi_document(settings)["paths"]
        answers = [
            paths["/auth/logout-all"]["post"]["responses"]["401"],
            paths["/auth/sessions/{sid}"]["delete"]["responses"]["401"],
        ]
        assert answers[0] == answers[1]
        return answers[0]

    off, on = unauthorized(0), unauthorized(N)
    assert "insufficient_user_authentication" not in off["description"]
    assert "insufficient_user_authentication" in on["description"]
    assert f'max_age="{N}"' in on["headers"]["WWW-Authenticate"]["description"]
