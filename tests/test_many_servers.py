"""Two app server processes (gunicorn, separate ports) on one real Redis."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator

import jwt
import pytest
from appserver import Server
from servers import RedisServer

pytestmark = pytest.mark.real_redis


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
        body = json.load(response)
    assert (body["username"], body["server"]) == ("alice", "a")


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
