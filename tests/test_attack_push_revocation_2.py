"""Second attack pass on push revocation (docs/design.md, "Push revocation"): what it
found, as tests that state what the design promises."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from helpers import Api, Users, app_on_url
from servers import RedisServer
from test_attack_cluster_listener import Cluster, links_up
from test_push_revocation import guard_of, known, listening, status

from flask_dualtoken.state import get_state


@pytest.fixture
def debug_cluster() -> Iterator[list[RedisServer]]:
    """Three masters with DEBUG enabled (to drop bus links)."""
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster.servers
    finally:
        cluster.stop()


@pytest.mark.real_redis
@pytest.mark.cluster
def test_a_dropped_cluster_bus_link_does_not_lose_a_revocation(
    debug_cluster: list[RedisServer],
) -> None:
    """design.md: "never a missed revocation". The bus links from the writer's primary to
    every other node are dropped (DEBUG CLUSTERLINK KILL stands for a network blip or a
    ping timeout, after which Redis drops and reconnects the link), then a session on that
    primary ends: the other process must refuse its token. It listens to each primary on a
    connection of its own, so the bus is not on the path (this was a miss while it
    listened on one node and took the bus for a path)."""
    users = Users()
    for i in range(30):
        users.add(f"user{i}")
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in debug_cluster)
    ids = {}
    for server in debug_cluster:
        with server.client() as c:
            ids[server.port] = c.execute_command("CLUSTER", "MYID").decode()
    with app_on_url(users, url) as a_app, app_on_url(users, url) as b_app:
        a, b = listening(a_app, b_app, warm_user="user0")
        store = get_state(a_app).store
        client: Any = store.client  # a cluster client here
        writers = set()
        for i in range(1, 10):
            listener = guard_of(b_app)._listener
            assert listener is not None
            assert len(listener._conns) == 3, "one connection per primary"
            deadline = time.monotonic() + 5
            while listener.trusted_period() is None:
                assert time.monotonic() < deadline, "the listener did not listen again"
                time.sleep(0.05)
            node = client.nodes_manager.get_node_from_slot(
                client.keyslot(store.index_key(str(i + 1)))  # user{i} has id i + 1
            )
            writers.add(node.port)
            pair = known(b, a.login(f"user{i}"))
            time.sleep(0.2)
            assert status(b, pair) == (200, None)
            others = [node_id for port, node_id in ids.items() if port != node.port]
            with redis.Redis(port=node.port) as writer_node:
                # Redis 7.0 crashes when a link it has not rebuilt yet is killed: wait.
                deadline = time.monotonic() + 10
                while not links_up(writer_node, others):
                    assert time.monotonic() < deadline, "the bus links did not come back"
                    time.sleep(0.05)
                for node_id in others:
                    writer_node.execute_command("DEBUG", "CLUSTERLINK", "KILL", "all", node_id)
            assert a.logout(pair).status_code == 204
            time.sleep(0.1)  # within the bound, and long before a killed link could matter
            assert status(b, pair) == (401, "session_revoked"), f"missed (user{i})"
        assert len(writers) >= 2, "the users should have landed on more than one primary"


@pytest.mark.real_redis
def test_a_session_this_process_ended_itself_stays_refused_with_redis_down(
    own_redis_server: RedisServer, users: Users
) -> None:
    """forget(): "Named ones are remembered as dead ..., so they stay refused even while
    Redis is unreachable"; test_attack_push_revocation: "A process that ended a session
    itself (logout here), or heard its announcement, knows." Here the process logs the
    session out without having served a protected request of it first."""
    with app_on_url(users, own_redis_server.url) as app:
        api = Api(app)
        warm = api.login("bob")
        assert status(api, warm) == (200, None)  # the listener runs
        pair = api.login()
        assert api.logout(pair).status_code == 204  # ended here, by this very process
        own_redis_server.stop()
        assert status(api, pair) == (401, "session_revoked")
