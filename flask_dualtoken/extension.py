"""The extension object: wires settings, codec, store and blueprint into an app."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from flask import Flask, Response

from . import flows, instruments, remote_introspection
from .config import load_settings
from .connection import connect, store_address
from .context import request_client
from .cookies import TRANSPORT_HEADER, CookieJar
from .keys import StampKeys
from .redis_scripts import StoreHealth
from .revocation import SessionGuard, guard_for
from .state import EXTENSION_KEY, AppState, get_state, misconfigured
from .store import SessionInfo, SessionStore
from .throttle import LoginThrottle
from .tokens import VERIFY_ONLY_REFUSAL, TokenCodec, TokenPair, is_token_id

F = TypeVar("F", bound=Callable[..., Any])


def _default_identity(user: Any) -> str:
    return str(_required(user, "id"))


def _default_role(user: Any) -> str:
    return str(_required(user, "role"))


def _required(user: Any, name: str) -> Any:
    """A user attribute the default loaders need; None (a user not saved yet, a column
    left empty) is refused rather than becoming the string 'None'."""
    value = getattr(user, name)
    if value is None:
        raise ValueError(f"user.{name} is None")
    return value


def _no_extra_claims(user: Any) -> Mapping[str, Any]:
    return {}


def _issuing_state() -> AppState:
    """The current app's state, refusing at once, before any loader runs, when the app is
    verify-only and so cannot issue tokens or end sessions."""
    state = get_state()
    if state.settings.verify_only:
        raise RuntimeError(VERIFY_ONLY_REFUSAL)
    return state


#: How many authentication methods ``issue(amr=...)`` takes, and what one looks like.
MAX_AMR_VALUES = 8
_AMR_VALUE = re.compile(r"[A-Za-z0-9_.-]{1,32}")


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
        self._security_stamp_loader: Callable[[Any], Any] | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Validate all settings and connect; a bad setting raises here, not per request."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "flask-dualtoken is already registered on this app; call init_app once."
            )
        settings = load_settings(app.config)
        if settings.verify_only:
            # Another app's access tokens, verified with its public keys: no secret, no
            # store, no routes. An ended session is not known here (tokens live to expiry)
            # unless the issuing app is asked by introspection.
            app.extensions[EXTENSION_KEY] = AppState(
                app=app,
                extension=self,
                settings=settings,
                codec=TokenCodec(settings),
                session_store=None,
                revocation=SessionGuard(),
                login_throttle=None,
                cookies=CookieJar(settings),
                stamps=StampKeys(()),
                remote_introspection=remote_introspection.for_settings(settings),
            )
            return
        client = connect(settings)
        health = StoreHealth(store_address(settings))
        store = SessionStore(client, settings, health)
        app.extensions[EXTENSION_KEY] = AppState(
            app=app,
            extension=self,
            settings=settings,
            codec=TokenCodec(settings),
            session_store=store,
            revocation=guard_for(settings, store),
            login_throttle=LoginThrottle(client, settings, health),
            cookies=CookieJar(settings),
            stamps=StampKeys((settings.secret, *settings.previous_secrets)),
        )
        # Counted from the flows' signals and timed around the store's scripts: nothing
        # on the path of a protected request.
        if settings.metrics is not None:
            settings.metrics.watch(app)
            instruments.watch(client, settings.metrics.time_store)
        if settings.tracing is not None:
            instruments.watch(client, settings.tracing)
        from .cli import cli

        app.cli.add_command(cli)
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

    def security_stamp_loader(self, callback: F) -> F:
        """Register ``(user) -> str``: a value that changes whenever the user's credentials
        do (the password hash, or a counter the app bumps on every change).

        Each session keeps a digest of it (an HMAC under a key derived from the secret:
        the stamp itself never reaches Redis), and each reissue compares: a session whose
        stamp is no longer the user's ends there (401 ``session_revoked``, reason
        ``credentials_changed``), and push revocation refuses its access tokens. Without
        a loader, sessions keep no stamp.
        """
        self._security_stamp_loader = callback
        return callback

    def _callback(self, name: str) -> Callable[..., Any]:
        try:
            return self._callbacks[name]
        except KeyError:
            raise misconfigured(
                name, "callback is not registered", f"decorate a function with @dualtoken.{name}"
            ) from None

    # -- Python API -------------------------------------------------------------------------

    # All need an app context; inside a request the client address is recorded too.

    def issue(self, user: Any, *, amr: Iterable[str] = ()) -> TokenPair:
        """Start a session for a user the app authenticated itself (after SSO, say).

        ``amr``: how, in RFC 8176 values (``["pwd", "otp"]``, ``["hwk"]``...); every access
        token of the session carries them, with the time of this call as ``auth_time``.
        """
        methods = tuple(amr)
        if (
            isinstance(amr, str)
            or len(methods) > MAX_AMR_VALUES
            or not all(isinstance(m, str) and _AMR_VALUE.fullmatch(m) for m in methods)
        ):
            raise ValueError(
                f"amr must be at most {MAX_AMR_VALUES} short method names such as "
                f"['pwd', 'otp'] (letters, digits, '_', '.', '-'); got {amr!r:.80}"
            )
        return flows.issue(_issuing_state(), user, request_client(), amr=methods)

    def revoke_session(self, user_id: str, session_id: str) -> bool:
        """End one session; its refresh token stops working at once. True if it was live."""
        return flows.revoke(_issuing_state(), user_id, session_id, "revoked", request_client())

    def revoke_all_sessions(self, user_id: str) -> None:
        """End every session of a user: after a password change, or to disable an account.

        One script, bounded by the session cap; a login after this call works.
        """
        flows.revoke_all(_issuing_state(), user_id, request_client())

    def credentials_changed(self, user: Any, *, keep_session: str | None = None) -> bool:
        """After the user's credentials changed (a new password, say): end every session
        of theirs but ``keep_session`` in one atomic step, and give that one the user's
        new security stamp, so that it lives on. Returns whether ``keep_session`` was
        alive and was kept (False when it had ended, or was None).

        ``keep_session``: the session id of the request that made the change
        (``get_jwt()["sid"]``), or None to end them all (a reset by an administrator, a
        disabled account). The new stamp is read from ``user`` through
        ``security_stamp_loader`` (without one, the kept session simply lives on): call
        this once ``user`` holds the new credentials, before committing them, so that a
        reissue of the kept session under way at that moment cannot end it. The ended
        sessions are announced like a logout, so push revocation refuses their access
        tokens at once; signal ``credentials_changed``.
        """
        if keep_session is not None and (
            not isinstance(keep_session, str) or not is_token_id(keep_session)
        ):
            raise ValueError(
                f"keep_session must be a session id or None; got {keep_session!r:.80}"
            )
        return flows.credentials_changed(
            _issuing_state(), user, request_client(), keep_session=keep_session
        )

    def set_cookies(self, response: Response, pair: TokenPair) -> dict[str, Any]:
        """Put a pair into cookie-mode cookies on ``response`` (after SSO and ``issue``,
        say); returns the JSON body a cookie login answers with (the CSRF token)."""
        jar = _issuing_state().cookies
        jar.write(response, pair)
        return jar.body(pair)

    def clear_cookies(self, response: Response) -> None:
        """Delete every cookie-mode cookie, with the attributes that set it."""
        for name, value in get_state().cookies.clear_headers():
            response.headers.add(name, value)

    def browser_config(self) -> dict[str, str]:
        """What a page of this app needs to use cookie mode: the URL prefix, the CSRF
        cookie to read and the header to echo it in, and the header that asks for a login
        in cookies. Render it into the page (the example app uses ``data-`` attributes)."""
        state = get_state()
        return {
            "prefix": state.settings.url_prefix,
            "csrf_cookie": state.cookies.csrf_name,
            "csrf_header": state.cookies.csrf_header,
            "transport_header": TRANSPORT_HEADER,
        }

    def list_sessions(self, user_id: str) -> list[SessionInfo]:
        """The user's live sessions, oldest first."""
        return flows.list_sessions(_issuing_state(), user_id)
