"""Redis down: 503 store_unavailable, nothing issued; recovery when it comes back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from helpers import Api, Users, app_on_url
from redis.exceptions import ClusterDownError, ReadOnlyError, TryAgainError
from servers import RedisClusterServers, RedisServer, redis_binary

from flask_dualtoken.errors import StoreUnavailable
from flask_dualtoken.redis_scripts import StoreHealth

pytestmark = pytest.mark.real_redis


@pytest.fixture
def outage_app(own_redis_server: RedisServer, users: Users) -> Iterator[Flask]:
    with app_on_url(users, own_redis_server.url) as app:
        yield app


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503
    assert response.json["error"] == "store_unavailable"
    assert response.headers["Retry-After"] == "1"
    assert b"token" not in response.data.replace(b"store_unavailable", b"")


def test_with_redis_down_nothing_is_issued(outage_app: Any, own_redis_server: RedisServer) -> None:
    api = Api(outage_app)
    pair = api.login()
    own_redis_server.stop()
    assert_unavailable(
        api.client.post("/auth/login", json={"username": "alice", "password": "correct horse"})
    )
    assert_unavailable(api.reissue(pair))
    assert_unavailable(api.logout(pair))
    # Access tokens are stateless: protected routes keep working until they expire.
    assert api.get("/me", pair["access_token"]).status_code == 200


def test_service_recovers_when_redis_returns(
    outage_app: Any, own_redis_server: RedisServer
) -> None:
    api = Api(outage_app)
    pair = api.login()
    own_redis_server.stop()
    assert_unavailable(api.reissue(pair))
    own_redis_server.start()  # same port, empty, no scripts loaded
    # The restarted server lost the session (no persistence here): refused, not a 500.
    assert api.reissue(pair).json["error"] == "refresh_token_invalid"
    fresh = api.login()
    assert api.reissue(fresh).status_code == 200


def test_a_script_error_is_a_503_not_a_500(
    outage_app: Any, own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    api = Api(outage_app)
    pair = api.login()
    # Break the session hash: the script's HMGET now hits a wrong-type key.
    with own_redis_server.client() as client:
        for key in client.scan_iter("*:s:*"):
            client.delete(key)
            client.set(key, "not a hash")
    assert_unavailable(api.reissue(pair))
    # ... and the log tells the operator it is a bug, not an outage, with Redis's text.
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "not an outage" in line
    assert "WRONGTYPE" in line
    assert pair["refresh_token"] not in caplog.text


def test_an_outage_is_logged_once_with_the_address_and_its_end_too(
    outage_app: Any, own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    api = Api(outage_app)
    pair = api.login()
    own_redis_server.stop()
    for _ in range(3):  # the throttle's path and the store's path alike
        assert_unavailable(
            api.client.post("/auth/login", json={"username": "alice", "password": "x"})
        )
        assert_unavailable(api.reissue(pair))
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert line.startswith(f"session store unavailable at {own_redis_server.url}: ")
    assert "ConnectionError" in line
    own_redis_server.start()
    api.login()
    assert any(
        r.getMessage() == f"session store at {own_redis_server.url} answers again"
        for r in caplog.records
    )
    own_redis_server.stop()
    assert_unavailable(api.reissue(pair))
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2, "a new outage is logged again"


def test_the_logged_address_carries_no_password(
    users: Users, caplog: pytest.LogCaptureFixture
) -> None:
    with app_on_url(users, "redis://user:redis-pass-word@127.0.0.1:1/0") as app:
        response = Api(app).client.post("/auth/login", json={"username": "alice", "password": "x"})
        assert_unavailable(response)
    assert "redis-pass-word" not in caplog.text
    assert "session store unavailable at redis://<credentials hidden>" in caplog.text


@pytest.mark.cluster
def test_a_cluster_down_at_start_up_is_a_warning_then_503s_until_it_is_back(
    users: Users, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = RedisClusterServers(redis_binary())
    try:
        with app_on_url(users, cluster.url) as app:  # no node answers yet: init_app works
            result = app.test_cli_runner().invoke(args=["dualtoken", "gen-secret"])
            assert result.exit_code == 0 and len(result.output.strip()) == 64
            api = Api(app)
            response = api.client.post(
                "/auth/login", json={"username": "alice", "password": "correct horse"}
            )
            assert_unavailable(response)
            assert "Redis Cluster not reachable" in caplog.text
            cluster.start()
            pair = api.login()
            assert api.reissue(pair).status_code == 200
    finally:
        cluster.stop()


@pytest.mark.cluster
def test_a_cluster_url_works_end_to_end(redis_cluster: Any, users: Users) -> None:
    with redis_cluster.client() as direct:
        direct.flushall()
    with app_on_url(users, redis_cluster.url) as app:
        api = Api(app)
        pair = api.login()
        new = api.reissue(pair).json
        assert api.get_json("/auth/sessions", new)["sessions"][0]["current"] is True
        assert api.logout(new).status_code == 204


@pytest.mark.parametrize(
    "reply",
    [
        ClusterDownError("CLUSTERDOWN The cluster is down"),
        TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
        ReadOnlyError("READONLY You can't write against a read only replica."),
    ],
)
def test_replies_that_mean_the_store_cannot_serve_now_are_an_outage_logged_once(
    reply: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    """A cluster without quorum or a primary just demoted answers with an error reply, yet
    it is an outage, not a bug: logged once, as the other outages, not per request."""
    health = StoreHealth("redis://127.0.0.1:6379/0")
    for _ in range(3):
        assert isinstance(health.failed(reply), StoreUnavailable)
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "unavailable" in line
    assert "not an outage" not in line
