"""Attack: work that grows with what one user can create. Sessions per user are capped,
no script walks an unbounded collection, and the session list is bounded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from helpers import Api, Users, bearer, build_app, sid_of
from servers import RedisServer

from flask_dualtoken import signals
from flask_dualtoken.config import ConfigError
from flask_dualtoken.state import get_state


def test_a_login_beyond_the_cap_ends_the_oldest_session(make_app: Callable[..., Flask]) -> None:
    app = make_app(DUALTOKEN_MAX_SESSIONS=3)
    api = Api(app)
    pairs = [api.login() for _ in range(3)]
    seen: list[dict[str, Any]] = []

    def receiver(sender: Flask, **kw: Any) -> None:
        seen.append(kw)

    with signals.session_revoked.connected_to(receiver, app):
        newest = api.login()
    assert [(s["session_id"], s["reason"]) for s in seen] == [(sid_of(pairs[0]), "session_limit")]
    response = api.reissue(pairs[0])
    assert (response.status_code, response.json["error"]) == (401, "session_revoked")
    assert all(api.reissue(p).status_code == 200 for p in pairs[1:])
    listed = {s["sid"] for s in api.get_json("/auth/sessions", newest)["sessions"]}
    assert listed == {sid_of(p) for p in [*pairs[1:], newest]}


def test_the_default_cap_is_100(api: Api, app: Flask) -> None:
    first = api.login()
    for _ in range(100):
        api.login()
    assert api.reissue(first).json["error"] == "session_revoked"
    store = get_state(app).store
    assert store.client.zcard(store.index_key("1")) == 100


def test_the_cap_ends_sessions_in_strict_mode_at_once(make_app: Callable[..., Flask]) -> None:
    api = Api(make_app(DUALTOKEN_MAX_SESSIONS=1, DUALTOKEN_REVOCATION="strict"))
    first = api.login()
    api.login()
    assert api.get("/me", first["access_token"]).json["error"] == "session_revoked"


def test_a_cap_lowered_later_is_reached_in_bounded_steps(
    make_app: Callable[..., Flask], users: Users, redis_client: Any
) -> None:
    api = Api(make_app(DUALTOKEN_MAX_SESSIONS=0, DUALTOKEN_LOGIN_MAX_ATTEMPTS=0))
    for _ in range(230):
        api.login()
    capped = Api(build_app(redis_client, users, DUALTOKEN_MAX_SESSIONS=5))
    store = get_state(capped.client.application).store
    capped.login()  # ends at most 100 per login
    assert store.client.zcard(store.index_key("1")) == 131
    capped.login()
    capped.login()
    assert store.client.zcard(store.index_key("1")) == 5


def test_without_a_cap_the_session_list_shows_the_newest_100(
    make_app: Callable[..., Flask],
) -> None:
    api = Api(make_app(DUALTOKEN_MAX_SESSIONS=0, DUALTOKEN_LOGIN_MAX_ATTEMPTS=0))
    pairs = [api.login() for _ in range(130)]
    listed = api.get_json("/auth/sessions", pairs[-1])["sessions"]
    assert len(listed) == 100
    assert {s["sid"] for s in listed} == {sid_of(p) for p in pairs[30:]}


@pytest.mark.parametrize("value", [-1, 1001, "10", 2.5, True])
def test_the_cap_must_be_an_int_from_0_to_1000(
    make_app: Callable[..., Flask], value: object
) -> None:
    with pytest.raises(ConfigError, match="DUALTOKEN_MAX_SESSIONS"):
        make_app(DUALTOKEN_MAX_SESSIONS=value)


@pytest.mark.real_redis
def test_the_session_list_reads_a_bounded_number_of_sessions(
    redis_server: RedisServer, users: Users
) -> None:
    """Counted by Redis itself: the commands one list request runs inside its script."""
    with redis_server.client() as client:
        client.flushall()
        app = build_app(client, users, DUALTOKEN_MAX_SESSIONS=0, DUALTOKEN_LOGIN_MAX_ATTEMPTS=0)
        api = Api(app)
        for _ in range(400):
            pair = api.login()
        client.config_resetstat()
        response = api.client.get("/auth/sessions", headers=bearer(pair["access_token"]))
        assert response.status_code == 200
        hmget = client.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0)
        assert hmget <= 100


def test_the_throttle_keeps_one_small_counter_per_username(app: Flask, api: Api) -> None:
    for name in ["carol", "Carol", "CAROL", "cArOl", "caROL", "CaRoL"]:
        api.client.post("/auth/login", json={"username": name, "password": "x"})
    store = get_state(app).store
    counters = [k for k in store.client.scan_iter("*:tries") if b"{l" in k]
    assert len(counters) == 1
    assert store.client.get(counters[0]) == b"5"


def test_what_one_user_keeps_in_redis_is_bounded_by_the_cap(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(DUALTOKEN_MAX_SESSIONS=5, DUALTOKEN_LOGIN_MAX_ATTEMPTS=0)
    api = Api(app)
    for i in range(120):
        pair = api.login()
        if i % 3 == 0:
            api.logout(pair)
    api.client.post("/auth/logout-all", headers=bearer(api.login()["access_token"]))
    for _ in range(7):
        api.login()
    store = get_state(app).store
    full, markers = [], []
    for key in store.client.scan_iter("*:s:*"):
        fields = store.client.hgetall(key)
        (full if b"created" in fields else markers).append(key)
        if b"created" not in fields:
            assert set(fields) == {b"uid", b"revoked"}
            assert 0 < store.client.ttl(key) <= 900
    assert len(full) == 5, "live sessions: the cap; everything else is a short-lived marker"
    assert not list(store.client.scan_iter("*:r:*"))[5:]
