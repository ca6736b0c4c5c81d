"""``@jwt_required`` and ``verify_request``: verify the access token once, check its role."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from flask import current_app, request

from .context import set_request_auth
from .cookies import SAFE_METHODS
from .errors import InsufficientRole, SessionRevoked, TokenInvalid, TokenMissing
from .state import get_state

F = TypeVar("F", bound=Callable[..., Any])


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header; None when there is no bearer header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None  # another scheme (Basic...) is not our credential
    token = token.strip()
    if not token or " " in token:
        raise TokenInvalid("The Authorization header must be 'Bearer <token>'.")
    return token


@overload
def jwt_required(fn: F) -> F: ...
@overload
def jwt_required(
    *, roles: Iterable[str] | str | None = None, optional: bool = False
) -> Callable[[F], F]: ...


def jwt_required(
    fn: F | None = None,
    *,
    roles: Iterable[str] | str | None = None,
    optional: bool = False,
) -> F | Callable[[F], F]:
    """Require a valid access token; usable bare or called.

    ``roles``: the token's role must be one of them, else 403. ``optional``: a request
    without a token passes with ``current_user`` standing for None, but a bad token is
    still 401. ``OPTIONS`` requests pass untouched (CORS preflight). Async views work.
    """
    allowed = _roles(roles)

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if request.method != "OPTIONS":
                _verify(allowed, optional)
            return current_app.ensure_sync(view)(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator(fn) if fn is not None else decorator


def verify_request(*, roles: Iterable[str] | str | None = None, optional: bool = False) -> None:
    """What ``@jwt_required`` does, for code that is not a view: a ``before_request``
    hook guarding a whole blueprint, an error handler, a helper. Raises the same errors
    (which render as the same JSON), then ``current_user`` and ``get_jwt()`` work. Unlike
    the decorator it does not let ``OPTIONS`` through: check ``request.method`` first
    where CORS preflights must pass."""
    _verify(_roles(roles), optional)


def _roles(roles: Iterable[str] | str | None) -> frozenset[str] | None:
    return None if roles is None else frozenset([roles] if isinstance(roles, str) else roles)


def _verify(allowed: frozenset[str] | None, optional: bool) -> None:
    state = get_state()
    settings = state.settings
    raw = bearer_token() if settings.access_from_header else None
    from_cookie = False
    if raw is None and settings.access_from_cookie:
        raw = state.cookies.access_token(
            request.headers.get("Cookie", ""), request.headers.get(state.cookies.csrf_header)
        )
        from_cookie = raw is not None
    if raw is None:
        if not optional:
            raise _missing(settings.access_from_header, settings.access_from_cookie)
        set_request_auth(None)
        return
    token = state.codec.decode_access(raw)
    # A cookie is sent by the browser whoever made the page: a state-changing request
    # must also prove it came from ours.
    if from_cookie and request.method not in SAFE_METHODS:
        state.cookies.check_csrf(token.sid, request.headers.get(state.cookies.csrf_header))
    if allowed is not None and token.role not in allowed:
        raise InsufficientRole()
    # Strict mode: one read-only script per request, so an access token dies with its
    # session (logout, logout-all, reuse) instead of at its expiry.
    if state.settings.verify_session and not state.store.is_live(token.sub, token.sid):
        raise SessionRevoked()
    set_request_auth(token)


def _missing(header: bool, cookie: bool) -> TokenMissing:
    if not cookie:
        return TokenMissing()
    where = "the access cookie"
    if header:
        where = f"'Authorization: Bearer <token>' or {where}"
    return TokenMissing(
        f"An access token is required: send {where} (it lapses with the token: reissue)."
    )
