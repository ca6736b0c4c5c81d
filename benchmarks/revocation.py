"""Push revocation, measured (part of ``python benchmarks/run.py``, section 7).

Two apps on one Redis stand for two processes: sessions are ended on A, and B is polled
until it refuses them. Also the Redis commands B sends over protected requests, the
memory one remembered answer costs, and a flood of announcements while B serves requests.
"""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask

from flask_dualtoken.revocation import PushRevocation
from flask_dualtoken.state import get_state


def _guard(app: Flask) -> PushRevocation:
    guard = get_state(app).revocation
    assert isinstance(guard, PushRevocation)
    return guard


def _listening(app: Flask) -> None:
    listener = _guard(app)._listener
    assert listener is not None
    while listener.trusted_period() is None:
        time.sleep(0.001)


def _login(client: Any) -> dict[str, Any]:
    body: dict[str, Any] = client.post("/auth/login", json={"username": "u", "password": "p"}).json
    return body


def _headers(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


def _commands(client: redis.Redis) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_revocation(
    client: redis.Redis,
    make_app: Callable[..., Flask],
    table: Callable[..., None],
    *,
    revocations: int,
    flood: int,
) -> None:
    a_app, b_app = make_app(), make_app()
    a, b = a_app.test_client(), b_app.test_client()
    warm = _login(a)
    assert b.get("/protected", headers=_headers(warm)).status_code == 200
    _listening(b_app)

    # 7a. Propagation: end a session on A, poll B until it refuses.
    lags = []
    for _ in range(revocations):
        pair = _login(a)
        assert b.get("/protected", headers=_headers(pair)).status_code == 200
        assert (
            a.post(
                "/auth/logout",
                headers=_headers(pair),
                json={"refresh_token": pair["refresh_token"]},
            ).status_code
            == 204
        )
        start = time.perf_counter()
        while b.get("/protected", headers=_headers(pair)).status_code == 200:
            pass
        lags.append((time.perf_counter() - start) * 1000)
    table(
        f"7a. Push revocation: logout on A until B refuses, {revocations} sessions (ms)",
        ("p50", "p99", "max"),
        [(f"{_pct(lags, 0.5):.2f}", f"{_pct(lags, 0.99):.2f}", f"{max(lags):.2f}")],
    )

    # 7b. Redis commands over 200 protected requests, after one to learn the session.
    strict_app = make_app(DUALTOKEN_REVOCATION="strict")
    strict = strict_app.test_client()
    rows = []
    for label, app_client in (("push (default)", b), ("strict", strict)):
        pair = _login(a)
        assert app_client.get("/protected", headers=_headers(pair)).status_code == 200
        before = _commands(client)
        for _ in range(200):
            assert app_client.get("/protected", headers=_headers(pair)).status_code == 200
        rows.append((label, _commands(client) - before))
    table(
        "7b. Redis commands over 200 protected requests (INFO commandstats, any client)",
        ("mode", "commands"),
        rows,
    )

    # 7c. Memory of one remembered answer (alive, or dead after a revocation).
    guard = _guard(b_app)
    exp = int(time.time()) + 900
    count = 10_000
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    with guard._lock:
        for i in range(count):
            guard._put(str(100_000 + i), f"sid-{i:018d}", 1, exp)
    per_entry = (tracemalloc.get_traced_memory()[0] - base) / count
    tracemalloc.stop()
    guard.forget_all()
    table(
        "7c. Memory per remembered session, one user each (tracemalloc, bytes)",
        ("sessions", "bytes each"),
        [(count, f"{per_entry:.0f}")],
    )

    # 7d. A flood of announcements while B serves requests: the listener's lag, and
    # whether it fell behind (a new period) rather than silently delaying.
    known = _login(a)
    stop = threading.Event()
    served = [0]

    def serve() -> None:
        while not stop.is_set():
            b.get("/protected", headers=_headers(known))
            served[0] += 1

    listener = _guard(b_app)._listener
    assert listener is not None
    first_period = listener.state[0]
    worker = threading.Thread(target=serve)
    worker.start()
    channel = get_state(a_app).store.channel
    start = time.perf_counter()
    with client.pipeline(transaction=False) as pipe:
        for i in range(flood):
            pipe.publish(channel, f"flood{i} {i % 1000}")
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
    published = time.perf_counter() - start
    probe = _login(a)  # one real revocation behind the whole flood
    assert b.get("/protected", headers=_headers(probe)).status_code == 200
    a.post("/auth/logout", headers=_headers(probe), json={"refresh_token": probe["refresh_token"]})
    probe_start = time.perf_counter()
    while b.get("/protected", headers=_headers(probe)).status_code == 200:
        pass
    probe_lag = (time.perf_counter() - probe_start) * 1000
    stop.set()
    worker.join()
    table(
        f"7d. {flood} announcements published while B serves requests",
        ("publish s", "requests served", "last revocation refused after (ms)", "gaps"),
        [
            (
                f"{published:.2f}",
                served[0],
                f"{probe_lag:.1f}",
                "none" if listener.state[0] == first_period else "yes (re-read from Redis)",
            )
        ],
    )
    for app in (a_app, b_app, strict_app):
        get_state(app).revocation.stop()
