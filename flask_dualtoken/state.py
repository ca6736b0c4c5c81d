"""Per-app state: what ``init_app`` built, looked up by every request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from .config import Settings
from .cookies import CookieJar
from .store import SessionStore
from .throttle import LoginThrottle
from .tokens import MAX_SUBJECT_CHARS, TokenCodec

if TYPE_CHECKING:
    from .extension import DualToken

EXTENSION_KEY = "dualtoken"


@dataclass(frozen=True)
class AppState:
    """Everything one app needs at request time, built once by ``init_app``."""

    app: Flask
    extension: DualToken
    settings: Settings
    codec: TokenCodec
    store: SessionStore
    throttle: LoginThrottle
    cookies: CookieJar

    def authenticate(self, username: str, password: str) -> Any:
        return self.extension._callback("authenticate")(username, password)

    def load_user(self, user_id: str) -> Any:
        return self.extension._callback("user_loader")(user_id)

    def identity_of(self, user: Any) -> str:
        user_id = self.extension._identity_loader(user)
        if not isinstance(user_id, str) or not 0 < len(user_id) <= MAX_SUBJECT_CHARS:
            raise TypeError(
                f"identity_loader must return a str of 1-{MAX_SUBJECT_CHARS} characters, "
                f"got {user_id!r:.80}"
            )
        return user_id

    def role_of(self, user: Any) -> str:
        role = self.extension._role_loader(user)
        if not isinstance(role, str):
            raise TypeError(f"role_loader must return a str, got {role!r}")
        return role

    def extra_claims_of(self, user: Any) -> Mapping[str, Any]:
        extra = self.extension._claims_loader(user)
        if not isinstance(extra, Mapping):
            raise TypeError(f"claims_loader must return a mapping, got {type(extra).__name__}")
        return extra


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
