"""Connection: the store URL grammar, checked at start-up, and the client built from it.

Nothing here talks to the store when the app starts: a cluster client is built at its
first use, so an app whose Redis is down starts, and answers 503 until Redis is back.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, cast
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.retry import Retry
from redis.sentinel import Sentinel

from .redis_scripts import STORE_ERRORS

if TYPE_CHECKING:
    from .config import Settings

logger = logging.getLogger("flask_dualtoken")

#: A standalone or Sentinel-managed client, or a cluster client: the store works with all.
RedisClient: TypeAlias = "redis.Redis | RedisCluster"

#: Socket timeouts for clients we build: a dead or black-holed Redis must turn into a 503
#: within about a second, not after redis-py's default retries with backoff.
SOCKET_TIMEOUT = 0.5

REDIS_SCHEMES = frozenset(
    {"redis", "rediss", "unix", "memory", "redis+cluster", "rediss+cluster", "redis+sentinel"}
)

MEMORY_WARNING = (
    "flask-dualtoken is using the in-memory store (memory://): sessions live in this "
    "process only and vanish on restart. Use a real Redis for more than one process."
)


class UrlError(ValueError):
    """A store URL no client can be built from; the message never quotes the URL."""


def check_url(url: str) -> None:
    """Raise UrlError unless a client can be built from ``url`` (no connection is made):
    a bad port or an unknown query argument fails at start-up, not at the first request."""
    scheme = urlsplit(url).scheme
    try:
        if scheme.endswith("+cluster"):
            cluster_nodes(url)
        elif scheme == "redis+sentinel":
            sentinel_parts(url)
        elif scheme != "memory":
            redis.Redis.from_url(url).connection_pool.make_connection()
    except (ValueError, TypeError) as exc:
        # The parser's message may quote a piece of a password: never echo it.
        raise UrlError(
            exc if isinstance(exc, UrlError) else "redis-py cannot use this URL"
        ) from None


def redact_url(url: str) -> str:
    """The URL for logs, reprs and error messages: whole when it can hold no credential,
    else its scheme alone. Parsing out just the password is not safe: one with an
    unencoded '/', '?' or '#' moves the URL's parts around."""
    if "@" in url or "password" in url.lower():
        return f"{url.partition('://')[0]}://<credentials hidden>"
    return url


def _hosts(netloc: str) -> list[tuple[str, int]]:
    hosts = []
    for item in netloc.rpartition("@")[2].split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise UrlError("give every host as host:port, separated by commas")
        hosts.append((host.strip("[]"), int(port)))
    return hosts


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """``redis+cluster://host:port[,host:port...]``: the cluster's startup nodes."""
    return _hosts(urlsplit(url).netloc)


def sentinel_parts(url: str) -> tuple[list[tuple[str, int]], str, int]:
    """``redis+sentinel://host:port[,host:port...]/service_name[/db]``."""
    parts = urlsplit(url)
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise UrlError("give the service name as the path: .../service_name[/db]")
    return _hosts(parts.netloc), path[0], int(path[1]) if len(path) == 2 else 0


def store_address(settings: Settings) -> str:
    """Where the store is, for log lines: the URL without credentials."""
    if settings.redis_client is not None:
        return f"the {type(settings.redis_client).__name__} client in DUALTOKEN_REDIS"
    return redact_url(settings.redis_url)


def connect(settings: Settings) -> RedisClient:
    """The client for the configured store; ``memory://`` is an in-process fakeredis."""
    if settings.redis_client is not None:
        return settings.redis_client
    url = settings.redis_url
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return _memory_client()
    # Short timeouts and one immediate retry (which recovers a pooled connection that died
    # with a Redis restart): an outage answers 503 in about a second.
    timeouts: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
        "retry": Retry(NoBackoff(), 1),
        "retry_on_error": [redis.ConnectionError],
    }
    parts = urlsplit(url)
    if scheme.endswith("+cluster"):

        def cluster() -> RedisCluster:
            return RedisCluster(
                startup_nodes=[
                    ClusterNode(host, port)  # type: ignore[no-untyped-call]
                    for host, port in cluster_nodes(url)
                ],
                ssl=scheme.startswith("rediss"),
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=SOCKET_TIMEOUT,
                # A moved slot or a failed-over master is retried; a dead cluster is not
                # retried for long.
                retry=Retry(NoBackoff(), 2),
                username=parts.username,
                password=parts.password,
            )

        # Duck-typed stand-in: every attribute is the real client's, built at first use.
        return cast(RedisCluster, LazyCluster(cluster))
    if scheme == "redis+sentinel":
        hosts, service, db = sentinel_parts(url)
        sentinel = Sentinel(hosts, sentinel_kwargs=dict(timeouts))  # type: ignore[no-untyped-call]
        master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            service, db=db, username=parts.username, password=parts.password, **timeouts
        )
        return master
    return redis.Redis.from_url(url, **timeouts)


class LazyCluster:
    """A cluster client built at first use, and built again until that works.

    ``RedisCluster`` asks the nodes for the slot map in its constructor; ``init_app`` must
    not depend on the store being up (an app whose cluster is down at start-up logs a
    warning and answers 503 until it is back, and its CLI, ``gen-secret`` included, works).
    """

    def __init__(self, factory: Callable[[], RedisCluster]) -> None:
        self._factory = factory
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    def _get(self) -> RedisCluster:
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    try:
                        client = self._client = self._factory()
                    except STORE_ERRORS as exc:
                        logger.warning("Redis Cluster not reachable: %s", exc)
                        raise redis.ConnectionError("Redis Cluster not reachable") from None
        return client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __repr__(self) -> str:
        return "LazyCluster(connected)" if self._client is not None else "LazyCluster()"


def _memory_client() -> redis.Redis:
    try:
        import fakeredis
    except ImportError:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "DUALTOKEN_REDIS_URL=memory:// needs fakeredis with Lua: "
            "pip install 'flask-dualtoken[memory]'"
        ) from None
    client: redis.Redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    return client


@dataclass(frozen=True)
class Primary:
    """A primary, as a listener needs it (push revocation, docs/design.md): two
    connections of its own to that very node, outside every pool (nothing else reads from
    them, nothing reconnects them behind the listener's back), one to listen on and one for
    its beats (a redirection is an error there, not followed), and a key that lives on it."""

    listen: Any  # redis-py's connections are untyped
    command: Any
    #: None on a cluster primary that serves no slot: it holds no data to lose.
    key: str | None

    @property
    def connections(self) -> tuple[Any, Any]:
        return self.listen, self.command


@dataclass(frozen=True)
class ClusterNodeView:
    """One line of ``CLUSTER NODES``."""

    id: str
    host: str
    port: int
    #: The name it announces (``cluster-announce-hostname``), "" if none.
    hostname: str
    myself: bool
    #: A primary that can take writes: not joining, with an address, and not failed, or
    #: failed but still holding its slots (no replica took them over: it may be running
    #: again before the others clear the flag, and its sessions are still its own).
    writable_primary: bool
    #: The first slot it serves, None if it serves none (just added, or emptied).
    first_slot: int | None
    #: A slot it serves that is neither migrating nor importing: where a key of its own
    #: stays put (a reshard left half-way would answer ASK for the first one for good).
    steady_slot: int | None


def parse_cluster_nodes(reply: Any) -> list[ClusterNodeView]:
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        flags = set(fields[2].split(","))
        address, _, extra = fields[1].partition(",")  # ip:port@cport[,hostname]
        host, _, port = address.split("@")[0].rpartition(":")
        ranges = [_slot_range(s) for s in fields[8:] if not s.startswith("[")]
        moving = {int(s[1:].split("-")[0]) for s in fields[8:] if s.startswith("[")}
        steady = next(
            (slot for first, last in ranges for slot in _first_free(first, last, moving)), None
        )
        writable = (
            "master" in flags
            and not flags & {"handshake", "noaddr"}
            and ("fail" not in flags or bool(ranges))
        )
        nodes.append(
            ClusterNodeView(
                id=fields[0],
                host=host,
                port=int(port) if port.isdigit() else 0,
                hostname=extra.split(",")[0] if extra and "=" not in extra.split(",")[0] else "",
                myself="myself" in flags,
                writable_primary=writable,
                first_slot=ranges[0][0] if ranges else None,
                steady_slot=steady,
            )
        )
    return nodes


def _slot_range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    return int(first), int(last or first)


def _first_free(first: int, last: int, moving: set[int]) -> Iterator[int]:
    """The first slot of ``first..last`` not in ``moving`` (at most len(moving)+1 tries)."""
    for slot in range(first, min(last, first + len(moving)) + 1):
        if slot not in moving:
            yield slot
            return


def cluster_view(reply: Any) -> tuple[str, bool, frozenset[str]]:
    """A node's ``CLUSTER NODES``: its own id ("" unless it is a primary now), whether it
    serves a slot, and the ids of the primaries it knows that can take writes (not failed,
    not joining)."""
    nodes = parse_cluster_nodes(reply)
    me = next((n for n in nodes if n.myself), None)
    masters = frozenset(n.id for n in nodes if n.writable_primary)
    if me is None or not me.writable_primary:  # a primary demoted since: another period
        return "", False, masters
    return me.id, me.first_slot is not None, masters


def primaries(client: RedisClient, base: str, timeout: float) -> list[Primary]:
    """Every primary, each with a key named after ``base``: on a cluster, every primary
    that ``CLUSTER NODES`` lists as able to take writes, slots or none (the client's slot
    map knows only those with slots), each key with a hash tag of a slot it serves.
    Standalone and Sentinel: connections to the master the client reaches now. Socket
    timeouts are at most ``timeout``: a listener must not hang on a reply cut short."""
    if isinstance(client, redis.Redis):
        return [
            Primary(
                _own_connection(client, timeout=timeout),
                _own_connection(client, timeout=timeout),
                base,
            )
        ]
    cluster: Any = client  # redis-py's cluster client is partly untyped
    reply, template = _ask_cluster_nodes(cluster)
    remap = getattr(cluster.nodes_manager, "remap_host_port", None)
    slot_map = cluster.nodes_manager.slots_cache
    found = []
    for node in parse_cluster_nodes(reply):
        if not node.writable_primary:
            continue
        slot = node.steady_slot if node.steady_slot is not None else node.first_slot
        owners = slot_map.get(slot) if slot is not None else None
        if owners:  # connect as the client does (its endpoint type, its address remap)
            host, port = owners[0].host, owners[0].port
        else:  # no slot yet: by its announced name, else its address
            # (a node that has not learnt its address shows it empty in its own line)
            host = node.hostname or node.host or template.connection_pool.connection_kwargs["host"]
            host, port = remap(host, node.port) if remap is not None else (host, node.port)
        key = None if slot is None else f"{base}{{{_tag_for_slot(slot)}}}"
        found.append(
            Primary(
                _own_connection(template, host, port, timeout),
                _own_connection(template, host, port, timeout),
                key,
            )
        )
    return found


def _ask_cluster_nodes(cluster: Any) -> tuple[Any, redis.Redis]:
    """``CLUSTER NODES`` from the first primary of the slot map that answers, and that
    primary's client (whose connection settings every listening connection copies)."""
    error: Exception = redis.ConnectionError("the cluster has no primary")
    for node in cluster.get_primaries():
        node_client: Any = cluster.get_redis_connection(node)  # execute_command is untyped
        try:
            return node_client.execute_command("CLUSTER", "NODES"), node_client
        except STORE_ERRORS as exc:
            error = exc
    raise error


def is_cluster(client: RedisClient) -> bool:
    return not isinstance(client, redis.Redis)


def _own_connection(
    client: redis.Redis, host: str | None = None, port: int = 0, timeout: float | None = None
) -> Any:
    """A connection built as the client's pool builds them (to another node if given),
    but not counted by the pool: each listening period takes new ones, and a pool with
    ``max_connections`` would run out after that many gaps. Nor does it go through a
    client-side cache. Its socket timeouts are capped at ``timeout``."""
    pool: Any = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    if host is not None:
        kwargs.update(host=host, port=port)
    if timeout is not None:
        for name in ("socket_timeout", "socket_connect_timeout"):
            given = kwargs.get(name)
            kwargs[name] = timeout if given is None else min(given, timeout)
    return pool.connection_class(**kwargs)


def refresh_topology(client: RedisClient) -> None:
    """Ask a cluster for its nodes and slots again (a primary was added or promoted)."""
    if is_cluster(client):
        cluster: Any = client
        cluster.nodes_manager.initialize()


@functools.lru_cache(maxsize=64)
def _tag_for_slot(slot: int) -> str:
    for i in itertools.count():
        if key_slot(str(i).encode()) == slot:
            return str(i)
    raise AssertionError("unreachable")  # pragma: no cover
