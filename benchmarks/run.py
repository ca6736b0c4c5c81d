"""Benchmarks, side by side in one run: ``python benchmarks/run.py``.

Needs ``pip install -e '.[bench]'`` and a ``redis-server`` binary; starts its own Redis on
a loopback port, runs the variants of each table interleaved, and prints medians of
repeats. Requests go through Flask's test client (in-process WSGI): the numbers are the
framework's and ours, without a network stack. ``--quick`` runs fewer repeats.

1. Per-request overhead of a protected route over the same route unprotected: ours
   (push revocation, the default; expiry; without the verified-token memo; strict) against
   Flask-JWT-Extended's ``@jwt_required()``, and a bare ``jwt.decode`` of the same token.
1b. Cookie mode: a POST with the access cookie and its CSRF header, against
   Flask-JWT-Extended's cookies and double-submit CSRF check.
2. Reissue: time per reissue and Redis commands per reissue (from ``INFO commandstats``).
3. Login: the extension's own cost, with an ``authenticate`` that checks nothing.
4. Redis memory per live session after many logins, and its change under rotation.
5. Login refusal time for a wrong password and an unknown user (the example app).
6. Throughput under load (benchmarks/load.py): gunicorn + Redis driven by wrk; skipped
   with a note when wrk is not installed.
7. Push revocation (benchmarks/revocation.py): how fast an ended session is refused by
   another app, Redis commands per protected request, memory per remembered session, and
   a flood of announcements.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import redis
from flask import Flask

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from revocation import bench_revocation  # noqa: E402

from flask_dualtoken import DualToken, jwt_required  # noqa: E402
from flask_dualtoken.state import get_state  # noqa: E402
from flask_dualtoken.store import ClientInfo  # noqa: E402

SECRET = "benchmark-secret-" + "x" * 40
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@contextmanager
def redis_server() -> Iterator[redis.Redis]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tempfile.mkdtemp()
    process = subprocess.Popen(  # noqa: S603
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    try:
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait()


class User:
    role = "user"

    def __init__(self, user_id: int = 1) -> None:
        self.id = user_id


def authenticate(username: str, password: str) -> User | None:
    # "rotating" is a user of its own, so that logins (which reach the session cap of
    # user 1) never end the session the reissue benchmark rotates.
    if username == "wrong":
        return None
    return User(2 if username == "rotating" else 1)


def our_app(client: redis.Redis, **config: Any) -> Flask:
    app = Flask("bench-ours")
    app.config.update(DUALTOKEN_SECRET_KEY=SECRET, DUALTOKEN_REDIS=client, **config)
    dualtoken = DualToken(app)
    dualtoken.authenticate(authenticate)
    dualtoken.user_loader(lambda user_id: User(int(user_id)))

    @app.get("/open")
    def open_route() -> dict[str, Any]:
        return {"hello": "world"}

    @app.get("/protected")
    @jwt_required
    def protected_route() -> dict[str, Any]:
        return {"hello": "world"}

    @app.post("/open")
    def open_post() -> dict[str, Any]:
        return {"hello": "world"}

    @app.post("/protected")
    @jwt_required
    def protected_post() -> dict[str, Any]:
        return {"hello": "world"}

    return app


def their_app(**config: Any) -> tuple[Flask, str]:
    from flask_jwt_extended import JWTManager, create_access_token
    from flask_jwt_extended import jwt_required as their_jwt_required

    app = Flask("bench-theirs")
    app.config["JWT_SECRET_KEY"] = SECRET
    app.config.update(config)
    JWTManager(app)

    @app.route("/open", methods=["GET", "POST"])
    def open_route() -> dict[str, Any]:
        return {"hello": "world"}

    @app.route("/protected", methods=["GET", "POST"])
    @their_jwt_required()
    def protected_route() -> dict[str, Any]:
        return {"hello": "world"}

    with app.app_context():
        token = create_access_token(identity="1", additional_claims={"role": "user"})
    return app, token


def per_call_us(call: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


def interleaved(
    variants: dict[str, Callable[[], Any]], calls: int, repeats: int
) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for call in variants.values():  # warm up
        per_call_us(call, max(10, calls // 10))
    for _ in range(repeats):
        for name, call in variants.items():
            samples[name].append(per_call_us(call, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def table(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print(
            "  ".join(
                str(cell).rjust(w) if i else str(cell).ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def bench_decorator(client: redis.Redis, calls: int, repeats: int) -> None:
    def login(app: Flask) -> tuple[Any, dict[str, str], str]:
        c = app.test_client()
        token = c.post("/auth/login", json={"username": "u", "password": "p"}).json["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert c.get("/protected", headers=headers).status_code == 200
        return c, headers, token

    ours, ours_headers, token = login(our_app(client))  # push revocation, the default
    expiry, expiry_headers, _ = login(our_app(client, DUALTOKEN_REVOCATION="expiry"))
    no_memo, no_memo_headers, _ = login(our_app(client, DUALTOKEN_TOKEN_CACHE_SIZE=0))
    strict, strict_headers, _ = login(our_app(client, DUALTOKEN_REVOCATION="strict"))
    theirs_app, their_token = their_app()
    theirs = theirs_app.test_client()
    their_headers = {"Authorization": f"Bearer {their_token}"}
    assert theirs.get("/protected", headers=their_headers).status_code == 200
    key = get_state(ours.application).codec._keys.access

    medians = interleaved(
        {
            "ours: no decorator": lambda: ours.get("/open"),
            "ours: @jwt_required": lambda: ours.get("/protected", headers=ours_headers),
            "ours: @jwt_required, expiry": lambda: expiry.get(
                "/protected", headers=expiry_headers
            ),
            "ours: @jwt_required, no memo": lambda: no_memo.get(
                "/protected", headers=no_memo_headers
            ),
            "ours: @jwt_required, strict": lambda: strict.get(
                "/protected", headers=strict_headers
            ),
            "FJE: no decorator": lambda: theirs.get("/open"),
            "FJE: @jwt_required()": lambda: theirs.get("/protected", headers=their_headers),
            "bare jwt.decode": lambda: jwt.decode(token, key, algorithms=["HS256"]),
        },
        calls,
        repeats,
    )
    base_ours, base_theirs = medians["ours: no decorator"], medians["FJE: no decorator"]
    overhead = {
        "ours: @jwt_required": medians["ours: @jwt_required"] - base_ours,
        "ours: @jwt_required, expiry": medians["ours: @jwt_required, expiry"] - base_ours,
        "ours: @jwt_required, no memo": medians["ours: @jwt_required, no memo"] - base_ours,
        "ours: @jwt_required, strict": medians["ours: @jwt_required, strict"] - base_ours,
        "FJE: @jwt_required()": medians["FJE: @jwt_required()"] - base_theirs,
        "bare jwt.decode": medians["bare jwt.decode"],
    }
    theirs_overhead = overhead["FJE: @jwt_required()"]
    rows = [
        (name, f"{medians.get(name, 0):.1f}", f"{value:.1f}", f"{value / theirs_overhead:.2f}")
        for name, value in overhead.items()
    ]
    rows.insert(0, ("ours: no decorator", f"{base_ours:.1f}", "-", "-"))
    rows.insert(5, ("FJE: no decorator", f"{base_theirs:.1f}", "-", "-"))
    table(
        f"1. Protected route, median of {repeats} x {calls} requests (us)",
        ("variant", "us/request", "overhead", "x FJE overhead"),
        rows,
    )


def bench_cookies(client: redis.Redis, calls: int, repeats: int) -> None:
    """Cookie mode: a POST authenticated by the access cookie and its CSRF header, against
    Flask-JWT-Extended's cookies with its double-submit CSRF check."""
    from flask_jwt_extended import get_csrf_token

    ours = our_app(client, DUALTOKEN_TOKEN_LOCATION="cookies").test_client()  # noqa: S106
    ours.post("/auth/login", json={"username": "u", "password": "p"})
    csrf_cookie = ours.get_cookie("__Host-dualtoken_csrf")
    assert csrf_cookie is not None
    our_headers = {"X-CSRF-Token": csrf_cookie.value}
    assert ours.post("/protected", headers=our_headers).status_code == 200
    assert ours.post("/protected").status_code == 403

    theirs_app, their_token = their_app(JWT_TOKEN_LOCATION=["cookies"])
    theirs = theirs_app.test_client()
    theirs.set_cookie("access_token_cookie", their_token)
    with theirs_app.app_context():
        their_headers = {"X-CSRF-TOKEN": get_csrf_token(their_token)}
    assert theirs.post("/protected", headers=their_headers).status_code == 200
    assert theirs.post("/protected").status_code == 401

    medians = interleaved(
        {
            "ours: POST, no decorator": lambda: ours.post("/open", headers=our_headers),
            "ours: POST @jwt_required, cookie + CSRF": lambda: ours.post(
                "/protected", headers=our_headers
            ),
            "FJE: POST, no decorator": lambda: theirs.post("/open", headers=their_headers),
            "FJE: POST @jwt_required(), cookie + CSRF": lambda: theirs.post(
                "/protected", headers=their_headers
            ),
        },
        calls,
        repeats,
    )
    ours_overhead = (
        medians["ours: POST @jwt_required, cookie + CSRF"] - medians["ours: POST, no decorator"]
    )
    theirs_overhead = (
        medians["FJE: POST @jwt_required(), cookie + CSRF"] - medians["FJE: POST, no decorator"]
    )
    rows = [
        (name, f"{value:.1f}", "-" if "no decorator" in name else f"{overhead:.1f}")
        for (name, value), overhead in zip(
            medians.items(), [0, ours_overhead, 0, theirs_overhead], strict=True
        )
    ]
    rows.append(("ours / FJE overhead", "", f"{ours_overhead / theirs_overhead:.2f}"))
    table(
        f"1b. Cookie mode, median of {repeats} x {calls} requests (us)",
        ("variant", "us/request", "overhead"),
        rows,
    )


@contextmanager
def round_trips() -> Iterator[list[int]]:
    """Counts what the client sends to Redis: one per command, one per pipeline."""
    from redis.connection import AbstractConnection

    sent = [0]
    original = AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        original(self, command, check_health)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def bench_reissue_and_login(client: redis.Redis, calls: int, repeats: int) -> None:
    app = our_app(
        client, DUALTOKEN_LOGIN_MAX_ATTEMPTS=0, DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=0
    )
    c = app.test_client()
    pair = c.post("/auth/login", json={"username": "rotating", "password": "p"}).json

    def reissue() -> None:
        nonlocal pair
        response = c.post(
            "/auth/reissue",
            headers={"Authorization": f"Bearer {pair['access_token']}"},
            json={"refresh_token": pair["refresh_token"]},
        )
        pair = response.json

    def login() -> None:
        c.post("/auth/login", json={"username": "u", "password": "p"})

    throttled = our_app(client).test_client()  # the default limits: 5 and 50 per window

    def throttled_login() -> None:
        throttled.post("/auth/login", json={"username": "u", "password": "p"})

    medians = interleaved(
        {
            "no decorator": lambda: c.get("/open"),
            "reissue": reissue,
            "login": login,
            "throttled login": throttled_login,
        },
        calls // 4,
        repeats,
    )
    probes = 200
    with round_trips() as sent:
        for _ in range(probes):
            reissue()
    reissue_trips = sent[0] / probes
    with round_trips() as sent:
        for _ in range(probes):
            login()
    login_trips = sent[0] / probes
    with round_trips() as sent:
        for _ in range(probes):
            throttled_login()
    throttled_trips = sent[0] / probes
    with round_trips() as sent:  # a wrong password: the reservation is all
        throttled.post("/auth/login", json={"username": "wrong", "password": "p"})
    failed_trips = sent[0]
    base = medians["no decorator"]
    table(
        f"2-3. Reissue and login against real Redis, median of {repeats} runs (us)",
        ("request", "us/request", "over a bare route", "Redis round trips"),
        [
            ("no decorator", f"{base:.1f}", "-", "0"),
            (
                "reissue",
                f"{medians['reissue']:.1f}",
                f"{medians['reissue'] - base:.1f}",
                f"{reissue_trips:.2f}",
            ),
            (
                "login (no hash, no throttle)",
                f"{medians['login']:.1f}",
                f"{medians['login'] - base:.1f}",
                f"{login_trips:.2f}",
            ),
            (
                "login (no hash, throttle on: reserve, then store and release)",
                f"{medians['throttled login']:.1f}",
                f"{medians['throttled login'] - base:.1f}",
                f"{throttled_trips:.2f}",
            ),
            ("failed login (throttle on: reserve only)", "-", "-", f"{failed_trips}"),
        ],
    )


def bench_memory(client: redis.Redis, sessions: int) -> None:
    rows = []
    for label, agent in (("short UA", "curl/8.5.0"), ("browser UA", BROWSER_UA)):
        client.flushall()
        app = our_app(client, DUALTOKEN_REUSE_GRACE=1)
        state = get_state(app)
        store, codec = state.store, state.codec
        client_info = ClientInfo(ip="203.0.113.7", user_agent=agent)
        before = client.info("memory")["used_memory"]
        for i in range(sessions):
            uid = str(i)
            sid, at_jti, rt_jti = f"s{i:021d}", f"a{i:021d}", f"r{i:021d}"
            store.create(
                uid,
                sid,
                rt_jti,
                codec.access_template(
                    sub=uid, role="user", sid=sid, jti=at_jti, rti=rt_jti, extra={}
                ),
                codec.refresh_template(sub=uid, sid=sid, jti=rt_jti),
                client_info,
            )
        used = (client.info("memory")["used_memory"] - before) / sessions

        def usage(uid: str, sid: str, store: Any = store) -> int:
            keys = [store.session_key(uid, sid), store.index_key(uid)]
            return sum(client.memory_usage(k) or 0 for k in keys)

        fresh = usage("0", f"s{0:021d}")
        # Rotate one session many times; once the grace window is over its replay key is
        # gone and the session's footprint no longer changes with the generation.
        jti, after = f"r{0:021d}", {}
        for g in range(50):
            new_jti = f"n{g:021d}"
            store.rotate("0", f"s{0:021d}", jti, g, new_jti, "{}", "{}", client_info)
            jti = new_jti
            if g + 1 in (1, 50):
                time.sleep(1.2)  # past the grace window
                after[g + 1] = usage("0", f"s{0:021d}")
        rows.append((label, f"{used:.0f}", str(fresh), str(after[1]), str(after[50])))
    table(
        f"4. Redis memory per live session ({sessions} sessions of {sessions} users, bytes)",
        ("client", "used_memory / session", "MEMORY USAGE, new", "1 rotation", "50 rotations"),
        rows,
    )


def bench_login_timing(repeats: int) -> None:
    from example_app import create_app, db

    with tempfile.TemporaryDirectory() as instance:
        app = create_app(
            {"DUALTOKEN_LOGIN_MAX_ATTEMPTS": 0, "DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS": 0},
            instance_path=instance,
        )
        c = app.test_client()

        def refused(username: str) -> Callable[[], Any]:
            return lambda: c.post(
                "/auth/login", json={"username": username, "password": "not-the-password"}
            )

        medians = interleaved(
            {"wrong password": refused("alice"), "unknown user": refused("nobody")},
            calls=5,
            repeats=repeats,
        )
        with app.app_context():
            db.engine.dispose()
    table(
        f"5. Login refusal time, example app, median of {repeats} x 5 requests (ms)",
        ("case", "ms/request"),
        [(name, f"{value / 1000:.2f}") for name, value in medians.items()],
    )


@contextmanager
def stopping_listeners() -> Iterator[None]:
    """Stop every app's revocation listener before the benchmark's Redis goes away."""
    from flask_dualtoken import revocation

    try:
        yield
    finally:
        for guard in list(revocation._GUARDS):
            guard.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and repeats")
    args = parser.parse_args()
    calls, repeats, sessions = (500, 3, 10_000) if args.quick else (2000, 7, 100_000)
    logging.getLogger("flask_dualtoken").setLevel(logging.ERROR)
    with redis_server() as client, stopping_listeners():
        bench_decorator(client, calls, repeats)
        bench_cookies(client, calls, repeats)
        bench_reissue_and_login(client, calls, repeats)
        bench_memory(client, sessions)
        bench_revocation(
            client,
            lambda **config: our_app(client, **config),
            table,
            revocations=50 if args.quick else 500,
            flood=10_000 if args.quick else 100_000,
        )
    bench_login_timing(repeats)
    if shutil.which("wrk") is None:
        print("\n6. Load: skipped, wrk is not installed (apt-get install wrk)")
    else:
        from load import run_load

        run_load(seconds=5 if args.quick else 15, connections=8)


if __name__ == "__main__":
    main()
