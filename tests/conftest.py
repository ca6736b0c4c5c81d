"""Shared fixtures: app, client, store, users, clock, Redis servers. Every store-backed test
runs three times, on fakeredis, on a real redis-server and on a 3-master cluster that the
suite starts on loopback ports (tests/servers.py); helpers are in tests/helpers.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis
import time_machine
from flask import Flask
from helpers import Api, Clock, Users, build_app, stop_revocation_listeners
from redis.cluster import RedisCluster
from servers import (
    RedisClusterServers,
    RedisServer,
    SentinelSetup,
    free_port,
    redis_binary,
    server_kind,
)

from flask_dualtoken.state import AppState, get_state
from flask_dualtoken.store import SessionStore


def pytest_report_header() -> str:
    """Which server the real-server tests run on (DUALTOKEN_TEST_SERVER), and its version."""
    import shutil
    import subprocess

    kind = server_kind()
    if kind == "redis" and shutil.which("redis-server") is None:
        return "real-server tests: redis-server is not installed"
    try:
        binary = redis_binary()
    except BaseException:  # skip or fail: the tests themselves say why
        return f"real-server tests: {kind}-server is not available"
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return f"real-server tests: {binary}: {version.stdout.strip()}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(redis_binary(), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A server this test may stop and restart."""
    server = RedisServer(redis_binary(), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_sentinel() -> Iterator[SentinelSetup]:
    setup = SentinelSetup(redis_binary())
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    cluster = RedisClusterServers(redis_binary())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(
    params=[
        "fakeredis",
        pytest.param("redis", marks=pytest.mark.real_redis),
        pytest.param("cluster", marks=[pytest.mark.real_redis, pytest.mark.cluster]),
    ]
)
def redis_client(request: pytest.FixtureRequest) -> Iterator[redis.Redis | RedisCluster]:
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis(server=fakeredis.FakeServer())
        return
    if request.param == "cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        cluster_client = cluster.client()
        cluster_client.flushall()
        cluster_client.script_flush()
        yield cluster_client
        stop_revocation_listeners()  # before the client they use is closed
        cluster_client.close()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = server.client()
    client.flushall()
    client.script_flush()
    yield client
    stop_revocation_listeners()
    client.close()


@pytest.fixture(autouse=True)
def _stop_revocation_listeners() -> Iterator[None]:
    """Push revocation starts a listener thread per app at its first protected request."""
    yield
    stop_revocation_listeners()


@pytest.fixture
def users() -> Users:
    table = Users()
    table.add("alice", role="admin")
    table.add("bob")
    return table


@pytest.fixture
def access_algorithm() -> str:
    """How access tokens are signed; a test parametrises it to run its flow under EdDSA."""
    return "HS256"


@pytest.fixture
def make_app(
    redis_client: redis.Redis, users: Users, access_algorithm: str
) -> Callable[..., Flask]:
    def factory(**config: Any) -> Flask:
        return build_app(
            redis_client, users, **{"DUALTOKEN_ACCESS_ALGORITHM": access_algorithm, **config}
        )

    return factory


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def state(app: Flask) -> AppState:
    return get_state(app)


@pytest.fixture
def store(state: AppState) -> SessionStore:
    return state.store


@pytest.fixture
def api(app: Flask) -> Api:
    return Api(app)


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


@pytest.fixture
def clock(redis_client: redis.Redis) -> Iterator[Clock]:
    if isinstance(redis_client, fakeredis.FakeRedis):
        with time_machine.travel(time.time(), tick=True) as traveller:
            yield Clock(traveller)
    else:
        yield Clock(None)
