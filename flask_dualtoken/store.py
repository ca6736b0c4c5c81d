"""Store: sessions in Redis, each decision one atomic Lua script called by SHA.

Layout, all keys of one user under one hash tag so a script touches one cluster slot::

    {prefix}:{u<base64url(user id)>}:s:<sid>   hash: the session (see lua/create.lua)
    {prefix}:{u<base64url(user id)>}:r:<sid>   hash: the newest pair's claims, kept only
                                               for the grace window (lua/rotate.lua)
    {prefix}:{u<base64url(user id)>}:idx       sorted set: sid -> absolute end (us); a session
                                               is alive only while it is in here

Redis holds refresh-token *ids* and unsigned claim templates, never a token or a hash of
one: reading Redis does not let anyone act as a user.

Every script is given every key it touches (lua/prelude.lua, declared_sessions). So the
sessions that the cap or logout-all ends, known only inside the script, are ended there
by leaving the index, and their keys are shrunk to markers by a second call that names
them; listing sessions reads the index first, then reads the sessions it names.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from redis.crc import key_slot
from redis.exceptions import ResponseError

from .config import MAX_SESSIONS_CAP, Settings
from .connection import MEMORY_WARNING, RedisClient, is_cluster
from .errors import SessionRevoked
from .redis_scripts import STORE_ERRORS, ScriptCall, StoreHealth, run, run_many
from .scripts import (
    CheckArgs,
    CheckStampArgs,
    CreateArgs,
    EndOthersArgs,
    EndSessionsArgs,
    ReauthArgs,
    RevokeAllArgs,
    RevokeArgs,
    RotateArgs,
    ScriptArgs,
    SessionsArgs,
)
from .tokens import Grant

logger = logging.getLogger("flask_dualtoken")


EVICTION_WARNING = (
    "Redis runs with maxmemory-policy %s: under memory pressure it may evict this "
    "library's keys, which ends sessions early, lets a refresh within the grace window be "
    "taken for reuse, and resets login attempt counters. Run it with "
    "maxmemory-policy noeviction (then a full Redis answers errors, and logins and "
    "reissues 503)."
)

#: The most sessions one login ends to stay under DUALTOKEN_MAX_SESSIONS: bounds the work
#: of one script even right after the cap was lowered (later logins end the rest).
MAX_EVICTIONS_PER_LOGIN = 100
#: How many sessions the session list shows when there is no cap.
UNCAPPED_LIST_LIMIT = 100
#: How long the session that ``end_others`` kept still accepts the stamp it had: a reissue
#: of it under way at the change (the user loaded before it) must not end it. Only that
#: session, which lives on anyway, so no longer than a slow request is needed.
STAMP_HANDOVER_SECONDS = 30


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


#: What lua/rotate.lua (or lua/reauth.lua) decided; flows.reissue maps each to an answer.
#: ``credentials_changed``: the user's security stamp changed, and the session ended.
RotationOutcome = Literal[
    "rotated", "replayed", "reused", "credentials_changed", "revoked", "expired", "unknown"
]
ROTATION_OUTCOMES: frozenset[str] = frozenset(get_args(RotationOutcome))


@dataclass(frozen=True)
class Rotation:
    """The store's verdict on a reissue; ``grant`` is set for rotated and replayed."""

    outcome: RotationOutcome
    grant: Grant | None = None


@dataclass(frozen=True)
class EndedOthers:
    """What ending a user's other sessions did: whether the session to keep was alive (and
    now carries the new stamp), and how many sessions ended."""

    kept: bool
    ended: int


@dataclass(frozen=True)
class Created:
    """A new session's grant, and the sessions the cap ended to make room for it."""

    grant: Grant
    evicted: tuple[str, ...]


class SessionStore:
    """Session operations of one app: each is one round trip to Redis, except the two that
    read or end sessions the caller does not know yet (the list, logout-all, a login
    beyond the cap), which take a second."""

    def __init__(self, client: RedisClient, settings: Settings, health: StoreHealth) -> None:
        self.client = client
        self.health = health
        self._prefix = settings.key_prefix
        #: Where the scripts announce ended sessions (push revocation; docs/design.md).
        self.channel = f"{settings.key_prefix}:revoked"
        #: Told of the sessions this process ended (None: all of a user's) as soon as their
        #: script returns, so this process refuses them without waiting for the announcement.
        self.on_ended: Callable[[str, Sequence[str] | None], None] = _ignore
        self._access_ttl = settings.access_expires
        self._idle_ttl = settings.refresh_expires
        self._max_age = settings.session_max_age
        self._grace_us = settings.reuse_grace * 1_000_000
        self._max_sessions = settings.max_sessions
        self.list_limit = settings.max_sessions or UNCAPPED_LIST_LIMIT
        # Keys outlive the refresh token by the leeway, so a late but accepted token still
        # gets a precise answer (revoked, reused) instead of "unknown".
        self._margin = settings.leeway + 1
        self._policy_checked = False
        self._in_memory = settings.redis_client is None and settings.redis_url.startswith(
            "memory:"
        )

    def user_prefix(self, user_id: str) -> str:
        """What every key of one user starts with: one hash tag, so one cluster slot."""
        return f"{self._prefix}:{user_tag(user_id)}:"

    def session_key(self, user_id: str, sid: str) -> str:
        return f"{self.user_prefix(user_id)}s:{sid}"

    def index_key(self, user_id: str) -> str:
        return f"{self._prefix}:{user_tag(user_id)}:idx"

    def shard_of(self, user_id: str) -> int:
        """The cluster slot of the user's keys (one hash tag), or 0 off a cluster: where
        an outage of one primary ends and the others' still answer."""
        if not is_cluster(self.client):
            return 0
        return key_slot(self.index_key(user_id).encode("utf-8"))

    def replay_key(self, user_id: str, sid: str) -> str:
        return f"{self._prefix}:{user_tag(user_id)}:r:{sid}"

    def _session_keys(self, user_id: str, sids: Sequence[str]) -> tuple[str, ...]:
        """A session hash and its replay key per session: what a script that reads or ends
        sessions it did not know beforehand is given (lua/prelude.lua)."""
        keys: list[str] = []
        for sid in sids:
            keys += [self.session_key(user_id, sid), self.replay_key(user_id, sid)]
        return tuple(keys)

    def _tidy(self, user_id: str, sids: Sequence[str], reason: str) -> None:
        """Shrink sessions a script ended (out of the index) to their markers. They are
        ended already: when this fails, the failure is logged and their keys simply
        expire with their refresh tokens."""
        if not sids:
            return
        call = EndSessionsArgs(
            index=self.index_key(user_id),
            reason=reason,
            sids=",".join(sids),
            declared=self._session_keys(user_id, sids),
        )
        try:
            run(self.client, call.call())
        except STORE_ERRORS as exc:
            self.health.failed(exc)

    def _run(self, args: ScriptArgs) -> Any:
        try:
            reply = run(self.client, args.call())
        except STORE_ERRORS as exc:
            # Fail closed: nothing is issued unless the script ran to the end.
            raise self.health.failed(exc) from None
        self._first_contact()
        return reply

    def _first_contact(self) -> None:
        """After every answer: end an outage in the log; and once per process, when the
        store first answers (init_app does no I/O), warn when Redis may evict keys, or
        that the store is this process's own (so commands that never touch the store, such
        as an app's own ``flask create-user``, print nothing)."""
        self.health.answered()
        if self._policy_checked:
            return
        self._policy_checked = True
        if self._in_memory:
            logger.warning(MEMORY_WARNING)
            return
        policy = self.eviction_policy()
        if policy is not None and policy != "noeviction":
            logger.warning(EVICTION_WARNING, policy)

    def eviction_policy(self) -> str | None:
        """Redis's ``maxmemory-policy`` (on a cluster, the first node's that is not
        ``noeviction``); None when the server does not say (some managed services)."""
        try:
            info: Any = self.client.info("memory")
        except STORE_ERRORS:
            return None
        if not isinstance(info, dict):
            return None
        nodes = [info] if "maxmemory_policy" in info else list(info.values())
        policies = [
            str(n["maxmemory_policy"])
            for n in nodes
            if isinstance(n, dict) and n.get("maxmemory_policy")
        ]
        if not policies:
            return None
        return next((p for p in policies if p != "noeviction"), "noeviction")

    def create(
        self,
        user_id: str,
        sid: str,
        refresh_jti: str,
        access_template: str,
        refresh_template: str,
        client: ClientInfo,
        *,
        amr: Sequence[str] = (),
        stamp: str = "",
        also: Sequence[ScriptCall] = (),
    ) -> Created:
        """Store a new session (times from Redis), ending the oldest ones beyond the cap.

        ``stamp``: the digest of the user's security stamp ('' when the app keeps none).
        ``also``: independent calls to send in the same round trip (the login throttle's
        release); an error in any of them fails the whole call.
        """
        call = CreateArgs(
            session=self.session_key(user_id, sid),
            index=self.index_key(user_id),
            uid=user_id,
            sid=sid,
            rt_jti=refresh_jti,
            access_ttl=self._access_ttl,
            idle_ttl=self._idle_ttl,
            max_age=self._max_age,
            margin=self._margin,
            ip=client.ip,
            user_agent=client.user_agent,
            max_sessions=self._max_sessions,
            evict_max=MAX_EVICTIONS_PER_LOGIN,
            channel=self.channel,
            amr=",".join(amr),
            stamp=stamp,
        ).call()
        try:
            reply = _text(run_many(self.client, [call, *also])[0])
        except STORE_ERRORS as exc:
            raise self.health.failed(exc) from None
        self._first_contact()
        began, access_exp, refresh_exp = map(int, reply[1:4])
        grant = Grant(
            access_template,
            refresh_template,
            0,
            began,
            access_exp,
            refresh_exp,
            auth_time=began,
            amr=tuple(amr),
        )
        evicted = tuple(reply[4:])
        if evicted:
            self.on_ended(user_id, evicted)
        self._tidy(user_id, evicted, "session_limit")
        return Created(grant, evicted)

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
        *,
        stamps: Sequence[str] = (),
    ) -> Rotation:
        """Apply the reissue rule (lua/rotate.lua) to a verified, bound token pair.

        ``stamps``: the user's security stamp digests, under the current secret first; a
        session that recorded another stamp ends (``credentials_changed``).
        """
        call = RotateArgs(
            session=self.session_key(user_id, sid),
            index=self.index_key(user_id),
            replay=self.replay_key(user_id, sid),
            uid=user_id,
            sid=sid,
            presented_jti=presented_jti,
            new_jti=new_refresh_jti,
            at_template=access_template,
            rt_template=refresh_template,
            access_ttl=self._access_ttl,
            idle_ttl=self._idle_ttl,
            grace_us=self._grace_us,
            margin=self._margin,
            ip=client.ip,
            user_agent=client.user_agent,
            presented_gen=presented_gen,
            channel=self.channel,
            stamps=",".join(stamps),
        )
        rotation = self._rotation(_text(self._run(call)), "rotate")
        if rotation.outcome in ("reused", "credentials_changed"):
            self.on_ended(user_id, (sid,))
        return rotation

    def reauthenticate(
        self,
        user_id: str,
        sid: str,
        new_refresh_jti: str,
        access_template: str,
        refresh_template: str,
        client: ClientInfo,
        *,
        amr: Sequence[str],
        stamp: str = "",
        also: Sequence[ScriptCall] = (),
    ) -> Rotation:
        """Rotate a live session whose user proved who they are again (lua/reauth.lua):
        its ``auth_time`` becomes now, its methods ``amr``, its stamp ``stamp``.

        ``also``: calls to send in the same round trip (the throttle's release), as for
        ``create``.
        """
        call = ReauthArgs(
            session=self.session_key(user_id, sid),
            index=self.index_key(user_id),
            replay=self.replay_key(user_id, sid),
            uid=user_id,
            sid=sid,
            new_jti=new_refresh_jti,
            at_template=access_template,
            rt_template=refresh_template,
            access_ttl=self._access_ttl,
            idle_ttl=self._idle_ttl,
            grace_us=self._grace_us,
            margin=self._margin,
            ip=client.ip,
            user_agent=client.user_agent,
            amr=",".join(amr),
            stamp=stamp,
        ).call()
        try:
            reply = _text(run_many(self.client, [call, *also])[0])
        except STORE_ERRORS as exc:
            raise self.health.failed(exc) from None
        self._first_contact()
        return self._rotation(reply, "reauth")

    def _rotation(self, reply: list[str], script: str) -> Rotation:
        outcome = reply[0]
        if outcome not in ROTATION_OUTCOMES:
            raise self.health.failed(ResponseError(f"{script} answered {outcome!r}"))
        if outcome in ("rotated", "replayed"):
            issued_at, access_exp, refresh_exp, gen = map(int, reply[1:5])
            grant = Grant(
                reply[5],
                reply[6],
                gen,
                issued_at,
                access_exp,
                refresh_exp,
                auth_time=int(reply[7]),
                amr=tuple(m for m in reply[8].split(",") if m),
            )
            return Rotation(cast(RotationOutcome, outcome), grant)
        return Rotation(cast(RotationOutcome, outcome))

    def revoke(self, user_id: str, sid: str, reason: str, *, caller: str | None = None) -> bool:
        """End a session; False when it was already ended or never existed.

        ``caller``: the session id of the access token asking; when that session has
        ended, nothing changes and ``SessionRevoked`` is raised.
        """
        call = RevokeArgs(
            session=self.session_key(user_id, sid),
            index=self.index_key(user_id),
            replay=self.replay_key(user_id, sid),
            uid=user_id,
            sid=sid,
            reason=reason,
            caller=caller or "",
            channel=self.channel,
        )
        ended = int(self._run(call))
        if ended < 0:
            raise SessionRevoked()
        if ended == 1:
            self.on_ended(user_id, (sid,))
        return ended == 1

    def revoke_all(self, user_id: str, *, caller: str | None = None) -> None:
        """End every session of a user in one script, including logins racing with this call;
        a second call shrinks their keys to markers. ``caller`` as for ``revoke``."""
        call = RevokeAllArgs(
            index=self.index_key(user_id),
            caller=caller or "",
            limit=MAX_SESSIONS_CAP,
            uid=user_id,
            channel=self.channel,
        )
        reply = _text(self._run(call))
        if reply[0] == "revoked":
            raise SessionRevoked()
        if len(reply) > 1:  # the index held sessions: they ended
            self.on_ended(user_id, None)
        self._tidy(user_id, reply[1:], "logout_all")

    def end_others(self, user_id: str, keep: str | None, stamp: str, reason: str) -> EndedOthers:
        """End every session of a user but ``keep`` (None: all of them), and give ``keep``
        the new security stamp digest ``stamp``, in one script; a second call shrinks the
        ended sessions' keys to markers."""
        call = EndOthersArgs(
            index=self.index_key(user_id),
            uid=user_id,
            keep=keep or "",
            stamp=stamp,
            limit=MAX_SESSIONS_CAP,
            channel=self.channel,
            handover_us=STAMP_HANDOVER_SECONDS * 1_000_000,
            declared=self._session_keys(user_id, [keep] if keep else []),
        )
        reply = _text(self._run(call))
        kept, ended, named = reply[0] == "1", int(reply[1]), reply[2:]
        if ended:
            # More than were named: announced as all of the user's (the kept one is then
            # read again, and found alive).
            self.on_ended(user_id, named if len(named) == ended else None)
        self._tidy(user_id, named, reason)
        return EndedOthers(kept, ended)

    def is_live(self, user_id: str, sid: str) -> bool:
        """Strict mode's check: one read-only script, no writes."""
        return bool(self._run(CheckArgs(index=self.index_key(user_id), sid=sid)))

    def check_stamp(self, user_id: str, sid: str, stamps: Sequence[str]) -> bool | None:
        """Whether the session is alive with the user's current security stamp
        (lua/check_stamp.lua): True; False when it had ended; None when it recorded
        another stamp, and ended here (``credentials_changed``)."""
        call = CheckStampArgs(
            session=self.session_key(user_id, sid),
            index=self.index_key(user_id),
            replay=self.replay_key(user_id, sid),
            uid=user_id,
            sid=sid,
            stamps=",".join(stamps),
            channel=self.channel,
        )
        answer = int(self._run(call))
        if answer < 0:
            self.on_ended(user_id, (sid,))
            return None
        return answer == 1

    def sessions(self, user_id: str, *, caller: str | None = None) -> list[SessionInfo]:
        """The user's live sessions, oldest first (to the microsecond), from the index; at
        most ``list_limit`` of them (the newest). ``caller`` as for ``revoke``."""
        index = self.index_key(user_id)
        try:  # newest end first; the script skips and prunes the dead ones
            sids = _text(self.client.zrevrange(index, 0, self.list_limit - 1))
        except STORE_ERRORS as exc:
            raise self.health.failed(exc) from None
        call = SessionsArgs(
            index=index,
            caller=caller or "",
            sids=",".join(sids),
            declared=self._session_keys(user_id, sids),
        )
        flat = _text(self._run(call))
        if flat[0] == "revoked":
            raise SessionRevoked()
        rows = sorted(
            (flat[i : i + 6] for i in range(1, len(flat), 6)), key=lambda row: int(row[1])
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

    def ping(self) -> float:
        """One round trip to the store, in milliseconds."""
        start = time.perf_counter()
        try:
            self.client.ping()
        except STORE_ERRORS as exc:
            raise self.health.failed(exc) from None
        return (time.perf_counter() - start) * 1000

    def count_live_sessions(self) -> int:
        """Scan every session hash: for operators' statistics, never for a request.

        Works through the keyspace a thousand keys at a time, so its memory stays flat
        whatever the number of sessions.
        """
        try:
            live = 0
            batch: list[Any] = []
            for key in self.client.scan_iter(match=f"{self._prefix}:*:s:*", count=1000):
                batch.append(key)
                if len(batch) == 1000:
                    live += self._count_live(batch)
                    batch = []
            return live + (self._count_live(batch) if batch else 0)
        except STORE_ERRORS as exc:
            raise self.health.failed(exc) from None

    def _count_live(self, keys: list[Any]) -> int:
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, "uid", "revoked")
            rows = [
                (_str(key).rpartition(":")[2], _str(uid))
                for key, (uid, revoked) in zip(keys, pipe.execute(), strict=True)
                if uid is not None and revoked is None
            ]
        now_us = time.time() * 1_000_000  # index scores are microseconds
        with self.client.pipeline(transaction=False) as pipe:
            for sid, uid in rows:
                pipe.zscore(self.index_key(uid), sid)
            return sum(1 for ends in pipe.execute() if ends is not None and ends > now_us)


def _str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _text(reply: Any) -> list[str]:
    # Clients built with or without decode_responses both work.
    return [_str(item) for item in reply]


def _ignore(user_id: str, sids: Sequence[str] | None) -> None:
    """No revocation guard listens (strict and expiry modes)."""
