"""Lua scripts by SHA, one or several per round trip.

A script is sent by its SHA; only when Redis answers NOSCRIPT (a restarted or flushed
server, a new cluster node) is its source loaded and the call made again, which is safe
because a NOSCRIPT call ran nothing. Several calls, on several keys and even several
cluster slots, go out together in one non-transactional pipeline: login reserves its
throttle counters in one round trip, and stores the session and releases the reservation
in one more.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import redis
from redis.exceptions import (
    ClusterDownError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)

from .errors import StoreUnavailable

if TYPE_CHECKING:
    from .connection import RedisClient

logger = logging.getLogger("flask_dualtoken")

#: What a client may raise for an unreachable or refusing store. A cluster client raises
#: RedisClusterException, which is not a RedisError, when no node answers.
STORE_ERRORS = (redis.RedisError, RedisClusterException)

#: Error replies that mean the store cannot serve for now, not that a command is wrong: a
#: cluster without a quorum or mid-failover, a replica that was a primary a moment ago.
OUTAGE_REPLIES = (ClusterDownError, TryAgainError, ReadOnlyError)

#: Wrapped around every round trip of scripts, ``instrument(client, operation)`` (the
#: script's name; for a pipeline, its scripts' names joined by '+'), when an app's metrics
#: or traces are on (``instruments.watch``); None, as without them, costs this one check.
instrument: Callable[[RedisClient, str], AbstractContextManager[object]] | None = None


class StoreHealth:
    """What the log says about one app's store: an outage once, with the store's address,
    and again when the store answers; an error reply every time.

    An error reply (a Lua error, a refused command, a wrong type) is a bug, not an outage:
    it is logged with its text, which names the script and line but holds no token (Redis
    never sees one). An outage (refused connection, timeout, no cluster node) is logged by
    its kind, once until the store answers again, so a down store does not flood the log.
    """

    def __init__(self, address: str) -> None:
        self.address = address  # no credentials: see connection.redact_url
        self._down = False
        self._lock = threading.Lock()

    def failed(self, exc: Exception) -> StoreUnavailable:
        """Log ``exc`` as it deserves; the 503 to raise."""
        name = type(exc).__name__
        if isinstance(exc, ResponseError) and not isinstance(exc, OUTAGE_REPLIES):
            logger.error(
                "session store error at %s (not an outage): %s: %s", self.address, name, exc
            )
            return StoreUnavailable()
        with self._lock:
            first, self._down = not self._down, True
        if first:
            logger.error(
                "session store unavailable at %s: %s: %s (logged once, until it answers)",
                self.address,
                name,
                exc,
            )
        return StoreUnavailable()

    def answered(self) -> None:
        """The store answered: end an outage, if there was one."""
        if not self._down:
            return
        with self._lock:
            was, self._down = self._down, False
        if was:
            logger.warning("session store at %s answers again", self.address)


def _source(name: str) -> str:
    lua = resources.files("flask_dualtoken") / "lua"
    return (lua / "prelude.lua").read_text("utf-8") + (lua / f"{name}.lua").read_text("utf-8")


class LuaScript:
    """One script of ``flask_dualtoken/lua``, with the shared prelude in front."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = _source(name)
        self.sha = hashlib.sha1(self.source.encode("utf-8"), usedforsecurity=False).hexdigest()

    def __call__(self, keys: Sequence[str], args: Sequence[str | int]) -> ScriptCall:
        return ScriptCall(self, tuple(keys), tuple(args))

    def __repr__(self) -> str:
        return f"LuaScript({self.name!r})"


@dataclass(frozen=True)
class ScriptCall:
    """A script with its KEYS and ARGV, ready to run."""

    script: LuaScript
    keys: tuple[str, ...]
    args: tuple[str | int, ...]


def run(client: RedisClient, call: ScriptCall) -> Any:
    """Run one call: one round trip (one more only right after Redis lost its scripts)."""
    if instrument is None:
        return _run(client, call)
    with instrument(client, call.script.name):
        return _run(client, call)


def _run(client: RedisClient, call: ScriptCall) -> Any:
    try:
        return client.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
    except NoScriptError:
        # EVAL with the source, on the node of the call's keys, which caches the script
        # there. Not SCRIPT LOAD: a cluster client sends that to every primary, so one
        # primary down would stop every script on a node that lost its cache.
        return client.eval(call.script.source, len(call.keys), *call.keys, *call.args)


def run_many(client: RedisClient, calls: Sequence[ScriptCall]) -> list[Any]:
    """Run calls together in one round trip; replies in order. The first error raises,
    after every call has been sent (calls are independent: none waits for another)."""
    if len(calls) == 1:
        return [run(client, calls[0])]
    if instrument is None:
        return _run_many(client, calls)
    names = dict.fromkeys(call.script.name for call in calls)  # in order, each once
    with instrument(client, "+".join(names)):
        return _run_many(client, calls)


def _run_many(client: RedisClient, calls: Sequence[ScriptCall]) -> list[Any]:
    replies = _pipeline(client, calls)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        again = _pipeline(client, [calls[i] for i in missing], command="EVAL")
        for i, reply in zip(missing, again, strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _pipeline(
    client: RedisClient, calls: Sequence[ScriptCall], command: str = "EVALSHA"
) -> list[Any]:
    """``EVALSHA`` each call, or ``EVAL`` it with its source (Redis lost its scripts)."""
    with client.pipeline(transaction=False) as pipe:
        for call in calls:
            # execute_command rather than evalsha(), which redis-py refuses in a cluster
            # pipeline in case one script's keys span slots; ours never do (one hash tag).
            body = call.script.sha if command == "EVALSHA" else call.script.source
            pipe.execute_command(command, body, len(call.keys), *call.keys, *call.args)
        replies: list[Any] = pipe.execute(raise_on_error=False)
    return replies
