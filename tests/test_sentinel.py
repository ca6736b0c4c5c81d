"""Sentinel-managed Redis: the app follows a failover, and sessions survive it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from helpers import Api, Users, app_on_url, bearer
from servers import SentinelSetup

pytestmark = [pytest.mark.real_redis, pytest.mark.sentinel]


@pytest.fixture
def sentinel_app(redis_sentinel: SentinelSetup, users: Users) -> Iterator[Flask]:
    with app_on_url(users, redis_sentinel.url) as app:
        yield app


def replicate(setup: SentinelSetup) -> None:
    """Wait until the replica has every write: what asynchronous replication does not do
    by itself (see the README on what a failover can lose)."""
    with redis.Redis(port=setup.master_port()) as master:
        assert master.execute_command("WAIT", 1, 5000) == 1


def test_the_sentinel_url_reaches_the_master(sentinel_app: Flask) -> None:
    api = Api(sentinel_app)
    pair = api.login()
    assert api.reissue(pair).status_code == 200


def test_sessions_created_before_a_failover_keep_working_after_it(
    sentinel_app: Flask, redis_sentinel: SentinelSetup
) -> None:
    api = Api(sentinel_app)
    pair = api.reissue(api.login()).json
    other = api.login()
    replicate(redis_sentinel)
    old_master = redis_sentinel.master_port()

    redis_sentinel.failover()

    assert redis_sentinel.master_port() != old_master
    rotated = api.reissue(pair)  # scripts reload on the new master by themselves
    assert rotated.status_code == 200, rotated.json
    assert api.reissue(pair).data == rotated.data, "grace replay from the new master"
    assert api.get_json("/auth/sessions", rotated.json)["sessions"]
    assert api.logout(other).status_code == 204
    assert api.reissue(other).json["error"] == "session_revoked"
    fresh = api.login()
    assert (
        api.client.post("/auth/logout-all", headers=bearer(fresh["access_token"])).status_code
        == 204
    )


def test_throttling_state_follows_the_failover(
    sentinel_app: Flask, redis_sentinel: SentinelSetup
) -> None:
    api = Api(sentinel_app)
    for _ in range(5):
        api.client.post("/auth/login", json={"username": "alice", "password": "nope"})
    replicate(redis_sentinel)
    redis_sentinel.failover()
    response: Any = api.client.post(
        "/auth/login", json={"username": "alice", "password": "correct horse"}
    )
    assert response.status_code == 429
