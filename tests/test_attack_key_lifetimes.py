"""Attack: keys whose lifetimes depend on one process's settings. An ended session never
comes back and a counter never loses its expiry, whatever the settings of the process
that wrote a key or of any process after it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import jwt
from flask import Flask
from helpers import Api, Clock, bearer, sid_of

from flask_dualtoken.state import get_state


def test_logout_all_by_a_process_with_a_short_max_age_is_never_undone(
    make_app: Callable[..., Flask], clock: Clock
) -> None:
    long_lived = Api(make_app(DUALTOKEN_SESSION_MAX_AGE=timedelta(days=30)))
    short_lived = Api(make_app(DUALTOKEN_SESSION_MAX_AGE=1, DUALTOKEN_REFRESH_EXPIRES=1))
    pair = long_lived.login()
    other = short_lived.login()
    short_lived.client.post("/auth/logout-all", headers=bearer(other["access_token"]))
    clock.advance(2.5)  # every key the short-lived process sized has expired
    for _ in range(2):
        response = long_lived.reissue(pair)
        assert (response.status_code, response.json["error"]) == (401, "session_revoked")
    assert long_lived.get_json("/auth/sessions", long_lived.login())["sessions"][0][
        "sid"
    ] != sid_of(pair)


def test_a_login_by_a_process_with_a_short_max_age_never_shortens_other_sessions(
    make_app: Callable[..., Flask], clock: Clock
) -> None:
    long_lived = Api(make_app(DUALTOKEN_SESSION_MAX_AGE=timedelta(days=30)))
    short_lived = Api(make_app(DUALTOKEN_SESSION_MAX_AGE=1, DUALTOKEN_REFRESH_EXPIRES=1))
    pair = long_lived.login()
    short_lived.login()
    clock.advance(2.5)
    assert long_lived.reissue(pair).status_code == 200
    listed = long_lived.get_json("/auth/sessions", long_lived.login())["sessions"]
    assert sid_of(pair) in {s["sid"] for s in listed}


def test_an_ended_session_stays_ended_after_its_keys_expire(
    make_app: Callable[..., Flask], clock: Clock
) -> None:
    app = make_app(DUALTOKEN_SESSION_MAX_AGE=2, DUALTOKEN_REFRESH_EXPIRES=2)
    api = Api(app)
    pair = api.login()
    later = api.login()
    api.client.post("/auth/logout-all", headers=bearer(later["access_token"]))
    clock.advance(3.5)
    assert api.reissue(pair).status_code == 401
    assert api.reissue(later).status_code == 401


def test_no_access_token_outlives_its_sessions_absolute_end(
    make_app: Callable[..., Flask], clock: Clock
) -> None:
    api = Api(make_app(DUALTOKEN_SESSION_MAX_AGE=3, DUALTOKEN_ACCESS_EXPIRES=900))
    clock.align()
    pair = api.login()
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    end = claims["iat"] + 3
    assert claims["exp"] <= end
    assert pair["expires_in"] <= 3
    clock.advance(1.2)
    fresh = api.reissue(pair).json
    assert jwt.decode(fresh["access_token"], options={"verify_signature": False})["exp"] <= end
    assert fresh["expires_in"] <= 2


def test_the_user_index_outlives_every_session_in_it(app: Flask, api: Api) -> None:
    store = get_state(app).store
    api.login()
    ttl = store.client.ttl(store.index_key("1"))
    assert ttl >= 30 * 24 * 3600
