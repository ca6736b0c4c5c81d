"""Per-app state: what ``init_app`` built, looked up by every request."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from .config import Settings
from .cookies import CookieJar
from .errors import Misconfigured
from .keys import StampKeys
from .limits import MAX_SUBJECT_CHARS
from .remote_introspection import RemoteIntrospection
from .revocation import SessionGuard
from .store import SessionStore
from .throttle import LoginThrottle
from .tokens import RESERVED_CLAIMS, VERIFY_ONLY_REFUSAL, TokenCodec

if TYPE_CHECKING:
    from .extension import DualToken

EXTENSION_KEY = "dualtoken"

logger = logging.getLogger("flask_dualtoken")


@dataclass(frozen=True)
class AppState:
    """Everything one app needs at request time, built once by ``init_app``."""

    app: Flask
    extension: DualToken
    settings: Settings
    codec: TokenCodec
    #: None in a verify-only app, which has no store (``store`` then says so).
    session_store: SessionStore | None
    #: What an access token of an ended session meets (DUALTOKEN_REVOCATION).
    revocation: SessionGuard
    login_throttle: LoginThrottle | None
    cookies: CookieJar
    #: Turn a user's security stamp into what the store keeps (keys.StampKeys).
    stamps: StampKeys
    #: A verify-only app's question to the issuing app about every access token
    #: (DUALTOKEN_INTROSPECTION_URL); None: not asked.
    remote_introspection: RemoteIntrospection | None = None

    @property
    def store(self) -> SessionStore:
        """The session store; a verify-only app has none, and refuses what needs one."""
        if self.session_store is None:
            raise RuntimeError(VERIFY_ONLY_REFUSAL)
        return self.session_store

    @property
    def throttle(self) -> LoginThrottle:
        if self.login_throttle is None:
            raise RuntimeError(VERIFY_ONLY_REFUSAL)
        return self.login_throttle

    def authenticate(self, username: str, password: str) -> Any:
        return self.extension._callback("authenticate")(username, password)

    def load_user(self, user_id: str) -> Any:
        return self.extension._callback("user_loader")(user_id)

    def identity_of(self, user: Any) -> str:
        user_id = self._call(
            "identity_loader", user, "by default it is str(user.id): give users an id"
        )
        if (
            not isinstance(user_id, str)
            or not 0 < len(user_id) <= MAX_SUBJECT_CHARS
            or not _utf8(user_id)
        ):
            raise misconfigured(
                "identity_loader",
                f"returned {user_id!r:.80}",
                f"return the user's id as a str of 1-{MAX_SUBJECT_CHARS} characters",
            )
        return user_id

    def role_of(self, user: Any) -> str:
        role = self._call("role_loader", user, "by default it is user.role: give users a role")
        if not isinstance(role, str):
            raise misconfigured("role_loader", f"returned {role!r:.80}", "return a str")
        return role

    def extra_claims_of(self, user: Any) -> Mapping[str, Any]:
        extra = self._call("claims_loader", user, "return a dict of extra claims")
        if not isinstance(extra, Mapping):
            raise misconfigured(
                "claims_loader", f"returned a {type(extra).__name__}", "return a dict"
            )
        reserved = RESERVED_CLAIMS.intersection(extra)
        if reserved:
            raise misconfigured(
                "claims_loader",
                f"returned reserved claim(s) {sorted(reserved)}",
                "rename them: the library sets these itself",
            )
        try:
            json.dumps(extra, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise misconfigured(
                "claims_loader", f"returned claims that are not JSON ({exc})", "return JSON"
            ) from None
        return extra

    def stamp_digests(self, user: Any, user_id: str) -> tuple[str, ...]:
        """The user's security stamp as sessions keep it: its digest under every secret,
        the current one first; () when the app registered no ``security_stamp_loader``."""
        if self.extension._security_stamp_loader is None:
            return ()
        stamp = self._call("security_stamp_loader", user, "return the user's stamp as a str")
        if not isinstance(stamp, str) or not _utf8(stamp):
            # Never the value itself in the log: it may well be a password hash.
            raise misconfigured(
                "security_stamp_loader",
                f"returned a {type(stamp).__name__} that is not text",
                "return a str (str(counter) for a counter, the hash for a password)",
            )
        return self.stamps.digests(user_id, stamp)

    def _call(self, name: str, user: Any, fix: str) -> Any:
        loader = getattr(self.extension, f"_{name}")
        try:
            return loader(user)
        except Exception as exc:  # an app's loader: any failure is a misconfiguration
            # A stamp loader's message may quote the stamp (a password hash): its type only.
            told = "" if name == "security_stamp_loader" else f": {exc}"
            raise misconfigured(
                name,
                f"raised {type(exc).__name__}{told}",
                f"{fix}, or register @dualtoken.{name}",
            ) from exc


def misconfigured(loader: str, problem: str, fix: str) -> Misconfigured:
    """One log line that names the loader, what went wrong and the fix; the JSON 500."""
    detail = f"flask-dualtoken: the {loader} {problem}; {fix}."
    logger.error("%s", detail)
    return Misconfigured(detail)


def _utf8(text: str) -> bool:
    """Whether a str can be written out (a lone surrogate such as '\\ud800' cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def get_state(app: Flask | None = None) -> AppState:
    """The per-app state of the current (or given) app."""
    target = app if app is not None else current_app
    try:
        state: AppState = target.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "flask-dualtoken is not initialised on this app; call DualToken.init_app(app)"
        ) from None
    return state
