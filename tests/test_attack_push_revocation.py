"""Attacks on push revocation (docs/design.md, "Push revocation") that found defects, kept
as regressions: each test states what the design promises."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable

import pytest
from flask import Flask
from helpers import Api, Users, app_on_url
from servers import RedisServer
from test_push_revocation import guard_of, known, listening, status, wait_until_listening

from flask_dualtoken import revocation
from flask_dualtoken.errors import SessionRevoked
from flask_dualtoken.revocation import PushRevocation
from flask_dualtoken.state import get_state


def test_an_announcement_during_the_exp_update_does_not_resurrect_the_session(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A known session, and a token of it with a later exp (a reissue): check() finds the
    trusted entry and raises its exp (_extend). The session ends and the announcement is
    applied in between (another thread): the update must not put it back as alive."""
    a, b = listening(make_app(), make_app())
    pair = known(b, a.login())
    time.sleep(1.1)  # token times are whole seconds: the reissued token expires later
    newer = a.reissue(pair).json
    assert newer is not None
    guard = guard_of(b.client.application)
    real = guard._extend

    def revoke_in_between(user_id: str, sid: str, period: int, exp: int) -> None:
        seen = guard._heard
        assert a.logout(newer).status_code == 204
        deadline = time.monotonic() + 2
        while guard._heard == seen:  # the announcement is applied...
            assert time.monotonic() < deadline
            time.sleep(0.001)
        real(user_id, sid, period, exp)  # ...then the update goes on

    monkeypatch.setattr(guard, "_extend", revoke_in_between)
    assert status(b, newer) == (200, None)  # concurrent with the logout: fine
    monkeypatch.setattr(guard, "_extend", real)
    assert status(b, newer) == (401, "session_revoked")
    assert status(b, pair) == (401, "session_revoked")


@pytest.mark.real_redis
def test_a_session_this_process_was_told_ended_stays_refused_with_redis_down(
    own_redis_server: RedisServer, users: Users
) -> None:
    """design.md: with Redis down, sessions a process knows as dead stay refused. A
    process that ended a session itself (logout here), or heard its announcement, knows."""
    with app_on_url(users, own_redis_server.url) as app:
        api = Api(app)
        pair = api.login()
        assert status(api, pair) == (200, None)
        wait_until_listening(app)
        assert status(api, pair) == (200, None)  # known alive
        assert api.logout(pair).status_code == 204  # on this very process
        own_redis_server.stop()
        assert status(api, pair) == (401, "session_revoked")


def test_expired_answers_are_swept_even_once_memory_was_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """design.md: an answer lives at most one access-token lifetime. Once the map has been
    full, nothing is ever swept again (the next sweep is set beyond the cap), so a process
    stays on Redis reads for every new session for the rest of its life."""
    monkeypatch.setattr(revocation, "MAX_REMEMBERED_SESSIONS", 3000)

    class Store:
        on_ended = None
        channel = "x"

        def is_live(self, user_id: str, sid: str) -> bool:
            return False

        def shard_of(self, user_id: str) -> int:
            return 0

    class Listener:
        stopping = False

        def trusted_period(self) -> int:
            return 1

        def is_alive(self) -> bool:
            return True

    guard = PushRevocation(Store(), 0.5, 0, 900)  # type: ignore[arg-type]
    guard._listener = Listener()  # type: ignore[assignment]
    soon = int(time.time()) + 1
    for i in range(3000):  # tokens of ended sessions, each seen once
        with pytest.raises(SessionRevoked):
            guard.check("one-user", f"s{i}", soon)
    assert guard.remembered == 3000
    time.sleep(2.1)  # every token those answers served has expired
    with pytest.raises(SessionRevoked):
        guard.check("another", "fresh", soon + 900)
    remembered = guard.remembered
    guard._listener = None  # the fixture that stops listeners must not meet the fake
    assert remembered < 3000


@pytest.mark.real_redis
def test_a_dropped_apps_listener_thread_ends(own_redis_server: RedisServer, users: Users) -> None:
    """A listener reaches its app only weakly, so an app built and dropped (app factories
    in tests, per-tenant apps) leaves no thread and no Redis connection behind. (The
    listener once held the store, whose on_ended held the guard: never freed.)"""

    def listeners() -> int:
        return sum(isinstance(t, revocation._Listener) for t in threading.enumerate())

    before = listeners()
    for _ in range(3):
        with app_on_url(users, own_redis_server.url) as app:
            api = Api(app)
            assert status(api, api.login()) == (200, None)
        del app, api
    gc.collect()
    deadline = time.monotonic() + 5
    while listeners() > before and time.monotonic() < deadline:
        time.sleep(0.1)
        gc.collect()
    assert listeners() == before


@pytest.mark.real_redis
def test_flushall_ends_sessions_for_push_as_for_strict(
    own_redis_server: RedisServer, users: Users
) -> None:
    """Strict mode refuses every token once the sessions are gone from Redis (FLUSHALL, a
    restore, an operator's "log everyone out"); push mode must too, within twice the
    heartbeat: the heartbeat is echoed only while the listener's own key is there. (The
    subscription survives a FLUSHALL: remembered sessions were once accepted until their
    tokens expired.)"""
    with app_on_url(users, own_redis_server.url) as app:
        api = Api(app)
        pair = api.login()
        assert status(api, pair) == (200, None)
        wait_until_listening(app)
        assert status(api, pair) == (200, None)
        get_state(app).store.client.flushall()
        time.sleep(1.5)  # more than the 2 x heartbeat bound
        assert status(api, pair) == (401, "session_revoked")
