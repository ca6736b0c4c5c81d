"""Scripts: each Lua script of ``lua/`` with its KEYS and ARGV by name.

A script reads its arguments by position, so a swapped argument would fail silently.
Here every script has one frozen dataclass: the fields named in ``KEYS`` are its keys, the
others its arguments, both in declaration order; the Lua file binds the very same names in
the very same order on its first lines (``local session, index = unpack(KEYS)``), and
``tests/test_scripts.py`` compares the two. Callers fill in fields by name.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from .redis_scripts import LuaScript, ScriptCall

CREATE = LuaScript("create")
ROTATE = LuaScript("rotate")
REAUTH = LuaScript("reauth")
REVOKE = LuaScript("revoke")
REVOKE_ALL = LuaScript("revoke_all")
CHECK = LuaScript("check")
CHECK_STAMP = LuaScript("check_stamp")
SESSIONS = LuaScript("sessions")
END_SESSIONS = LuaScript("end_sessions")
END_OTHERS = LuaScript("end_others")
RESERVE = LuaScript("reserve")
RELEASE = LuaScript("release")
BEAT = LuaScript("beat")


@dataclass(frozen=True, kw_only=True)
class ScriptArgs:
    """Named KEYS and ARGV of one script."""

    SCRIPT: ClassVar[LuaScript]
    KEYS: ClassVar[tuple[str, ...]]

    def call(self) -> ScriptCall:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        keys = tuple(values.pop(name) for name in self.KEYS)
        # Sessions' keys the script touches, after its own (lua/prelude.lua).
        keys += tuple(values.pop("declared", ()))
        return ScriptCall(self.SCRIPT, keys, tuple(values.values()))

    @classmethod
    def argv_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name not in (*cls.KEYS, "declared"))


@dataclass(frozen=True, kw_only=True)
class CreateArgs(ScriptArgs):
    """Start a session at login, within the user's session cap (lua/create.lua)."""

    SCRIPT = CREATE
    KEYS = ("session", "index")
    session: str
    index: str
    uid: str
    sid: str
    rt_jti: str
    access_ttl: int
    idle_ttl: int
    max_age: int
    margin: int
    ip: str
    user_agent: str
    max_sessions: int  # 0: no cap
    evict_max: int  # the most sessions one login may end
    channel: str  # where ended sessions are announced (push revocation)
    amr: str  # how the user authenticated: RFC 8176 values, comma-separated
    stamp: str  # the digest of the user's security stamp; '' when the app keeps none


@dataclass(frozen=True, kw_only=True)
class RotateArgs(ScriptArgs):
    """The reissue rule's decision (lua/rotate.lua)."""

    SCRIPT = ROTATE
    KEYS = ("session", "index", "replay")
    session: str
    index: str
    replay: str
    uid: str
    sid: str
    presented_jti: str
    new_jti: str
    at_template: str
    rt_template: str
    access_ttl: int
    idle_ttl: int
    grace_us: int
    margin: int
    ip: str
    user_agent: str
    presented_gen: int
    channel: str
    #: The user's security stamp digests, comma-separated: under the current secret first,
    #: then under the previous ones; '' when the app keeps none.
    stamps: str


@dataclass(frozen=True, kw_only=True)
class ReauthArgs(ScriptArgs):
    """Rotate a session whose user proved who they are again (lua/reauth.lua)."""

    SCRIPT = REAUTH
    KEYS = ("session", "index", "replay")
    session: str
    index: str
    replay: str
    uid: str
    sid: str
    new_jti: str
    at_template: str
    rt_template: str
    access_ttl: int
    idle_ttl: int
    grace_us: int
    margin: int
    ip: str
    user_agent: str
    amr: str  # how the user proved it: RFC 8176 values, comma-separated
    stamp: str  # the digest of the user's security stamp; '' when the app keeps none


@dataclass(frozen=True, kw_only=True)
class RevokeArgs(ScriptArgs):
    """End one session (lua/revoke.lua)."""

    SCRIPT = REVOKE
    KEYS = ("session", "index", "replay")
    session: str
    index: str
    replay: str
    uid: str
    sid: str
    reason: str
    caller: str  # '' when not acting for a session
    channel: str


@dataclass(frozen=True, kw_only=True)
class RevokeAllArgs(ScriptArgs):
    """End every session of a user (lua/revoke_all.lua)."""

    SCRIPT = REVOKE_ALL
    KEYS = ("index",)
    index: str
    caller: str
    limit: int
    uid: str
    channel: str


@dataclass(frozen=True, kw_only=True)
class CheckArgs(ScriptArgs):
    """Strict mode's liveness check (lua/check.lua)."""

    SCRIPT = CHECK
    KEYS = ("index",)
    index: str
    sid: str


@dataclass(frozen=True, kw_only=True)
class CheckStampArgs(ScriptArgs):
    """A sensitive action's check of the session's security stamp (lua/check_stamp.lua)."""

    SCRIPT = CHECK_STAMP
    KEYS = ("session", "index", "replay")
    session: str
    index: str
    replay: str
    uid: str
    sid: str
    stamps: str
    channel: str


@dataclass(frozen=True, kw_only=True)
class SessionsArgs(ScriptArgs):
    """List a user's live sessions (lua/sessions.lua)."""

    SCRIPT = SESSIONS
    KEYS = ("index",)
    index: str
    caller: str
    sids: str  # comma-separated, in the order of ``declared``
    declared: tuple[str, ...]  # a session hash and its replay key per sid


@dataclass(frozen=True, kw_only=True)
class EndSessionsArgs(ScriptArgs):
    """Tidy sessions that have left the index (lua/end_sessions.lua)."""

    SCRIPT = END_SESSIONS
    KEYS = ("index",)
    index: str
    reason: str
    sids: str  # comma-separated, in the order of ``declared``
    declared: tuple[str, ...]  # a session hash and its replay key per sid


@dataclass(frozen=True, kw_only=True)
class EndOthersArgs(ScriptArgs):
    """End every session of a user but one, after a credential change (lua/end_others.lua)."""

    SCRIPT = END_OTHERS
    KEYS = ("index",)
    index: str
    uid: str
    keep: str  # the session id to keep, '' for none; its keys in ``declared``
    stamp: str  # the kept session's new security stamp digest; '' when the app keeps none
    limit: int  # the most ended sessions named in the reply and the announcement
    channel: str
    handover_us: int  # how long the kept session still accepts its former stamp
    declared: tuple[str, ...]  # the kept session's hash and replay key, when there is one


@dataclass(frozen=True, kw_only=True)
class ReserveArgs(ScriptArgs):
    """Reserve one login attempt on a counter (lua/reserve.lua)."""

    SCRIPT = RESERVE
    KEYS = ("counter",)
    counter: str
    limit: int
    window: int


@dataclass(frozen=True, kw_only=True)
class ReleaseArgs(ScriptArgs):
    """Give one reserved attempt back (lua/release.lua)."""

    SCRIPT = RELEASE
    KEYS = ("counter",)
    counter: str


@dataclass(frozen=True, kw_only=True)
class BeatArgs(ScriptArgs):
    """Push revocation's heartbeat, echoed while the store kept its data (lua/beat.lua)."""

    SCRIPT = BEAT
    KEYS = ("epoch",)
    epoch: str
    expected: str
    channel: str
    beat: str
    ttl_ms: int


#: Every script with its arguments: what the binding test walks.
ALL: tuple[type[ScriptArgs], ...] = (
    CreateArgs,
    RotateArgs,
    ReauthArgs,
    RevokeArgs,
    RevokeAllArgs,
    CheckArgs,
    CheckStampArgs,
    SessionsArgs,
    EndSessionsArgs,
    EndOthersArgs,
    ReserveArgs,
    ReleaseArgs,
    BeatArgs,
)
