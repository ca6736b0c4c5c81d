"""Revocation: what an access token of an ended session meets, per DUALTOKEN_REVOCATION.

``"push"`` keeps, per process, the answers to "is this session alive?" that Redis gave,
and forgets them as the scripts announce ended sessions. The rule that makes it correct,
and why no revocation can be missed, are in docs/design.md ("Push revocation"); the
names below follow it: a *period* is one gap-free stretch of listening, a *proof* the
moment up to which every announcement is known to have been applied.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import secrets
import selectors
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError, ResponseError

from .connection import Primary, cluster_view, is_cluster, primaries, refresh_topology
from .errors import SessionRevoked, StoreUnavailable
from .limits import MAX_REMEMBERED_SESSIONS
from .redis_scripts import STORE_ERRORS
from .scripts import BEAT, BeatArgs

if TYPE_CHECKING:
    from .config import Settings
    from .connection import RedisClient
    from .store import SessionStore

logger = logging.getLogger("flask_dualtoken")

#: A remembered answer: the period it was learnt in (DEAD for an ended session, which
#: stays ended whatever the period) and the latest access-token expiry it served.
DEAD = -1
_Entry = tuple[int, int]


def _boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


#: Seconds that also pass while the machine is suspended (Linux: CLOCK_BOOTTIME; elsewhere
#: monotonic()): a proof taken before a suspend must not pass for fresh after it.
_clock = _boottime if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic

#: Seconds without reads after a read found Redis unreachable.
OUTAGE_PAUSE = 1.0

#: Every process-wide guard, so that a forked child forgets what its parent knew.
_GUARDS: weakref.WeakSet[PushRevocation] = weakref.WeakSet()
_PERIODS = itertools.count(1)


#: Told of ended sessions: ``(user_id, sids)``, sids None for every session of the user;
#: ``(None, None)`` when any session may have ended unannounced (a new listening period).
EndedCallback = Callable[[str | None, Sequence[str] | None], None]


class SessionGuard:
    """``"expiry"``: an access token is good until it expires."""

    #: Whether ``watch`` callbacks hear of every ending, within the push bound.
    pushes = False

    def check(self, user_id: str, sid: str, exp: int) -> None:
        """Raise ``SessionRevoked`` when the session of a verified access token ended."""

    def watch(self, callback: EndedCallback) -> None:
        """Call ``callback`` as this process learns that sessions ended (push mode: every
        ending anywhere; other modes: none, so check sessions yourself). It runs on the
        listener's thread, or the thread that ended the session: keep it short, and do
        not raise (an exception is logged and dropped)."""

    def stop(self, timeout: float = 2.0) -> None:
        """Stop whatever runs in the background (waiting at most ``timeout`` seconds for
        it); the next check starts it again."""


class StrictRevocation(SessionGuard):
    """``"strict"``: one read-only script per request; 503 while Redis is down."""

    def __init__(self, store: SessionStore) -> None:
        self._store = store

    def check(self, user_id: str, sid: str, exp: int) -> None:
        if not self._store.is_live(user_id, sid):
            raise SessionRevoked()


class PushRevocation(SessionGuard):
    """``"push"``: answers from memory while the listener vouches for them, else Redis."""

    pushes = True

    def __init__(
        self, store: SessionStore, heartbeat: float, leeway: int, access_ttl: int
    ) -> None:
        self._store = store
        self._heartbeat = heartbeat
        self._leeway = leeway
        self._access_ttl = access_ttl
        self._lock = threading.Lock()
        self._known: dict[str, dict[str, _Entry]] = {}
        self._count = 0
        self._next_sweep = 1024
        self._full_sweep = 0.0
        #: Announcements applied so far: a read during which this changed is not remembered.
        self._heard = 0
        #: Per cluster slot (at most 16384; one entry off a cluster): until when reads
        #: pause after one found Redis unreachable. Per slot, so that one primary down
        #: does not pause the reads of sessions the others can still say are ended.
        self._unreachable_until: dict[int, float] = {}
        self._listener: _Listener | None = None
        self._watchers: list[EndedCallback] = []
        # Weakly: the listener holds the store, and must not keep a dropped app alive.
        forget = weakref.WeakMethod(self.forget)

        def on_ended(user_id: str, sids: Sequence[str] | None) -> None:
            method = forget()
            if method is not None:
                method(user_id, sids, here=True)

        store.on_ended = on_ended
        _GUARDS.add(self)

    # -- the request path -------------------------------------------------------------

    def check(self, user_id: str, sid: str, exp: int) -> None:
        listener = self._listener or self._start()
        sessions = self._known.get(user_id)
        entry = sessions.get(sid) if sessions is not None else None
        if entry is not None:
            if entry[0] == DEAD:
                raise SessionRevoked()
            if entry[0] == listener.trusted_period():
                if exp > entry[1]:  # a newer token of the session (after a reissue)
                    self._extend(user_id, sid, entry[0], exp)
                return
        # Not known, or known from a period that is over: ask Redis. The period and the
        # count of announcements are taken *before* the read (subscribe first, then read).
        if not listener.is_alive() and not listener.stopping:
            listener = self._restart(listener)
        period, heard = listener.trusted_period(), self._heard
        shard = self._store.shard_of(user_id)
        if _clock() < self._unreachable_until.get(shard, 0.0):
            return  # a read just failed: "expiry" for a moment (docs/design.md, Redis down)
        try:
            alive = self._store.is_live(user_id, sid)
        except StoreUnavailable:
            # The primary of this user's keys cannot be reached: no one can end their
            # sessions through it either, and a partition is bounded by the token's expiry,
            # as in "expiry" mode. Pause these reads briefly so that an unreachable host
            # does not cost every request a connect timeout.
            self._unreachable_until[shard] = _clock() + OUTAGE_PAUSE
            return
        with self._lock:
            if not alive:  # final: nothing revives a session
                self._put(user_id, sid, DEAD, exp)
                raise SessionRevoked()
            # Unless an announcement arrived during the read: it may concern this one.
            if period is not None and heard == self._heard:
                self._put(user_id, sid, period, exp)

    def _extend(self, user_id: str, sid: str, period: int, exp: int) -> None:
        """Keep a known answer for a later token's expiry; never (re)create one: it may
        have been forgotten since it was looked up."""
        with self._lock:
            sessions = self._known.get(user_id)
            entry = sessions.get(sid) if sessions is not None else None
            if sessions is not None and entry is not None and entry[0] == period:
                sessions[sid] = (period, max(exp, entry[1]))

    def _put(self, user_id: str, sid: str, period: int, exp: int) -> None:
        """Remember an answer (the lock held). DEAD wins over any period."""
        sessions = self._known.get(user_id)
        old = sessions.get(sid) if sessions is not None else None
        if old is None:
            if self._count >= self._next_sweep or (
                self._count >= MAX_REMEMBERED_SESSIONS and _clock() >= self._full_sweep
            ):
                self._sweep()
            if self._count >= MAX_REMEMBERED_SESSIONS:
                return  # full: Redis answers for the rest until a sweep makes room
            self._count += 1
        elif old[0] == DEAD:
            period = DEAD
        if sessions is None:
            sessions = self._known[user_id] = {}
        sessions[sid] = (period, max(exp, old[1] if old is not None else 0))

    def _sweep(self) -> None:
        """Drop what no access token can need any more (its latest expiry is past): by
        doubling, so amortised O(1) per answer, and at most once a second when full."""
        now = int(time.time()) - self._leeway
        for user_id in list(self._known):
            sessions = self._known[user_id]
            for sid in [s for s, (_, until) in sessions.items() if until < now]:
                del sessions[sid]
                self._count -= 1
            if not sessions:
                del self._known[user_id]
        self._next_sweep = min(MAX_REMEMBERED_SESSIONS, max(1024, 2 * self._count))
        self._full_sweep = _clock() + 1.0

    # -- what the listener tells -------------------------------------------------------

    def forget(self, user_id: str, sids: Sequence[str] | None, *, here: bool = False) -> None:
        """Sessions ended. Named ones are remembered as dead (a session id is never used
        again), so they stay refused even while Redis is unreachable: those this process
        knew, and, when it ended them itself (``here``: a logout, reuse caught at its
        reissue), those it never served, for as long as this process's access tokens live.
        ``None`` (every session of the user, logout-all) only forgets: a session started
        since may be among those remembered, and is alive."""
        with self._lock:
            self._heard += 1
            if sids is not None:
                until = int(time.time()) + self._access_ttl + self._leeway
                for sid in sids:
                    entry = self._known.get(user_id, {}).get(sid)
                    if entry is not None:
                        self._known[user_id][sid] = (DEAD, entry[1])
                    elif here:
                        self._put(user_id, sid, DEAD, until)
            elif (sessions := self._known.get(user_id)) is not None:
                for sid in [s for s, (period, _) in sessions.items() if period != DEAD]:
                    del sessions[sid]
                    self._count -= 1
                if not sessions:
                    del self._known[user_id]
        self._tell(user_id, sids)

    def watch(self, callback: EndedCallback) -> None:
        with self._lock:
            self._watchers.append(callback)

    def _tell(self, user_id: str | None, sids: Sequence[str] | None) -> None:
        for callback in self._watchers:
            try:
                callback(user_id, sids)
            except Exception:
                logger.exception("a revocation watcher failed")

    def forget_all(self) -> None:
        with self._lock:
            self._known.clear()
            self._count = 0

    # -- the listener's life -------------------------------------------------------------

    def _start(self) -> _Listener:
        with self._lock:
            if self._listener is None:
                listener = _Listener(self, self._heartbeat)
                listener.start()
                self._listener = listener
            return self._listener

    def _restart(self, dead: _Listener) -> _Listener:
        """A listener thread that died (it never should: it logs and listens again) is
        replaced, so that a process does not stay on Redis reads for good."""
        with self._lock:
            if self._listener is dead:
                self._listener = None
        return self._start()

    def stop(self, timeout: float = 2.0) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop(self._store.client)
            if listener is not threading.current_thread():
                listener.join(timeout)

    def after_fork(self) -> None:
        """In a forked child: the parent's listener did not come along, and what it
        vouched for is no proof here."""
        self._lock = threading.Lock()
        if self._listener is not None:
            self._listener.orphan()
        self._listener = None
        self.forget_all()

    @property
    def remembered(self) -> int:
        """How many sessions this process has an answer for (tests, benchmarks)."""
        return self._count


class _Listener(threading.Thread):
    """One subscription per primary, in one thread per process: applies announcements,
    proves it is on time.

    Each primary is listened to on a connection of its own to that very node, so what a
    script publishes there reaches this process without crossing anything else (a
    cluster's bus loses what it carries while a link is down). The heartbeat is an
    announcement of its own (lua/beat.lua), published every ``heartbeat`` seconds on each
    primary on a channel only that primary's connection hears: when it comes back, every
    announcement that primary published before it has been applied. The beat is echoed only
    while the key this listener wrote at the start of its period is still there, so a store
    that lost its data (FLUSHALL) is a gap too; on a cluster each beat also asks the node
    for the primaries it knows, so that a primary added or promoted is a gap as well.

    It reaches the app only through a weak reference: a dropped app stops its listener.
    """

    def __init__(self, guard: PushRevocation, heartbeat: float) -> None:
        super().__init__(name="flask-dualtoken revocation listener", daemon=True)
        self._guard = weakref.ref(guard)
        self._heartbeat = heartbeat
        self._deadline = 2 * heartbeat
        name = secrets.token_hex(8)
        self._channel = guard._store.channel
        self._beat_base = f"{self._channel}:beat:{name}"
        self._epoch_base = f"{guard._store.channel}:listener:{name}"
        self._stopped = threading.Event()
        self._listened = False
        self._refresh = False
        self._cluster = False
        self._since = 0.0
        #: Each primary's listening connection, and the one its beats go on.
        self._conns: list[Any] = []
        self._commands: list[Any] = []
        #: Per primary, the replies its command connection still owes ("beat", "nodes").
        self._owed: list[collections.deque[tuple[str, str, bool]]] = []
        self._beats: dict[str, tuple[float, set[int]]] = {}
        #: (the current period, None while deaf; monotonic() up to which every
        #: announcement is known applied). One tuple, written only by this thread, so a
        #: reader never pairs one period with another's proof.
        self.state: tuple[int | None, float] = (None, 0.0)

    @property
    def stopping(self) -> bool:
        return self._stopped.is_set()

    def trusted_period(self) -> int | None:
        """The period whose answers may be used now: None while deaf or late."""
        period, proof = self.state
        if period is None or _clock() - proof >= self._deadline:
            return None
        return period

    def stop(self, client: RedisClient) -> None:
        self._stopped.set()
        self.state = (None, 0.0)
        # Wake the thread where it waits: a beat it will not take for a proof. (Closing
        # the socket under it does not wake every kind of connection.)
        with contextlib.suppress(*STORE_ERRORS):
            client.publish(f"{self._beat_base}:0", "stop")
        for conn in self._conns + self._commands:
            _close(conn)

    def orphan(self) -> None:
        """Forked away from its thread: mark it deaf and close this process's copies of
        its sockets (redis-py shuts a socket down only in the process that opened it, so
        the parent's subscriptions are untouched)."""
        self._stopped.set()
        self.state = (None, 0.0)
        for conn in self._conns + self._commands:
            _close(conn)

    def run(self) -> None:
        backoff = 0.0
        while not self._stopped.is_set():
            self._listened = False
            guard = self._guard()
            if guard is None:
                break  # the app is gone
            store = guard._store
            del guard
            try:
                self._listen(store)
            except Exception as exc:
                self._deaf()
                if self._stopped.is_set():
                    break  # stop() closed the socket under a read
                self._log(store, exc)
            # At once after a subscription that lasted; else backing off, up to 2 s, so
            # that a server that keeps refusing or dropping us is not hammered.
            steady = self._listened and _clock() - self._since > 1.0
            backoff = 0.0 if steady else min(2.0, backoff * 2 or 0.05)
            del store
            self._stopped.wait(backoff)
        self._deaf()

    def _log(self, store: SessionStore, exc: Exception) -> None:
        if isinstance(exc, _Gap):
            logger.warning("revocation listener: %s; asking Redis until it listens again", exc)
        elif self._listened:  # a subscription dropped (killed, a failover...)
            logger.warning(
                "revocation listener lost its subscription (%s: %s); asking Redis until it "
                "listens again",
                type(exc).__name__,
                exc,
            )
        elif isinstance(exc, STORE_ERRORS):  # could not subscribe: an outage
            store.health.failed(exc)
        else:
            logger.exception("revocation listener failed; asking Redis meanwhile")

    def _deaf(self) -> None:
        self.state = (None, 0.0)
        conns = self._conns + self._commands
        self._conns, self._commands = [], []
        for conn in conns:
            _close(conn)

    def _listen(self, store: SessionStore) -> None:
        if self._refresh:
            self._refresh = False
            refresh_topology(store.client)
        self._cluster = is_cluster(store.client)
        found = primaries(store.client, self._epoch_base, self._deadline)
        self._conns = [p.listen for p in found]
        self._commands = [p.command for p in found]
        channels = [f"{self._beat_base}:{i}" for i in range(len(found))]
        for primary, channel in zip(found, channels, strict=True):
            primary.listen.connect()
            primary.listen.send_command("SUBSCRIBE", self._channel, channel)
        started = _clock()
        for primary in found:
            for _ in range(2):
                reply = self._answer(primary.listen, "SUBSCRIBE", push_request=True)
                if isinstance(reply, ResponseError):
                    raise reply
        epoch = secrets.token_hex(8)
        ttl_ms = int(self._deadline * 5000)
        # Each primary, in one round trip each: the beat script, the period's key, and on a
        # cluster the primaries as it sees them, after subscribing, so that one added from
        # here on shows at a later beat.
        for primary in found:
            primary.command.connect()
            primary.command.send_packed_command(
                primary.command.pack_commands(self._opening(primary, epoch, ttl_ms))
            )
        views = []
        for primary in found:
            opening = self._opening(primary, epoch, ttl_ms)
            replies = [self._answer(primary.command, "the listener's key") for _ in opening]
            for reply in replies:
                self._refused(reply, "the listener's key")
            views.append(replies[-1])
        ids = [cluster_view(view)[0] for view in views] if self._cluster else []
        for i, primary in enumerate(found):
            if self._cluster:
                self._check_view(i, primary, views[i], ids)
        if self._stopped.is_set():
            return
        # Listening from here on: a new period; answers of earlier ones are no proof.
        self._listened = True
        self._since = started
        self.state = (next(_PERIODS), started)
        store.health.answered()
        guard = self._guard()
        if guard is not None:  # what ended during the gap was not announced here
            guard._tell(None, None)
        del guard
        # beat -> (sent at, what is still to come: each primary's echo, i, on its listening
        # connection, and its replies, count + i, on its command connection)
        self._beats = {}
        next_beat = 0.0
        count = len(found)
        self._owed = [collections.deque() for _ in found]
        # One primary: its beat's replies are read at once (nothing else to read while it
        # is slow). More: every connection through one selector, as replies come.
        conns = self._conns if count == 1 else self._conns + self._commands
        while not self._stopped.is_set():
            now = _clock()
            if now - self.state[1] >= self._deadline:
                raise _Gap("fell behind (the heartbeat is late)")
            if now >= next_beat:
                beat = secrets.token_hex(4)
                self._beats[beat] = (now, set(range(2 * count)))
                self._beat(found, channels, epoch, beat, ttl_ms)
                next_beat = now + self._heartbeat
                if count == 1:
                    while self._owed[0]:
                        self._answer_beat(0, found[0], ids, wait=self._deadline)
            guard = self._guard()
            if guard is None:
                return
            wait = max(0.0, min(next_beat, self.state[1] + self._deadline) - _clock())
            for i in _readable(conns, wait):
                # Until its buffer is empty: _readable watches the sockets only.
                while conns[i].can_read(timeout=0):
                    if i < count:
                        reply = conns[i].read_response(push_request=True)
                        self._receive(guard, channels[i], i, reply)
                    else:
                        self._answer_beat(i - count, found[i - count], ids, wait=0)
            del guard

    def _opening(self, primary: Primary, epoch: str, ttl_ms: int) -> list[tuple[Any, ...]]:
        commands: list[tuple[Any, ...]] = []
        if primary.key is not None:
            commands.append(("SCRIPT", "LOAD", BEAT.source))
            commands.append(("SET", primary.key, epoch, "PX", ttl_ms))
        if self._cluster:
            commands.append(("CLUSTER", "NODES"))
        return commands

    def _answer(self, conn: Any, what: str, *, push_request: bool = False) -> Any:
        """A reply read within the deadline, or a gap; an error reply is returned."""
        if not conn.can_read(timeout=self._deadline):
            raise _Gap(f"no answer to {what}")
        try:
            return conn.read_response(push_request=push_request)
        except ResponseError as exc:
            return exc

    def _refused(self, reply: Any, what: str) -> None:
        if isinstance(reply, NoScriptError):  # SCRIPT FLUSH: the next period loads it
            raise _Gap(f"a primary lost the beat script ({reply})")
        if isinstance(reply, ResponseError):  # MOVED, ASK, CLUSTERDOWN: the map changed
            self._refresh = True
            raise _Gap(f"a primary refused {what} ({reply})")

    def _beat(
        self, found: list[Primary], channels: list[str], epoch: str, beat: str, ttl_ms: int
    ) -> None:
        """Send one beat to every primary, each on that primary alone, on a cluster with a
        ``CLUSTER NODES``; without waiting: the replies are read as they come
        (``_answered``), so that a slow primary holds up no other's announcements."""
        for i, (primary, channel) in enumerate(zip(found, channels, strict=True)):
            if primary.key is None:  # a cluster primary with no slot: no data to lose
                commands: list[tuple[Any, ...]] = [("PUBLISH", channel, beat)]
            else:
                call = BeatArgs(
                    epoch=primary.key, expected=epoch, channel=channel, beat=beat, ttl_ms=ttl_ms
                ).call()
                commands = [("EVALSHA", call.script.sha, 1, *call.keys, *call.args)]
            if self._cluster:
                commands.append(("CLUSTER", "NODES"))
            if len(self._owed[i]) + len(commands) > _MAX_OWED:
                raise _Gap("a primary is not answering its beats")
            primary.command.send_packed_command(primary.command.pack_commands(commands))
            kinds = ["beat", "nodes"][: len(commands)]
            self._owed[i].extend((kind, beat, kind == kinds[-1]) for kind in kinds)

    def _answer_beat(self, index: int, primary: Primary, ids: list[str], wait: float) -> None:
        """One reply to a beat: whether the primary still holds the period's key, and who
        it knows. (The echo comes on the listening connection.)"""
        if wait and not primary.command.can_read(timeout=wait):
            raise _Gap("no answer to a beat")
        try:
            reply = primary.command.read_response()
        except ResponseError as exc:
            reply = exc
        if not self._owed[index]:
            raise _Gap("a primary answered what was not asked")
        kind, beat, last = self._owed[index].popleft()
        self._refused(reply, "its beat")
        if kind == "beat":
            if primary.key is not None and not reply:
                raise _Gap("the store lost its data (FLUSHALL, or a restart)")
        else:
            self._check_view(index, primary, reply, ids)
        if last:
            self._heard(beat, len(self._conns) + index)

    def _check_view(self, index: int, primary: Primary, view: Any, ids: list[str]) -> None:
        """On a cluster, a primary's ``CLUSTER NODES``: still the node of the period's
        start, still serving slots or none as then, and knowing no primary the period does
        not listen to: else a gap, and the next period asks the cluster for its nodes
        again."""
        me, serves, masters = cluster_view(view)
        if not me or me != ids[index] or serves != (primary.key is not None):
            self._refresh = True  # another node there, or it gained or lost its slots
            raise _Gap("the cluster's primaries changed")
        if not masters <= set(ids):
            self._refresh = True
            raise _Gap("the cluster's primaries changed")

    def _receive(self, guard: PushRevocation, beat_channel: str, index: int, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) != 3 or _text(reply[0]) != "message":
            return
        channel, data = _text(reply[1]), _text(reply[2])
        if channel == beat_channel:
            self._heard(data, index)
            return
        if channel != self._channel:
            return
        # Every primary's connection hears every announcement (PUBLISH reaches the whole
        # cluster): applying one twice changes nothing.
        sids, _, user_id = data.partition(" ")
        guard.forget(user_id, None if sids == "*" else sids.split(","))

    def _heard(self, beat: str, part: int) -> None:
        """One part of a beat is back. All of them, from every primary, each on its own
        path: a proof up to when it was sent."""
        entry = self._beats.get(beat)
        if entry is None:
            return
        entry[1].discard(part)
        if entry[1]:
            return
        sent = self._beats.pop(beat)[0]
        period, proof = self.state
        self.state = (period, max(proof, sent))
        for old in [b for b, (t, _) in self._beats.items() if t < sent]:
            del self._beats[old]  # lost beats are no proof, and no memory either


def _readable(conns: list[Any], timeout: float) -> list[int]:
    """The connections with a reply to read, waiting up to ``timeout`` for one. Each is
    read until its buffer is empty (see _listen), so only the sockets need watching, and
    TLS's own buffer."""
    if len(conns) == 1:
        return [0] if conns[0].can_read(timeout=timeout) else []
    socks = [conn._sock for conn in conns]
    pending = [i for i, sock in enumerate(socks) if getattr(sock, "pending", _none)()]
    if pending:
        return pending
    # A selector, not select(): a busy process has descriptors past FD_SETSIZE (1024).
    with selectors.DefaultSelector() as selector:
        for i, sock in enumerate(socks):
            selector.register(sock, selectors.EVENT_READ, i)
        return [key.data for key, _ in selector.select(timeout)]


#: Beats' replies a primary may owe before it counts as not answering.
_MAX_OWED = 8


def _none() -> int:
    return 0


class _Gap(Exception):
    """The listener cannot vouch for what it heard: the proof is late, the subscription
    was not confirmed, or the store lost its data."""


def _close(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):  # closing a broken socket, maybe twice
            conn.disconnect()


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _after_fork() -> None:
    for guard in list(_GUARDS):
        guard.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def guard_for(settings: Settings, store: SessionStore) -> SessionGuard:
    """The guard of DUALTOKEN_REVOCATION."""
    if settings.revocation == "push":
        return PushRevocation(
            store, settings.revocation_heartbeat, settings.leeway, settings.access_expires
        )
    if settings.revocation == "strict":
        return StrictRevocation(store)
    return SessionGuard()
