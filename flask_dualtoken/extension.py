"""The extension object: wires settings, codec, store and blueprint into an app."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app

from . import sessions
from .config import Settings, load_settings
from .store import SessionStore, connect
from .tokens import TokenCodec, TokenPair

EXTENSION_KEY = "dualtoken"

F = TypeVar("F", bound=Callable[..., Any])


def _default_identity(user: Any) -> str:
    return str(user.id)


def _default_role(user: Any) -> str:
    return str(user.role)


def _no_extra_claims(user: Any) -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class AppState:
    """Everything one app needs at request time, built once by ``init_app``."""

    app: Flask
    extension: DualToken
    settings: Settings
    codec: TokenCodec
    store: SessionStore

    def authenticate(self, username: str, password: str) -> Any:
        return self.extension._callback("authenticate")(username, password)

    def load_user(self, user_id: str) -> Any:
        return self.extension._callback("user_loader")(user_id)

    def identity_of(self, user: Any) -> str:
        user_id = self.extension._identity_loader(user)
        if not isinstance(user_id, str) or not user_id:
            raise TypeError(f"identity_loader must return a non-empty str, got {user_id!r}")
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


class DualToken:
    """JWT login sessions with server-tracked, rotating refresh tokens.

    ``DualToken(app)`` or ``DualToken()`` then ``init_app(app)``; one object may serve
    several apps. Callbacks may be registered before or after ``init_app``.
    """

    def __init__(self, app: Flask | None = None, *, register_blueprint: bool = True) -> None:
        self._register_blueprint = register_blueprint
        self._callbacks: dict[str, Callable[..., Any]] = {}
        self._identity_loader: Callable[[Any], Any] = _default_identity
        self._role_loader: Callable[[Any], Any] = _default_role
        self._claims_loader: Callable[[Any], Any] = _no_extra_claims
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Validate all settings and connect; a bad setting raises here, not per request."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "flask-dualtoken is already registered on this app; call init_app once."
            )
        settings = load_settings(app.config)
        store = SessionStore(connect(settings), settings)
        app.extensions[EXTENSION_KEY] = AppState(app, self, settings, TokenCodec(settings), store)
        if self._register_blueprint:
            from .views import blueprint

            app.register_blueprint(blueprint, url_prefix=settings.url_prefix or None)

    # -- callbacks --------------------------------------------------------------------------

    def authenticate(self, callback: F) -> F:
        """Register ``(username, password) -> user | None``; used by ``POST /login``.

        Return None for an unknown user as for a wrong password, and spend the same time
        on both (check the password against a dummy hash when the user is unknown).
        """
        self._callbacks["authenticate"] = callback
        return callback

    def user_loader(self, callback: F) -> F:
        """Register ``(user_id) -> user | None``; None means gone or disabled."""
        self._callbacks["user_loader"] = callback
        return callback

    def identity_loader(self, callback: F) -> F:
        """Register ``(user) -> str``, the token's ``sub``; default ``str(user.id)``."""
        self._identity_loader = callback
        return callback

    def role_loader(self, callback: F) -> F:
        """Register ``(user) -> str``, the token's ``role``; default ``user.role``."""
        self._role_loader = callback
        return callback

    def claims_loader(self, callback: F) -> F:
        """Register ``(user) -> dict`` of extra access-token claims (not reserved names)."""
        self._claims_loader = callback
        return callback

    def _callback(self, name: str) -> Callable[..., Any]:
        try:
            return self._callbacks[name]
        except KeyError:
            raise RuntimeError(
                f"flask-dualtoken needs a {name} callback: decorate a function with "
                f"@dualtoken.{name}"
            ) from None

    # -- Python API -------------------------------------------------------------------------

    def issue(self, user: Any) -> TokenPair:
        """Start a session for a user the app authenticated itself (after SSO, say)."""
        return sessions.issue(get_state(), user)

    def revoke_session(self, user_id: str, session_id: str) -> bool:
        """End one session; its refresh token stops working at once. True if it was live."""
        return get_state().store.revoke(user_id, session_id, "revoked")


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
