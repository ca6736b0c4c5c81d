"""Shared fixtures: app, client, store, users, clock; every store-backed test runs three
times, on fakeredis, on a real redis-server and on a 3-master cluster that this suite
starts on loopback ports."""

from __future__ import annotations

import math
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import jwt
import pytest
import redis
import time_machine
from flask import Flask, Response
from redis.cluster import ClusterNode, RedisCluster
from werkzeug.security import check_password_hash, generate_password_hash

from flask_dualtoken import DualToken, current_user, get_jwt, jwt_required
from flask_dualtoken.state import AppState, get_state
from flask_dualtoken.store import SessionStore

SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
FAST_HASH = "pbkdf2:sha256:1000"  # tests only: real apps keep werkzeug's default


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A redis-server process of the suite's own, on 127.0.0.1, without persistence."""

    def __init__(self, binary: str, port: int) -> None:
        self.binary = binary
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.dir = tempfile.mkdtemp(prefix="dualtoken-redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *extra: str) -> None:
        self.extra = extra or getattr(self, "extra", ())
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        probe.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(port=self.port, **kwargs)


class RedisClusterServers:
    """Three masters on loopback ports with cluster mode on, joined by redis-cli."""

    def __init__(self, binary: str) -> None:
        self.servers = [RedisServer(binary, port) for port in cluster_ports(3)]

    @property
    def url(self) -> str:
        nodes = ",".join(f"127.0.0.1:{s.port}" for s in self.servers)
        return f"redis+cluster://{nodes}"

    def start(self) -> None:
        for server in self.servers:
            server.start(
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"{server.dir}/nodes.conf",
                "--cluster-node-timeout",
                "2000",
            )
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is needed to create the test cluster")
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *[f"127.0.0.1:{s.port}" for s in self.servers],
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        for server in self.servers:
            with server.client() as probe:
                while b"cluster_state:ok" not in probe.execute_command("CLUSTER", "INFO"):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the test cluster did not become ready")
                    time.sleep(0.05)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def client(self) -> RedisCluster:
        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", s.port) for s in self.servers])


class SentinelSetup:
    """One master, one replica and one sentinel watching them, all on loopback."""

    SERVICE = "mymaster"

    def __init__(self, binary: str) -> None:
        self.master = RedisServer(binary, free_port())
        self.replica = RedisServer(binary, free_port())
        self.binary = binary
        self.sentinel_port = free_port()
        self.sentinel: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{self.SERVICE}"

    def start(self) -> None:
        self.master.start()
        self.replica.start("--replicaof", "127.0.0.1", str(self.master.port))
        conf = f"{self.master.dir}/sentinel.conf"
        with open(conf, "w") as f:
            f.write(
                f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.master.dir}\n"
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master.port} 1\n"
                f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
                f"sentinel failover-timeout {self.SERVICE} 5000\n"
            )
        self.sentinel = subprocess.Popen(
            [self.binary, conf, "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait(lambda: self.replicas_known() and self.replica_in_sync(), "sentinel ready")

    def sentinel_client(self) -> redis.Redis:
        return redis.Redis(port=self.sentinel_port, socket_connect_timeout=0.2)

    def master_port(self) -> int:
        with self.sentinel_client() as s:
            _host, port = s.sentinel_get_master_addr_by_name(self.SERVICE)
        return int(port)

    def replicas_known(self) -> bool:
        try:
            with self.sentinel_client() as s:
                return bool(s.sentinel_slaves(self.SERVICE))
        except redis.RedisError:
            return False

    def replica_in_sync(self) -> bool:
        with self.replica.client() as r:
            info = r.info("replication")
        return info.get("master_link_status") == "up"

    def failover(self) -> None:
        """Promote the replica, as an operator or a dying master would, and wait for it."""
        old = self.master_port()
        with self.sentinel_client() as s:
            s.execute_command("SENTINEL", "FAILOVER", self.SERVICE)

        def promoted() -> bool:
            if self.master_port() == old:
                return False
            with redis.Redis(port=self.master_port()) as new:
                return new.info("replication").get("role") == "master"

        self.wait(promoted, "failover")

    @staticmethod
    def wait(ready: Any, what: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.sentinel is not None:
            self.sentinel.terminate()
            self.sentinel.wait(timeout=10)
        self.replica.stop()
        self.master.stop()


def cluster_ports(count: int) -> list[int]:
    """Ports whose cluster bus port (port + 10000) is free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 39999)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        if port not in ports:
            ports.append(port)
    return ports


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        reason = (
            "redis-server is not installed, so the real-Redis half of the suite cannot run "
            "(apt-get install redis-server)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real-Redis tests: {reason}")
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(redis_binary(), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A server this test may stop and restart."""
    server = RedisServer(redis_binary(), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_sentinel() -> Iterator[SentinelSetup]:
    setup = SentinelSetup(redis_binary())
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    cluster = RedisClusterServers(redis_binary())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(
    params=[
        "fakeredis",
        pytest.param("redis", marks=pytest.mark.real_redis),
        pytest.param("cluster", marks=[pytest.mark.real_redis, pytest.mark.cluster]),
    ]
)
def redis_client(request: pytest.FixtureRequest) -> Iterator[redis.Redis | RedisCluster]:
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis(server=fakeredis.FakeServer())
        return
    if request.param == "cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        cluster_client = cluster.client()
        cluster_client.flushall()
        cluster_client.script_flush()
        yield cluster_client
        cluster_client.close()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = server.client()
    client.flushall()
    client.script_flush()
    yield client
    client.close()


# -- users --------------------------------------------------------------------------------


@dataclass
class User:
    id: int
    username: str
    password_hash: str
    role: str = "user"
    active: bool = True


@dataclass
class Users:
    """An in-memory user table with call counters, wired to the extension's callbacks."""

    by_id: dict[str, User] = field(default_factory=dict)
    loads: int = 0
    dummy_hash: str = field(default_factory=lambda: generate_password_hash("x", FAST_HASH))

    def add(self, username: str, password: str = "correct horse", role: str = "user") -> User:
        user = User(
            len(self.by_id) + 1, username, generate_password_hash(password, FAST_HASH), role
        )
        self.by_id[str(user.id)] = user
        return user

    def authenticate(self, username: str, password: str) -> User | None:
        user = next((u for u in self.by_id.values() if u.username == username), None)
        if user is None:
            check_password_hash(self.dummy_hash, password)
            return None
        ok = check_password_hash(user.password_hash, password) and user.active
        return user if ok else None

    def load(self, user_id: str) -> User | None:
        self.loads += 1
        user = self.by_id.get(user_id)
        return user if user is not None and user.active else None


@pytest.fixture
def users() -> Users:
    table = Users()
    table.add("alice", role="admin")
    table.add("bob")
    return table


# -- apps ---------------------------------------------------------------------------------


def add_test_routes(app: Flask) -> None:
    @app.get("/me")
    @jwt_required
    def me() -> dict[str, Any]:
        return {"id": current_user.id, "role": get_jwt()["role"]}

    @app.route("/admin", methods=["GET", "OPTIONS"])
    @jwt_required(roles=["admin"])
    def admin() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/optional")
    @jwt_required(optional=True)
    def optional() -> dict[str, Any]:
        return {"user": current_user.username if current_user else None}

    @app.get("/async")
    @jwt_required
    async def async_view() -> dict[str, Any]:
        return {"id": current_user.id}


def build_app(redis_client: redis.Redis | None, users: Users, **config: Any) -> Flask:
    app = Flask("dualtoken_tests")
    app.config.update(DUALTOKEN_SECRET_KEY=SECRET, DUALTOKEN_REDIS=redis_client)
    app.config.update(config)
    dualtoken = DualToken(app)
    dualtoken.authenticate(users.authenticate)
    dualtoken.user_loader(users.load)
    app.extensions["dualtoken_object"] = dualtoken
    add_test_routes(app)
    return app


@contextmanager
def app_on_url(users: Users, url: str) -> Iterator[Flask]:
    """An app whose Redis client the library builds from a URL, with its own timeouts and
    retry policy, closed afterwards."""
    app = build_app(None, users, DUALTOKEN_REDIS=None, DUALTOKEN_REDIS_URL=url)
    try:
        yield app
    finally:
        app.extensions["dualtoken"].store.client.close()


@pytest.fixture
def make_app(redis_client: redis.Redis, users: Users) -> Callable[..., Flask]:
    def factory(**config: Any) -> Flask:
        return build_app(redis_client, users, **config)

    return factory


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def state(app: Flask) -> AppState:
    return get_state(app)


@pytest.fixture
def store(state: AppState) -> SessionStore:
    return state.store


class Api:
    """The HTTP calls a client of the blueprint makes."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client()

    def login(self, username: str = "alice", password: str = "correct horse") -> dict[str, Any]:
        response = self.client.post(
            "/auth/login", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.json
        body: dict[str, Any] = response.json  # type: ignore[assignment]
        return body

    def reissue(self, pair: dict[str, Any]) -> Response:
        return self.client.post(
            "/auth/reissue",
            headers=bearer(pair["access_token"]),
            json={"refresh_token": pair["refresh_token"]},
        )

    def logout(self, pair: dict[str, Any]) -> Response:
        return self.client.post(
            "/auth/logout",
            headers=bearer(pair["access_token"]),
            json={"refresh_token": pair["refresh_token"]},
        )

    def get_json(self, path: str, pair: dict[str, Any]) -> dict[str, Any]:
        response = self.get(path, pair["access_token"])
        assert response.status_code == 200, response.json
        body: dict[str, Any] = response.json  # type: ignore[assignment]
        return body

    def get(self, path: str, access_token: str | None = None) -> Response:
        headers = bearer(access_token) if access_token is not None else {}
        return self.client.get(path, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def session_hash(store: SessionStore, user_id: str, sid: str) -> dict[str, str]:
    """A session's raw hash in Redis, to check what the store keeps (no token in it)."""
    raw = store.client.hgetall(store.session_key(user_id, sid))
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def sid_of(pair: dict[str, Any]) -> str:
    """The session id of a login or reissue answer, read from its access token."""
    return str(jwt.decode(pair["access_token"], options={"verify_signature": False})["sid"])


@pytest.fixture
def api(app: Flask) -> Api:
    return Api(app)


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


# -- time ---------------------------------------------------------------------------------


class Clock:
    """Moves time forward for both the app (PyJWT) and the store (Redis TIME).

    On fakeredis both read the patched system clock; a real redis-server has its own
    clock, so there the test really waits: keep the steps short.
    """

    def __init__(self, traveller: Any | None) -> None:
        self._traveller = traveller

    @property
    def real(self) -> bool:
        return self._traveller is None

    def align(self) -> None:
        """Move to just past a whole second: token times are whole seconds, so a test that
        counts in seconds must not start a hair before a second boundary."""
        now = time.time()
        target = math.floor(now) + 1.05
        if self._traveller is None:
            time.sleep(target - now)
        else:
            self._traveller.move_to(target)

    def advance(self, seconds: float) -> None:
        if self._traveller is None:
            time.sleep(seconds)
        else:
            self._traveller.shift(seconds)


@pytest.fixture
def clock(redis_client: redis.Redis) -> Iterator[Clock]:
    if isinstance(redis_client, fakeredis.FakeRedis):
        with time_machine.travel(time.time(), tick=True) as traveller:
            yield Clock(traveller)
    else:
        yield Clock(None)
