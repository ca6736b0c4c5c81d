"""Two app server processes (gunicorn, separate ports) on one real Redis."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from conftest import SECRET, RedisServer, free_port

pytestmark = pytest.mark.real_redis

HERE = Path(__file__).resolve().parent


class Server:
    def __init__(self, name: str, redis_url: str, grace: int) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable))
        if gunicorn is None:
            pytest.fail("gunicorn is part of the test extras and must be installed")
        env = {
            **os.environ,
            "DUALTOKEN_TEST_SECRET": SECRET,
            "DUALTOKEN_TEST_REDIS_URL": redis_url,
            "DUALTOKEN_TEST_GRACE": str(grace),
            "SERVER_NAME_FOR_TEST": name,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)]),
        }
        self.process = subprocess.Popen(
            [
                gunicorn,
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "2",
                "--threads",
                "8",
                "multiserver_app:create_app()",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/me", timeout=1)
            except urllib.error.HTTPError:
                break  # 401: the server is up
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    pytest.fail(f"gunicorn {name} did not start")
                time.sleep(0.1)

    def post(self, path: str, body: dict[str, Any], token: str | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def login(self) -> dict[str, Any]:
        status, body = self.post("/auth/login", {"username": "alice", "password": "correct horse"})
        assert status == 200, body
        pair: dict[str, Any] = json.loads(body)
        return pair

    def reissue(self, pair: dict[str, Any]) -> tuple[int, bytes]:
        return self.post(
            "/auth/reissue", {"refresh_token": pair["refresh_token"]}, pair["access_token"]
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


@pytest.fixture
def servers(redis_server: RedisServer, request: pytest.FixtureRequest) -> Iterator[list[Server]]:
    with redis_server.client() as client:
        client.flushall()
    grace = getattr(request, "param", 30)
    started = [Server(name, redis_server.url, grace) for name in ("a", "b")]
    yield started
    for server in started:
        server.stop()


def test_login_on_one_server_and_reissue_on_the_other(servers: list[Server]) -> None:
    a, b = servers
    pair = a.login()
    status, body = b.reissue(pair)
    assert status == 200
    new = json.loads(body)
    request = urllib.request.Request(
        a.url + "/me", headers={"Authorization": f"Bearer {new['access_token']}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response) == {"username": "alice", "server": "a"}


def test_concurrent_reissues_split_across_servers_rotate_once(
    servers: list[Server], redis_server: RedisServer
) -> None:
    pair = servers[0].login()
    barrier = threading.Barrier(20)
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def worker(server: Server) -> None:
        barrier.wait()
        outcome = server.reissue(pair)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker, args=(servers[i % 2],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [status for status, _ in results] == [200] * 20
    assert len({body for _, body in results}) == 1, "the same new pair from both servers"
    claims = jwt.decode(pair["refresh_token"], options={"verify_signature": False})
    with redis_server.client() as client:
        keys = list(client.scan_iter(f"*:s:{claims['sid']}"))
        assert client.hget(keys[0], "gen") == b"1"


@pytest.mark.parametrize("servers", [1], indirect=True)
def test_reuse_is_detected_across_servers(servers: list[Server]) -> None:
    a, b = servers
    old = a.login()
    status, body = a.reissue(old)
    current = json.loads(body)
    time.sleep(1.2)  # past the 1 s grace window
    status, body = b.reissue(old)
    assert (status, json.loads(body)["error"]) == (401, "refresh_token_reused")
    status, body = a.reissue(current)
    assert (status, json.loads(body)["error"]) == (401, "session_revoked")
