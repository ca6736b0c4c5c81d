"""Push revocation: an ended session's access tokens are refused on every process within
the bound, with no Redis call per request in steady state, and never a missed revocation
(docs/design.md, "Push revocation"). Two apps on one store stand for two processes; the
gunicorn, failover and flood runs are in test_push_revocation_servers.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from flask import Flask
from helpers import Api, Users, app_on_url, sid_of

from flask_dualtoken import revocation
from flask_dualtoken.revocation import PushRevocation
from flask_dualtoken.state import get_state

#: The propagation bound the docs promise while Redis is reachable (p99).
BOUND = 0.05


def assert_within_bound(lags: list[float]) -> None:
    """The 99th percentile of the lags (so one outlier in a few dozen, on a loaded test
    machine, is not a failure; two are) is within the bound."""
    ordered = sorted(lags)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    shown = [round(x * 1000, 1) for x in ordered]
    assert p99 < BOUND, f"p99 {p99 * 1000:.1f} ms, all (ms): {shown}"


def guard_of(app: Flask) -> PushRevocation:
    guard = get_state(app).revocation
    assert isinstance(guard, PushRevocation)
    return guard


def wait_until_listening(app: Flask, timeout: float = 5.0) -> None:
    """Until the app's listener vouches for its answers (it starts at the first request)."""
    listener = guard_of(app)._listener
    assert listener is not None, "no protected request yet"
    deadline = time.monotonic() + timeout
    while listener.trusted_period() is None:
        assert time.monotonic() < deadline, "the listener never started listening"
        time.sleep(0.002)


def status(api: Api, pair: dict[str, Any]) -> tuple[int, str | None]:
    response = api.get("/me", pair["access_token"])
    return response.status_code, (response.json or {}).get("error")


def refused_after(api: Api, pair: dict[str, Any], limit: float = 2.0) -> float:
    """Seconds until the access token is refused with session_revoked (polling)."""
    start = time.monotonic()
    while True:
        code, error = status(api, pair)
        elapsed = time.monotonic() - start
        if code == 401:
            assert error == "session_revoked"
            return elapsed
        assert code == 200
        assert elapsed < limit, f"still accepted after {elapsed:.3f} s"


def listening(first: Flask, second: Flask, warm_user: str = "alice") -> tuple[Api, Api]:
    """Two apps ("processes") on one store, each having served a request and listening."""
    apis = Api(first), Api(second)
    warm = apis[0].login(warm_user)
    for api, app in zip(apis, (first, second), strict=True):
        assert status(api, warm) == (200, None)
        wait_until_listening(app)
    return apis


@pytest.fixture
def two(make_app: Callable[..., Flask]) -> tuple[Api, Api]:
    return listening(make_app(), make_app())


def known(api: Api, pair: dict[str, Any]) -> dict[str, Any]:
    """Make the app remember the session: one request after its listener listens."""
    assert status(api, pair) == (200, None)
    return pair


def test_push_is_the_default(app: Flask) -> None:
    assert get_state(app).settings.revocation == "push"
    assert isinstance(get_state(app).revocation, PushRevocation)


def test_nothing_is_started_before_the_first_protected_request(app: Flask, api: Api) -> None:
    api.login()  # login, reissue, logout: no listener needed
    assert guard_of(app)._listener is None


# -- every cause reaches the other process -------------------------------------------------


def test_logout_on_one_process_refuses_the_token_on_another(two: tuple[Api, Api]) -> None:
    a, b = two
    pair = known(b, a.login())
    assert a.logout(pair).status_code == 204
    assert refused_after(b, pair) < 1


def test_ending_a_session_by_id_refuses_its_token_elsewhere(two: tuple[Api, Api]) -> None:
    a, b = two
    victim, admin = known(b, a.login()), a.login()
    response = a.client.delete(
        f"/auth/sessions/{sid_of(victim)}",
        headers={"Authorization": f"Bearer {admin['access_token']}"},
    )
    assert response.status_code == 204
    assert refused_after(b, victim) < 1
    assert status(b, admin) == (200, None)  # only that session


def test_logout_all_refuses_every_session_of_the_user_elsewhere(
    two: tuple[Api, Api],
) -> None:
    a, b = two
    pairs = [known(b, a.login()) for _ in range(3)]
    other_user = known(b, a.login("bob"))
    response = a.client.post(
        "/auth/logout-all", headers={"Authorization": f"Bearer {pairs[0]['access_token']}"}
    )
    assert response.status_code == 204
    for pair in pairs:
        assert refused_after(b, pair) < 1
    assert status(b, other_user) == (200, None)


@pytest.fixture
def two_without_grace(make_app: Callable[..., Flask]) -> tuple[Api, Api]:
    config = {"DUALTOKEN_REUSE_GRACE": 0, "DUALTOKEN_MAX_SESSIONS": 2}
    return listening(make_app(**config), make_app(**config), warm_user="bob")  # not alice


def test_reuse_refuses_both_copies_access_tokens_on_another_process(
    two_without_grace: tuple[Api, Api],
) -> None:
    a, b = two_without_grace
    stolen = known(b, a.login())
    thief = a.reissue(stolen).json
    assert thief is not None
    known(b, thief)
    reuse = a.reissue(stolen)
    assert reuse.json is not None and reuse.json["error"] == "refresh_token_reused"
    assert refused_after(b, thief) < 1
    assert refused_after(b, stolen) < 1


def test_the_session_cap_refuses_the_evicted_sessions_token_elsewhere(
    two_without_grace: tuple[Api, Api],
) -> None:
    a, b = two_without_grace
    oldest = known(b, a.login())
    newer = known(b, a.login())
    a.login()  # the cap is 2: the oldest ends
    assert refused_after(b, oldest) < 1
    assert status(b, newer) == (200, None)


def test_a_user_who_is_gone_at_reissue_is_refused_elsewhere(
    two: tuple[Api, Api], users: Users
) -> None:
    a, b = two
    pair = known(b, a.login("bob"))
    users.by_id["2"].active = False  # the loader no longer finds bob
    response = a.reissue(pair)
    assert response.status_code == 401
    users.by_id["2"].active = True  # bob is back: only the session says no
    assert refused_after(b, pair) < 1


# -- the bound, and no Redis call in steady state ------------------------------------------


def test_revocations_reach_the_other_process_within_the_bound_p99(
    two: tuple[Api, Api],
) -> None:
    a, b = two
    lags = []
    for _ in range(40):
        pair = known(b, a.login())
        assert a.logout(pair).status_code == 204
        lags.append(refused_after(b, pair))
    assert_within_bound(lags)


def test_a_protected_request_makes_no_redis_call_once_the_session_is_known(
    two: tuple[Api, Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two
    pair = known(b, a.login())
    store = get_state(b.client.application).store
    calls = []
    real = store.is_live
    monkeypatch.setattr(store, "is_live", lambda *args: calls.append(args) or real(*args))
    for _ in range(200):
        assert status(b, pair) == (200, None)
    assert calls == []


# -- never a missed revocation ------------------------------------------------------------


def test_an_answer_read_while_a_revocation_arrives_is_not_remembered(
    two: tuple[Api, Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read says alive; before it returns, the session ends and the announcement is
    applied. That answer serves its own request but must not be remembered."""
    a, b = two
    pair = a.login()
    store = get_state(b.client.application).store
    guard = guard_of(b.client.application)
    real = store.is_live

    def read_then_revoke(user_id: str, sid: str) -> bool:
        alive = real(user_id, sid)
        heard = guard._heard
        assert a.logout(pair).status_code == 204
        deadline = time.monotonic() + 2
        while guard._heard == heard:  # the announcement is applied...
            assert time.monotonic() < deadline
            time.sleep(0.001)
        return alive  # ...and then the stale "alive" comes back

    monkeypatch.setattr(store, "is_live", read_then_revoke)
    assert status(b, pair) == (200, None)  # as good as strict mode at the time of the read
    monkeypatch.setattr(store, "is_live", real)
    assert status(b, pair) == (401, "session_revoked")


def test_a_revocation_made_while_the_listener_was_deaf_is_not_missed(
    two: tuple[Api, Api],
) -> None:
    """No announcement at all (the listener was stopped): the new period re-reads."""
    a, b = two
    pair = known(b, a.login())
    guard = guard_of(b.client.application)
    guard.stop()
    assert a.logout(pair).status_code == 204  # announced to nobody in b
    assert status(b, pair) == (401, "session_revoked")


def test_a_lost_announcement_is_caught_once_the_heartbeat_is_late(
    two: tuple[Api, Api],
) -> None:
    """A session ended with no announcement (as if the message were lost) is trusted only
    while the listener's proof is fresh; a late proof means reading Redis again."""
    a, b = two
    pair = known(b, a.login())
    store = get_state(a.client.application).store
    user_id = "1"
    store.client.zrem(store.index_key(user_id), sid_of(pair))  # ends it, silently
    listener = guard_of(b.client.application)._listener
    assert listener is not None
    period, proof = listener.state
    listener.state = (period, proof - 10)  # what a stalled listener looks like to requests
    assert status(b, pair) == (401, "session_revoked")


def test_answers_of_an_earlier_period_are_not_trusted(two: tuple[Api, Api]) -> None:
    a, b = two
    pair = known(b, a.login())
    app = b.client.application
    old = guard_of(app)._listener
    assert old is not None
    guard_of(app).stop()  # a gap; the next request starts a new listener
    store = get_state(app).store
    store.client.zrem(store.index_key("1"), sid_of(pair))  # silently, during the gap
    assert status(b, pair) == (401, "session_revoked")
    assert guard_of(app)._listener is not old


def test_an_ended_session_stays_refused_without_asking_redis_again(
    two: tuple[Api, Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two
    pair = known(b, a.login())
    assert a.logout(pair).status_code == 204
    refused_after(b, pair)
    store = get_state(b.client.application).store
    monkeypatch.setattr(store, "is_live", lambda *args: pytest.fail("asked Redis"))
    for _ in range(20):
        assert status(b, pair) == (401, "session_revoked")


# -- memory ---------------------------------------------------------------------------------


def test_remembered_sessions_are_capped(
    app: Flask, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(revocation, "MAX_REMEMBERED_SESSIONS", 2)
    pairs = [api.login() for _ in range(4)]
    first = pairs[0]
    assert status(api, first) == (200, None)
    wait_until_listening(app)
    for pair in pairs:
        assert status(api, pair) == (200, None)
    assert guard_of(app).remembered == 2
    for pair in pairs:  # the rest are answered by Redis, correctly
        assert status(api, pair) == (200, None)


def test_an_answer_is_forgotten_once_no_token_can_need_it(app: Flask, api: Api) -> None:
    guard = guard_of(app)
    pair = api.login()
    assert status(api, pair) == (200, None)
    wait_until_listening(app)
    assert status(api, pair) == (200, None)
    assert guard.remembered == 1
    with guard._lock:
        for sessions in guard._known.values():
            for sid, (period, _) in list(sessions.items()):
                sessions[sid] = (period, int(time.time()) - 10)  # its tokens have expired
        guard._sweep()
    assert guard.remembered == 0


# -- other modes and outages ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["strict", "expiry"])
def test_other_modes_start_no_listener(make_app: Callable[..., Flask], mode: str) -> None:
    before = set(revocation_threads())
    app = make_app(DUALTOKEN_REVOCATION=mode)
    api = Api(app)
    pair = api.login()
    assert status(api, pair) == (200, None)
    assert not isinstance(get_state(app).revocation, PushRevocation)
    assert set(revocation_threads()) <= before


def revocation_threads() -> list[Any]:
    import threading

    return [t for t in threading.enumerate() if isinstance(t, revocation._Listener)]


def test_a_forked_child_forgets_what_its_parent_knew(two: tuple[Api, Api]) -> None:
    a, b = two
    pair = known(b, a.login())
    guard = guard_of(b.client.application)
    assert guard.remembered >= 1
    guard.after_fork()  # what os.register_at_fork runs in the child
    assert guard.remembered == 0
    assert guard._listener is None
    assert status(b, pair) == (200, None)  # and starts a listener of its own
    assert guard._listener is not None


def test_cli_commands_start_no_listener(app: Flask, api: Api) -> None:
    pair = api.login()
    runner = app.test_cli_runner()
    assert runner.invoke(args=["dualtoken", "sessions", "1"]).exit_code == 0
    assert runner.invoke(args=["dualtoken", "revoke", "1"]).exit_code == 0
    assert guard_of(app)._listener is None
    assert status(api, pair) == (401, "session_revoked")


def test_a_listener_thread_that_died_is_replaced(two: tuple[Api, Api]) -> None:
    a, b = two
    app = b.client.application
    old = guard_of(app)._listener
    assert old is not None
    old._stopped.set()  # as if it had died: it leaves its loop...
    old.join(5)
    assert not old.is_alive()
    old._stopped.clear()  # ...without anyone having asked it to stop
    pair = a.login()
    assert status(b, pair) == (200, None)
    assert guard_of(app)._listener is not old
    wait_until_listening(app)


def test_on_the_in_memory_store_push_works_the_same(users: Users) -> None:
    """memory:// is an in-process fakeredis: its scripts announce and the listener hears,
    through the same code as on Redis."""
    with app_on_url(users, "memory://") as app:
        api = Api(app)
        pair, other = api.login(), api.login()
        assert status(api, pair) == (200, None)
        wait_until_listening(app)
        known(api, pair)
        known(api, other)
        assert guard_of(app).remembered == 2
        store = get_state(app).store
        store.client.zrem(store.index_key("1"), sid_of(pair))  # silently: no announcement
        store.revoke("1", sid_of(other), "test")  # announced (and applied locally)
        assert status(api, other) == (401, "session_revoked")
        assert status(api, pair) == (200, None)  # remembered, and nobody said otherwise


def test_watchers_hear_every_ending_here_and_elsewhere(
    two: tuple[Api, Api], caplog: pytest.LogCaptureFixture
) -> None:
    """``watch`` (what the Socket.IO helper disconnects by): a logout in this process, one
    in another, logout-all (every session: sids None), and a failing watcher that is
    logged and does not stop the others."""
    a, b = two
    a_heard: list[tuple[str | None, Any]] = []
    b_heard: list[tuple[str | None, Any]] = []

    def broken(user_id: str | None, sids: Any) -> None:
        raise RuntimeError("a watcher's bug")

    guard_of(a.client.application).watch(lambda user_id, sids: a_heard.append((user_id, sids)))
    guard_of(b.client.application).watch(broken)
    guard_of(b.client.application).watch(lambda user_id, sids: b_heard.append((user_id, sids)))
    pair = known(b, a.login())
    user_id = str(jwt.decode(pair["access_token"], options={"verify_signature": False})["sub"])
    assert a.logout(pair).status_code == 204
    assert refused_after(b, pair) < 1
    assert (user_id, [sid_of(pair)]) in [(u, list(s or [])) for u, s in a_heard]  # here
    # Elsewhere: within the bound (the refusal may come first, from a Redis read).
    assert heard_within(b_heard, (user_id, [sid_of(pair)]), 1.0)
    other = known(b, a.login())
    response = a.client.post(
        "/auth/logout-all", headers={"Authorization": f"Bearer {other['access_token']}"}
    )
    assert response.status_code == 204
    assert refused_after(b, other) < 1
    assert heard_within(b_heard, (user_id, None), 1.0)
    assert "a revocation watcher failed" in caplog.text


def heard_within(heard: list[tuple[str | None, Any]], what: Any, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if what in [(u, None if s is None else list(s)) for u, s in heard]:
            return True
        time.sleep(0.005)
    return False


def test_watchers_are_told_to_check_again_when_a_listening_period_begins(
    make_app: Callable[..., Flask],
) -> None:
    """What ends while a process is deaf is not announced to it: a new period tells its
    watchers (None, None), so that they check what they hold."""
    app = make_app()
    heard: list[tuple[str | None, Any]] = []
    guard_of(app).watch(lambda user_id, sids: heard.append((user_id, sids)))
    api = Api(app)
    assert status(api, api.login()) == (200, None)
    wait_until_listening(app)
    assert (None, None) in heard


@pytest.mark.skipif(not hasattr(time, "CLOCK_BOOTTIME"), reason="CLOCK_BOOTTIME is Linux's")
def test_a_proofs_age_counts_the_time_the_machine_was_suspended() -> None:
    """monotonic() stands still while a VM is suspended: a proof taken before a suspend
    would pass for fresh after it, though announcements were missed meanwhile. The
    listener's clock is CLOCK_BOOTTIME, which counts that time."""
    assert revocation._clock is revocation._boottime
    assert abs(revocation._clock() - time.clock_gettime(time.CLOCK_BOOTTIME)) < 0.05
