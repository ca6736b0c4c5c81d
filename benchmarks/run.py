"""Benchmarks, side by side in one run: ``python benchmarks/run.py``.

Starts its own redis-server on a loopback port (the binary must be installed), runs each
variant interleaved with the others, and prints medians of repeats as tables:

1. Per-request cost of a protected route: no decorator, ``@jwt_required`` (stateless
   access token), and ``@jwt_required`` with ``DUALTOKEN_VERIFY_SESSION`` (strict mode,
   one Redis call), on the in-memory store and on a real Redis.
2. Login time for a wrong password and for an unknown user (the example app, with
   werkzeug's default password hash), which should be about equal.

Requests go through Flask's test client (in-process WSGI), so the numbers are the
framework's and ours, without a network stack. Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
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

import redis
from flask import Flask

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask_dualtoken import DualToken, jwt_required  # noqa: E402

SECRET = "benchmark-secret-" + "x" * 40


@contextmanager
def redis_server() -> Iterator[str]:
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
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        process.terminate()
        process.wait()


class User:
    id = 1
    role = "user"


def protected_app(redis_url: str, strict: bool) -> Flask:
    app = Flask(f"bench-{strict}")
    app.config.update(
        DUALTOKEN_SECRET_KEY=SECRET, DUALTOKEN_REDIS_URL=redis_url, DUALTOKEN_VERIFY_SESSION=strict
    )
    dualtoken = DualToken(app)
    dualtoken.authenticate(lambda username, password: User())
    dualtoken.user_loader(lambda user_id: User())

    @app.get("/open")
    def open_route() -> dict[str, Any]:
        return {"hello": "world"}

    @app.get("/protected")
    @jwt_required
    def protected_route() -> dict[str, Any]:
        return {"hello": "world"}

    return app


def per_request_us(call: Callable[[], Any], requests: int) -> float:
    start = time.perf_counter()
    for _ in range(requests):
        call()
    return (time.perf_counter() - start) / requests * 1e6


def interleaved(
    variants: dict[str, Callable[[], Any]], requests: int, repeats: int
) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for call in variants.values():  # warm up
        per_request_us(call, max(10, requests // 10))
    for _ in range(repeats):
        for name, call in variants.items():
            samples[name].append(per_request_us(call, requests))
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_protected(redis_url: str, requests: int, repeats: int) -> None:
    rows = []
    for store, url in (("memory://", "memory://"), ("redis", redis_url)):
        variants: dict[str, Callable[[], Any]] = {}
        for strict in (False, True):
            app = protected_app(url, strict)
            client = app.test_client()
            token = client.post("/auth/login", json={"username": "u", "password": "p"}).json[
                "access_token"
            ]
            headers = {"Authorization": f"Bearer {token}"}
            assert client.get("/protected", headers=headers).status_code == 200
            if not strict:
                variants["no decorator"] = lambda c=client: c.get("/open")
                variants["@jwt_required"] = lambda c=client, h=headers: c.get(
                    "/protected", headers=h
                )
            else:
                variants["@jwt_required, strict"] = lambda c=client, h=headers: c.get(
                    "/protected", headers=h
                )
        medians = interleaved(variants, requests, repeats)
        base = medians["no decorator"]
        for name, value in medians.items():
            rows.append((store, name, value, value - base))
    print(f"\nProtected route, per request (median of {repeats} x {requests} requests)")
    print(f"{'store':<10} {'variant':<24} {'us/request':>11} {'overhead us':>12}")
    for store, name, value, overhead in rows:
        print(f"{store:<10} {name:<24} {value:>11.1f} {overhead:>12.1f}")


def bench_login_timing(repeats: int) -> None:
    from example_app import create_app, db

    with tempfile.TemporaryDirectory() as instance:
        app = create_app(
            {"DUALTOKEN_LOGIN_MAX_ATTEMPTS": 0, "DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS": 0},
            instance_path=instance,
        )
        client = app.test_client()

        def login(username: str) -> Callable[[], Any]:
            return lambda: client.post(
                "/auth/login", json={"username": username, "password": "not-the-password"}
            )

        medians = interleaved(
            {"wrong password": login("alice"), "unknown user": login("nobody")},
            requests=5,
            repeats=repeats,
        )
        with app.app_context():
            db.engine.dispose()
    print(f"\nLogin refusal time, example app (median of {repeats} x 5 requests)")
    print(f"{'case':<16} {'ms/request':>11}")
    for name, value in medians.items():
        print(f"{name:<16} {value / 1000:>11.2f}")
    ratio = medians["unknown user"] / medians["wrong password"]
    print(f"unknown / wrong = {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    import logging

    logging.getLogger("flask_dualtoken").setLevel(logging.ERROR)
    with redis_server() as url:
        bench_protected(url, args.requests, args.repeats)
    bench_login_timing(args.repeats)


if __name__ == "__main__":
    main()
