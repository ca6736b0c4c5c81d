"""``@jwt_required(fresh=...)``: routes that need a recent login answer RFC 9470's 401
``insufficient_user_authentication`` when the token's ``auth_time`` is too old."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from helpers import Api, Clock

from flask_dualtoken import jwt_required, verify_request
from flask_dualtoken.config import ACCESS_ALGORITHMS


@pytest.fixture
def fresh_app(make_app: Callable[..., Flask]) -> Flask:
    app = make_app(DUALTOKEN_FRESH_MAX_AGE=3)

    @app.post("/within-2")
    @jwt_required(fresh=2)
    def within_two() -> dict[str, Any]:
        return {"ok": True}

    @app.post("/default")
    @jwt_required(fresh=True)
    def default() -> dict[str, Any]:
        return {"ok": True}

    @app.post("/hook")
    def hook() -> dict[str, Any]:
        verify_request(fresh=2)
        return {"ok": True}

    return app


def post(api: Api, path: str, pair: dict[str, Any]) -> Any:
    return api.client.post(path, headers={"Authorization": f"Bearer {pair['access_token']}"})


@pytest.mark.parametrize("access_algorithm", ACCESS_ALGORITHMS)
def test_a_fresh_login_passes_and_an_old_one_gets_rfc_9470s_challenge(
    fresh_app: Flask, clock: Clock
) -> None:
    api = Api(fresh_app)
    clock.align()
    pair = api.login()
    assert post(api, "/within-2", pair).status_code == 200
    clock.advance(2.5)  # auth_time is whole seconds: 2.5 s after it, older than 2
    response = post(api, "/within-2", pair)
    assert response.status_code == 401
    assert response.json["error"] == "insufficient_user_authentication"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="api", error="insufficient_user_authentication"')
    assert challenge.endswith(', max_age="2"')
    assert post(api, "/default", pair).status_code == 200  # 3 s are still fine there
    assert api.get("/me", pair["access_token"]).status_code == 200  # not fresh: no need


def test_the_boundary_is_inclusive(fresh_app: Flask, clock: Clock) -> None:
    api = Api(fresh_app)
    clock.align()  # just past a whole second: auth_time is that second
    pair = api.login()
    clock.advance(1.8)  # 1.85 s after auth_time
    assert post(api, "/within-2", pair).status_code == 200
    clock.advance(0.3)  # 2.15 s
    assert post(api, "/within-2", pair).status_code == 401


def test_fresh_true_uses_the_setting(fresh_app: Flask, clock: Clock) -> None:
    api = Api(fresh_app)
    clock.align()
    pair = api.login()
    clock.advance(3.3)
    response = post(api, "/default", pair)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].endswith('max_age="3"')


def test_reissue_does_not_make_a_login_fresh(fresh_app: Flask, clock: Clock) -> None:
    api = Api(fresh_app)
    clock.align()
    pair = api.login()
    clock.advance(2.5)
    new = api.reissue(pair).json
    assert new is not None
    assert post(api, "/within-2", new).status_code == 401


def test_a_replayed_pair_is_no_fresher(fresh_app: Flask, clock: Clock) -> None:
    api = Api(fresh_app)
    clock.align()
    pair = api.login()
    clock.advance(2.5)
    first = api.reissue(pair).json
    replayed = api.reissue(pair).json
    assert first == replayed and replayed is not None
    assert post(api, "/within-2", replayed).status_code == 401


def test_verify_request_takes_fresh_too(fresh_app: Flask, clock: Clock) -> None:
    api = Api(fresh_app)
    clock.align()
    pair = api.login()
    assert post(api, "/hook", pair).status_code == 200
    clock.advance(2.5)
    assert post(api, "/hook", pair).json["error"] == "insufficient_user_authentication"


@pytest.mark.parametrize("fresh", [0, -5, 1.5, "300", None])
def test_fresh_must_be_a_flag_or_positive_seconds(fresh: Any) -> None:
    with pytest.raises(ValueError, match="fresh"):
        jwt_required(fresh=fresh)
