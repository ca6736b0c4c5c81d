"""Redis stopped in the middle of a load run against two gunicorn workers, then started
again: 503s and no tokens while it is down, valid access tokens keep working, no 500s,
and service comes back without restarting the app."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from appserver import Server
from servers import RedisServer, free_port, redis_binary

pytestmark = pytest.mark.real_redis

RUN_SECONDS = 7.0


def test_a_redis_outage_mid_load_is_503s_then_recovery() -> None:
    redis = RedisServer(redis_binary(), free_port())
    # Persisted on every write, so the sessions of the run survive the restart.
    redis.start("--appendonly", "yes", "--appendfsync", "always")
    server = Server("a", redis.url)
    records: list[tuple[float, float, str, int, dict[str, Any]]] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + RUN_SECONDS

    def call(
        method: str, path: str, body: Any = None, token: str | None = None
    ) -> dict[str, Any] | None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        start = time.monotonic()
        if method == "GET":
            request = urllib.request.Request(server.url + path, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    status, payload = response.status, response.read()
            except urllib.error.HTTPError as error:
                status, payload = error.code, error.read()
        else:
            status, payload = server.post(path, body, token)
        decoded = json.loads(payload) if payload else {}
        with lock:
            records.append((start, time.monotonic(), path, status, decoded))
        return decoded if status == 200 else None

    def client_loop() -> None:
        pair: dict[str, Any] | None = None
        while time.monotonic() < stop_at:
            if pair is None:
                pair = call(
                    "POST", "/auth/login", {"username": "alice", "password": "correct horse"}
                )
                continue
            call("GET", "/me", token=pair["access_token"])
            new = call(
                "POST",
                "/auth/reissue",
                {"refresh_token": pair["refresh_token"]},
                pair["access_token"],
            )
            if new is not None:
                pair = new

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(2.0)
        redis.stop()
        down_at = time.monotonic()  # the process has exited
        time.sleep(1.5)
        up_at = time.monotonic()
        redis.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        server.stop()
        redis.stop()

    assert records, "the load run made requests"
    assert all(status in (200, 503) for _, _, _, status, _ in records), sorted(
        {(path, status, body.get("error")) for _, _, path, status, body in records}
    )
    during = [r for r in records if r[0] > down_at and r[1] < up_at]
    after = [r for r in records if r[0] > up_at + 1.0]
    auth_during = [r for r in during if r[2].startswith("/auth/")]
    me_during = [r for r in during if r[2] == "/me"]
    assert auth_during, "auth requests were made while Redis was down"
    assert all(status == 503 for _, _, _, status, _ in auth_during), auth_during
    assert all(
        body == {"error": "store_unavailable", "message": body["message"]}
        for _, _, _, _, body in auth_during
    ), "no tokens while Redis is down"
    assert me_during, "protected requests were made while Redis was down"
    assert all(status == 200 for _, _, _, status, _ in me_during), me_during
    assert after, "the run went on after Redis came back"
    failed_after = [r for r in after if r[3] != 200]
    assert not failed_after, ("recovered without a restart", up_at, failed_after)
    reissues_after = [r for r in after if r[2] == "/auth/reissue"]
    assert reissues_after, "sessions from before the outage rotate after it"
