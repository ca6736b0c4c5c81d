"""Store: sessions in Redis, each operation one atomic Lua script called by SHA.

Layout, all keys of one user under one hash tag so a script touches one cluster slot::

    {prefix}:{u<base64url(user id)>}:s:<sid>   hash: the session (see lua/create.lua)
    {prefix}:{u<base64url(user id)>}:r:<sid>   hash: the newest pair's claims, kept only
                                               for the grace window (lua/rotate.lua)
    {prefix}:{u<base64url(user id)>}:idx       sorted set: sid -> absolute end
    {prefix}:{u<base64url(user id)>}:epoch     int: bumped by logout-all

Redis holds refresh-token *ids* and unsigned claim templates, never a token or a hash of
one: reading Redis does not let anyone act as a user.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.retry import Retry
from redis.sentinel import Sentinel

from .config import Settings, cluster_nodes, sentinel_parts
from .errors import StoreUnavailable
from .tokens import Grant

logger = logging.getLogger("flask_dualtoken")

#: A standalone or Sentinel-managed client, or a cluster client: the store works with all.
RedisClient: TypeAlias = "redis.Redis | RedisCluster"

#: Socket timeouts for clients we build: a dead or black-holed Redis must turn into a 503
#: within about a second, not after redis-py's default retries with backoff.
SOCKET_TIMEOUT = 0.5


def script_source(name: str) -> str:
    """A script's source with the shared prelude in front."""
    lua = resources.files("flask_dualtoken") / "lua"
    return (lua / "prelude.lua").read_text("utf-8") + (lua / f"{name}.lua").read_text("utf-8")


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
    if scheme == "redis+sentinel":
        hosts, service, db = sentinel_parts(url)
        sentinel = Sentinel(hosts, sentinel_kwargs=dict(timeouts))  # type: ignore[no-untyped-call]
        master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            service, db=db, username=parts.username, password=parts.password, **timeouts
        )
        return master
    return redis.Redis.from_url(url, **timeouts)


def _memory_client() -> redis.Redis:
    try:
        import fakeredis
    except ImportError:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "DUALTOKEN_REDIS_URL=memory:// needs fakeredis with Lua: "
            "pip install 'flask-dualtoken[memory]'"
        ) from None
    logger.warning(
        "flask-dualtoken is using the in-memory store (memory://): sessions live in this "
        "process only and vanish on restart. Use a real Redis for more than one process."
    )
    client: redis.Redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    return client


def hash_tag(kind: str, value: str) -> str:
    """A Redis Cluster hash tag for a value: base64url, so '{', '}', ':' or any Unicode in
    it is safe; ``kind`` keeps tags of different namespaces apart."""
    encoded = base64.urlsafe_b64encode(value.encode("utf-8")).rstrip(b"=").decode("ascii")
    return "{" + kind + encoded + "}"


def user_tag(user_id: str) -> str:
    """The tag every key of one user shares, so one script can touch them all."""
    return hash_tag("u", user_id)


@dataclass(frozen=True)
class ClientInfo:
    """Where a request came from, kept with the session for the session list."""

    ip: str = ""
    user_agent: str = ""


@dataclass(frozen=True)
class SessionInfo:
    """One live session as the session list shows it; times are Unix seconds."""

    session_id: str
    created_at: int
    last_used_at: int
    expires_at: int
    ip: str
    user_agent: str

    def to_dict(self, current_session_id: str | None = None) -> dict[str, Any]:
        return {
            "sid": self.session_id,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "expires_at": self.expires_at,
            "current": self.session_id == current_session_id,
            "user_agent": self.user_agent,
            "ip": self.ip,
        }


@dataclass(frozen=True)
class Rotation:
    """The store's verdict on a reissue; ``grant`` is set for rotated and replayed."""

    outcome: str  # rotated | replayed | reused | revoked | expired | unknown
    grant: Grant | None = None
    detail: str | None = None


class SessionStore:
    """Session operations of one app; every public method is one round trip to Redis."""

    def __init__(self, client: RedisClient, settings: Settings) -> None:
        self.client = client
        self._prefix = settings.key_prefix
        self._access_ttl = settings.access_expires
        self._idle_ttl = settings.refresh_expires
        self._max_age = settings.session_max_age
        self._grace_us = settings.reuse_grace * 1_000_000
        # Keys outlive the refresh token by the leeway, so a late but accepted token still
        # gets a precise answer (revoked, reused) instead of "unknown".
        self._margin = settings.leeway + 1
        # register_script calls EVALSHA and reloads the script on NOSCRIPT (a restarted or
        # flushed Redis), so the source is sent once per server, not per call.
        self._create = client.register_script(script_source("create"))
        self._rotate = client.register_script(script_source("rotate"))
        self._revoke = client.register_script(script_source("revoke"))
        self._revoke_all = client.register_script(script_source("revoke_all"))
        self._check = client.register_script(script_source("check"))
        self._sessions = client.register_script(script_source("sessions"))

    def session_key(self, user_id: str, sid: str) -> str:
        return f"{self._prefix}:{user_tag(user_id)}:s:{sid}"

    def index_key(self, user_id: str) -> str:
        return f"{self._prefix}:{user_tag(user_id)}:idx"

    def epoch_key(self, user_id: str) -> str:
        return f"{self._prefix}:{user_tag(user_id)}:epoch"

    def replay_key(self, user_id: str, sid: str) -> str:
        return f"{self._prefix}:{user_tag(user_id)}:r:{sid}"

    def _keys(self, user_id: str, sid: str) -> list[str]:
        return [
            self.session_key(user_id, sid),
            self.index_key(user_id),
            self.epoch_key(user_id),
            self.replay_key(user_id, sid),
        ]

    def _run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except redis.RedisError as exc:
            # Fail closed: nothing is issued unless the script ran to the end.
            logger.error("session store unavailable: %s", type(exc).__name__)
            raise StoreUnavailable() from None

    def create(
        self,
        user_id: str,
        sid: str,
        refresh_jti: str,
        access_template: str,
        refresh_template: str,
        client: ClientInfo,
    ) -> Grant:
        """Store a new session; its times come from Redis."""
        args: list[str | int] = [user_id, sid, refresh_jti]
        args += [self._access_ttl, self._idle_ttl, self._max_age, self._margin]
        args += [client.ip, client.user_agent]
        reply = _text(self._run(self._create, self._keys(user_id, sid)[:3], args))
        return Grant(access_template, refresh_template, 0, *map(int, reply[1:4]))

    def rotate(
        self,
        user_id: str,
        sid: str,
        presented_jti: str,
        presented_gen: int,
        new_refresh_jti: str,
        access_template: str,
        refresh_template: str,
        client: ClientInfo,
    ) -> Rotation:
        """Apply the reissue rule (lua/rotate.lua) to a verified, bound token pair."""
        args: list[str | int] = [user_id, sid, presented_jti, new_refresh_jti]
        args += [access_template, refresh_template]
        args += [self._access_ttl, self._idle_ttl, self._grace_us, self._margin]
        args += [client.ip, client.user_agent, presented_gen]
        reply = _text(self._run(self._rotate, self._keys(user_id, sid), args))
        outcome = reply[0]
        if outcome in ("rotated", "replayed"):
            issued_at, access_exp, refresh_exp, gen = map(int, reply[1:5])
            grant = Grant(reply[5], reply[6], gen, issued_at, access_exp, refresh_exp)
            return Rotation(outcome, grant)
        return Rotation(outcome, detail=reply[1] if len(reply) > 1 else None)

    def revoke(self, user_id: str, sid: str, reason: str) -> bool:
        """End a session; False when it was already revoked or never existed."""
        return bool(self._run(self._revoke, self._keys(user_id, sid), [user_id, sid, reason]))

    def revoke_all(self, user_id: str) -> None:
        """End every session of a user, in O(1), including logins racing with this call."""
        self._run(
            self._revoke_all,
            [self.index_key(user_id), self.epoch_key(user_id)],
            [self._max_age, self._margin],
        )

    def is_live(self, user_id: str, sid: str) -> bool:
        """Strict mode's check: one read-only script, no writes."""
        keys = [self.session_key(user_id, sid), self.epoch_key(user_id)]
        return bool(self._run(self._check, keys, [user_id]))

    def sessions(self, user_id: str) -> list[SessionInfo]:
        """The user's live sessions, oldest first (to the microsecond), from the index."""
        prefix = self.session_key(user_id, "")
        flat = _text(
            self._run(self._sessions, [self.index_key(user_id), self.epoch_key(user_id)], [prefix])
        )
        rows = sorted(
            (flat[i : i + 6] for i in range(0, len(flat), 6)), key=lambda row: int(row[1])
        )
        return [
            SessionInfo(
                session_id=sid,
                created_at=int(created) // 1_000_000,
                last_used_at=int(used) // 1_000_000,
                expires_at=int(expires),
                ip=ip,
                user_agent=agent,
            )
            for sid, created, used, expires, ip, agent in rows
        ]

    def count_live_sessions(self) -> int:
        """Scan every session hash: for operators' statistics, never for a request."""
        try:
            keys = list(self.client.scan_iter(match=f"{self._prefix}:*:s:*", count=1000))
            rows: list[tuple[str, str]] = []  # (uid, epoch) of sessions not revoked
            for start in range(0, len(keys), 1000):
                with self.client.pipeline(transaction=False) as pipe:
                    for key in keys[start : start + 1000]:
                        pipe.hmget(key, "uid", "epoch", "revoked")
                    for uid, epoch, revoked in pipe.execute():
                        if uid is not None and revoked is None:
                            rows.append((_str(uid), _str(epoch)))
            users = sorted({uid for uid, _ in rows})
            with self.client.pipeline(transaction=False) as pipe:
                for uid in users:
                    pipe.get(self.epoch_key(uid))
                current = {
                    u: _str(e) if e is not None else "0"
                    for u, e in zip(users, pipe.execute(), strict=True)
                }
            return sum(1 for uid, epoch in rows if current[uid] == epoch)
        except redis.RedisError:
            raise StoreUnavailable() from None

    def session(self, user_id: str, sid: str) -> dict[str, str]:
        """The raw session hash, for inspection and tests (no token material in it)."""
        try:
            raw = self.client.hgetall(self.session_key(user_id, sid))
        except redis.RedisError:
            raise StoreUnavailable() from None
        return {_str(k): _str(v) for k, v in raw.items()}


def _str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _text(reply: Any) -> list[str]:
    # Clients built with or without decode_responses both work.
    return [_str(item) for item in reply]
