"""Push revocation against real servers: a killed subscription, Redis' own command count,
an outage, a Sentinel failover, and two gunicorn servers on one Redis."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
import redis
from appserver import Server
from flask import Flask
from helpers import Api, Users, app_on_url
from servers import RedisClusterServers, RedisServer, SentinelSetup
from test_push_revocation import (
    BOUND,
    assert_within_bound,
    guard_of,
    known,
    listening,
    refused_after,
    status,
    wait_until_listening,
)

from flask_dualtoken.state import get_state

pytestmark = pytest.mark.real_redis


@contextmanager
def apps_on(url: str, users: Users, count: int = 2, **config: Any) -> Iterator[list[Flask]]:
    with ExitStack() as stack:
        apps = []
        for _ in range(count):
            apps.append(stack.enter_context(app_on_url(users, url, **config)))
        yield apps


def commands(client: redis.Redis) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def test_a_subscription_killed_right_before_a_revocation_misses_nothing(
    redis_server: RedisServer, users: Users
) -> None:
    """CLIENT KILL TYPE pubsub, then a logout at once: the announcement is lost with the
    connection, and the other process must still refuse the token within the bound."""
    with apps_on(redis_server.url, users) as (a_app, b_app), redis_server.client() as admin:
        a, b = listening(a_app, b_app)
        lags = []
        for _ in range(20):
            pair = known(b, a.login())
            wait_until_listening(b_app)
            assert admin.client_kill_filter(_type="pubsub") >= 1
            assert a.logout(pair).status_code == 204
            lags.append(refused_after(b, pair))
        assert_within_bound(lags)


def test_steady_state_protected_requests_send_redis_almost_nothing(
    redis_server: RedisServer, users: Users
) -> None:
    """INFO commandstats counts every command (inside scripts too) from every client: 200
    protected requests after the warm-up cost at most a few heartbeats."""
    with apps_on(redis_server.url, users) as (a_app, b_app), redis_server.client() as admin:
        a, b = listening(a_app, b_app)
        pair = known(b, a.login())
        before = commands(admin)
        for _ in range(200):
            assert status(b, pair) == (200, None)
        spent = commands(admin) - before - 1  # the INFO above
        assert spent <= 5, spent


def test_strict_mode_asks_redis_on_every_request_for_comparison(
    redis_server: RedisServer, users: Users
) -> None:
    with apps_on(redis_server.url, users, count=1, DUALTOKEN_REVOCATION="strict") as (app,):
        api = Api(app)
        pair = api.login()
        with redis_server.client() as admin:
            before = commands(admin)
            for _ in range(20):
                assert status(api, pair) == (200, None)
            assert commands(admin) - before - 1 >= 20


def test_with_redis_down_known_dead_sessions_stay_refused_and_others_work_as_expiry(
    own_redis_server: RedisServer, users: Users
) -> None:
    with apps_on(own_redis_server.url, users, count=1) as (app,):
        api = Api(app)
        live, ended = api.login(), api.login()
        assert status(api, live) == (200, None)
        wait_until_listening(app)
        assert status(api, live) == (200, None)
        assert api.logout(ended).status_code == 204
        assert status(api, ended) == (401, "session_revoked")
        own_redis_server.stop()
        start = time.monotonic()
        assert status(api, ended) == (401, "session_revoked")
        assert status(api, live) == (200, None)  # as "expiry" would
        assert time.monotonic() - start < 2


def test_strict_mode_answers_503_with_redis_down(
    own_redis_server: RedisServer, users: Users
) -> None:
    with apps_on(own_redis_server.url, users, count=1, DUALTOKEN_REVOCATION="strict") as (app,):
        api = Api(app)
        pair = api.login()
        own_redis_server.stop()
        assert api.get("/me", pair["access_token"]).status_code == 503


def test_a_revocation_after_a_sentinel_failover_reaches_the_other_process(
    redis_sentinel: SentinelSetup, users: Users
) -> None:
    with apps_on(redis_sentinel.url, users) as (a_app, b_app):
        a, b = listening(a_app, b_app)
        pair = known(b, a.login())
        redis_sentinel.failover()
        deadline = time.monotonic() + 30
        while True:  # the writer may need a moment to find the new master
            response = a.logout(pair)
            if response.status_code == 204:
                break
            assert response.status_code == 503
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert refused_after(b, pair) < BOUND
        # And once B listens again (on the new master), a fresh session is remembered
        # and its revocation pushed.
        wait_until_listening(b_app, timeout=30)
        fresh = known(b, a.login())
        wait_until_listening(b_app)
        known(b, fresh)
        assert a.logout(fresh).status_code == 204
        assert refused_after(b, fresh) < BOUND
        assert guard_of(b_app).remembered >= 1


@pytest.mark.parametrize(
    "options",
    [
        ("--preload", "--workers", "2", "--threads", "4"),
        ("--preload", "--workers", "2", "--worker-class", "gevent"),
    ],
    ids=["preload-threads", "preload-gevent"],
)
def test_two_gunicorn_servers_refuse_a_token_ended_on_the_other(
    own_redis_server: RedisServer, options: tuple[str, ...]
) -> None:
    """Each worker listens for itself (nothing started in the master before the fork),
    and a logout on one server is refused by every worker of the other within the bound."""
    servers = [Server(name, own_redis_server.url, options=options) for name in ("one", "two")]
    try:
        one, two = servers
        pids: set[int] = set()
        lags = []
        for _ in range(10):
            pair = one.login()
            token = pair["access_token"]
            for _ in range(20):  # spread over the workers of both servers
                for server in servers:
                    code, body = server.get("/me", token)
                    assert code == 200, body
                    pids.add(json.loads(body)["pid"])
            code, _ = one.post("/auth/logout", {"refresh_token": pair["refresh_token"]}, token)
            assert code == 204
            start = time.monotonic()
            while True:
                code, body = two.get("/me", token)
                if code == 401:
                    assert json.loads(body)["error"] == "session_revoked"
                    break
                assert code == 200
                assert time.monotonic() - start < 2
            lags.append(time.monotonic() - start)
        assert_within_bound(lags)
        with own_redis_server.client() as admin:
            subscribers = admin.client_list(_type="pubsub")
        assert len(subscribers) == len(pids), (subscribers, pids)  # one per worker, none more
    finally:
        for server in servers:
            server.stop()


@pytest.mark.cluster
def test_on_a_cluster_revocations_from_every_primary_reach_the_other_process(
    redis_cluster: RedisClusterServers,
) -> None:
    """Users whose keys live on each of the three primaries: a listener hears each
    primary on a connection of its own, and every slot's announcements reach it."""
    users = Users()
    for i in range(24):
        users.add(f"user{i}")
    with apps_on(redis_cluster.url, users) as (a_app, b_app), redis_cluster.client() as admin:
        a, b = listening(a_app, b_app, warm_user="user0")
        store = get_state(a_app).store
        primaries, lags = set(), []
        for i in range(24):
            pair = known(b, a.login(f"user{i}"))
            user_id = str(users.authenticate(f"user{i}", "correct horse").id)  # type: ignore[union-attr]
            slot = admin.keyslot(store.index_key(user_id))
            primaries.add(admin.nodes_manager.get_node_from_slot(slot).name)
            assert a.logout(pair).status_code == 204
            lags.append(refused_after(b, pair))
        assert len(primaries) == 3
        assert_within_bound(lags)


def test_a_flood_of_announcements_delays_no_refusal_beyond_the_heartbeat_bound(
    redis_server: RedisServer, users: Users
) -> None:
    """100,000 announcements published while the other process serves requests, and a
    real logout behind them: it is refused within twice the heartbeat at worst (a listener
    that falls behind is a gap: requests ask Redis), and the lag is reported."""
    with apps_on(redis_server.url, users) as (a_app, b_app), redis_server.client() as admin:
        a, b = listening(a_app, b_app)
        served = known(b, a.login())
        victim = known(b, a.login())
        channel = get_state(a_app).store.channel
        stop = threading.Event()
        answers: list[tuple[int, str | None]] = []

        def serve() -> None:
            client = Api(b_app)
            while not stop.is_set():
                answers.append(status(client, served))

        worker = threading.Thread(target=serve)
        worker.start()
        try:
            with admin.pipeline(transaction=False) as pipe:
                for i in range(100_000):
                    pipe.publish(channel, f"flood{i} user{i % 997}")
                    if i % 5000 == 4999:
                        pipe.execute()
                pipe.execute()
            assert a.logout(victim).status_code == 204
            lag = refused_after(b, victim)
        finally:
            stop.set()
            worker.join()
        heartbeat = get_state(b_app).settings.revocation_heartbeat
        assert lag < 2 * heartbeat + BOUND, lag
        assert answers and set(answers) == {(200, None)}
        print(f"flood: last logout refused after {lag * 1000:.1f} ms; {len(answers)} served")
