"""Attack: many requests at once against a limit. Every limit is one atomic step in Redis,
so a burst gets exactly as far as a sequence would: on one process, on many threads, on
several app servers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from appserver import Server
from flask import Flask
from helpers import Users
from servers import RedisServer

from flask_dualtoken.state import get_state


def burst(count: int, send: Callable[[int], int]) -> list[int]:
    """Run ``send(i)`` for i in range(count) on as many threads, released at once."""
    barrier = threading.Barrier(count)
    statuses: list[int] = [0] * count

    def worker(i: int) -> None:
        barrier.wait()
        statuses[i] = send(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return statuses


@pytest.fixture
def slow_users(users: Users, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each authenticate call takes as long as a password hash, and is recorded."""
    calls: list[str] = []
    real = users.authenticate

    def authenticate(username: str, password: str) -> Any:
        calls.append(username)
        time.sleep(0.03)
        return real(username, password)

    monkeypatch.setattr(users, "authenticate", authenticate)
    return calls


def post_login(app: Flask, username: str, password: str) -> int:
    response = app.test_client().post(
        "/auth/login", json={"username": username, "password": password}
    )
    return response.status_code


def test_a_burst_of_wrong_passwords_reaches_authenticate_at_most_the_limit(
    make_app: Callable[..., Flask], slow_users: list[str]
) -> None:
    app = make_app(DUALTOKEN_LOGIN_MAX_ATTEMPTS=5)
    statuses = burst(40, lambda i: post_login(app, "alice", f"guess-{i}"))
    assert len(slow_users) <= 5
    assert statuses.count(401) == len(slow_users)
    assert statuses.count(429) == 40 - len(slow_users)


def test_the_right_password_inside_a_burst_gets_no_extra_attempt(
    make_app: Callable[..., Flask], slow_users: list[str]
) -> None:
    app = make_app(DUALTOKEN_LOGIN_MAX_ATTEMPTS=5)
    passwords = [f"guess-{i}" for i in range(39)] + ["correct horse"]
    statuses = burst(40, lambda i: post_login(app, "alice", passwords[i]))
    # Wrong passwords get five tries at most; the right one, if it got in, only itself
    # (a success gives back its own attempt, which a later request may then take).
    assert statuses.count(401) <= 5
    assert len(slow_users) <= 5 + statuses.count(200)
    assert statuses.count(200) + statuses.count(401) == len(slow_users)
    # A success frees only its own attempt: what the burst's failures counted stands.
    expected = 429 if statuses.count(401) == 5 else 200
    assert post_login(app, "alice", "correct horse") == expected


def test_a_burst_from_one_address_reaches_authenticate_at_most_the_address_limit(
    make_app: Callable[..., Flask], slow_users: list[str]
) -> None:
    # 60 threads: each holds a connection of the test client's pool (redis-py's default
    # pool has room for about that many at once).
    app = make_app(DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=20)
    statuses = burst(60, lambda i: post_login(app, f"user{i}", "wrong"))
    assert len(slow_users) <= 20
    assert statuses.count(429) == 60 - len(slow_users)
    state = get_state(app)
    key = state.throttle._counters("x", "127.0.0.1")[1].key
    assert int(state.store.client.get(key)) <= 20


def test_a_burst_of_logins_never_leaves_more_sessions_than_the_cap(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(DUALTOKEN_MAX_SESSIONS=5, DUALTOKEN_LOGIN_MAX_ATTEMPTS=0)
    statuses = burst(30, lambda i: post_login(app, "alice", "correct horse"))
    assert statuses == [200] * 30
    store = get_state(app).store
    assert store.client.zcard(store.index_key("1")) == 5
    with app.app_context():
        assert len(app.extensions["dualtoken_object"].list_sessions("1")) == 5


# -- several app servers ----------------------------------------------------------------


@pytest.fixture
def two_servers(redis_server: RedisServer) -> Iterator[list[Server]]:
    with redis_server.client() as client:
        client.flushall()
    started = [Server(name, redis_server.url) for name in ("a", "b")]
    yield started
    for server in started:
        server.stop()


@pytest.mark.real_redis
def test_a_burst_across_two_servers_and_four_processes_gets_five_attempts(
    two_servers: list[Server], redis_server: RedisServer
) -> None:
    def send(i: int) -> int:
        server = two_servers[i % 2]
        status, _ = server.post("/auth/login", {"username": "alice", "password": f"x{i}"})
        return status

    statuses = burst(40, send)
    with redis_server.client() as client:
        calls = int(client.get("test:authenticate_calls") or 0)
    assert set(statuses) <= {401, 429}, statuses
    assert calls <= 5
    assert statuses.count(401) == calls
    assert statuses.count(429) == 40 - calls
    status, body = two_servers[0].post(
        "/auth/login", {"username": "alice", "password": "correct horse"}
    )
    assert (status, json.loads(body)["error"]) == (429, "too_many_attempts")
