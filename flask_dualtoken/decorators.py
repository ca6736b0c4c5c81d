"""``@jwt_required`` and ``verify_request``: verify the access token once, check its role
and how recent its login is."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from flask import current_app, request

from . import flows, transport
from .context import request_client, set_request_auth
from .errors import InsufficientRole, InsufficientUserAuthentication
from .state import get_state
from .tokens import AccessToken

F = TypeVar("F", bound=Callable[..., Any])


@overload
def jwt_required(fn: F) -> F: ...
@overload
def jwt_required(
    *,
    roles: Iterable[str] | str | None = None,
    optional: bool = False,
    fresh: bool | int = False,
) -> Callable[[F], F]: ...


def jwt_required(
    fn: F | None = None,
    *,
    roles: Iterable[str] | str | None = None,
    optional: bool = False,
    fresh: bool | int = False,
) -> F | Callable[[F], F]:
    """Require a valid access token; usable bare or called.

    ``roles``: the token's role must be one of them, else 403. ``optional``: a request
    without a token passes with ``current_user`` standing for None, but a bad token is
    still 401. ``fresh``: the user must have proved who they are (the token's
    ``auth_time``) within that many seconds (``True``: ``DUALTOKEN_FRESH_MAX_AGE``), else
    401 ``insufficient_user_authentication`` with RFC 9470's challenge. ``OPTIONS``
    requests pass untouched (CORS preflight). Async views work.
    """
    allowed = _roles(roles)
    _check_fresh(fresh)

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if request.method != "OPTIONS":
                _verify(allowed, optional, fresh)
            return current_app.ensure_sync(view)(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator(fn) if fn is not None else decorator


def verify_request(
    *,
    roles: Iterable[str] | str | None = None,
    optional: bool = False,
    fresh: bool | int = False,
) -> None:
    """What ``@jwt_required`` does, for code that is not a view: a ``before_request``
    hook guarding a whole blueprint, an error handler, a helper. Raises the same errors
    (which render as the same JSON), then ``current_user`` and ``get_jwt()`` work. Unlike
    the decorator it does not let ``OPTIONS`` through: check ``request.method`` first
    where CORS preflights must pass."""
    _check_fresh(fresh)
    _verify(_roles(roles), optional, fresh)


def _check_fresh(fresh: bool | int) -> None:
    if not isinstance(fresh, (bool, int)) or (type(fresh) is int and fresh <= 0):
        raise ValueError(f"fresh must be True, False or a number of seconds > 0; got {fresh!r}")


def _roles(roles: Iterable[str] | str | None) -> frozenset[str] | None:
    return None if roles is None else frozenset([roles] if isinstance(roles, str) else roles)


def _verify(allowed: frozenset[str] | None, optional: bool, fresh: bool | int) -> None:
    state = get_state()
    presented = transport.presented_access(required=not optional)
    if presented is None:
        set_request_auth(None)
        return
    token = state.codec.decode_access(presented.token)
    if presented.proof is not None:  # a cookie on a state-changing request
        presented.proof(token.sid)
    if allowed is not None and token.role not in allowed:
        raise InsufficientRole()
    # An access token dies with its session (logout, logout-all, reuse...), not only at its
    # expiry: DUALTOKEN_REVOCATION says how soon, and at what cost (revocation.py).
    state.revocation.check(token.sub, token.sid, token.exp)
    if state.remote_introspection is not None:  # verify-only: the issuing app is asked
        state.remote_introspection.check(presented.token, token.sub, token.sid, token.exp)
    if fresh is not False:
        require_recent_login(token, state.settings.fresh_max_age if fresh is True else fresh)
    set_request_auth(token)


def require_recent_login(token: AccessToken, max_age: int) -> None:
    """401 ``insufficient_user_authentication``, with RFC 9470's challenge, unless the
    token's user proved who they are (``auth_time``) at most ``max_age`` seconds ago: the
    one check behind ``fresh=`` and ``DUALTOKEN_SESSION_ADMIN_FRESH``. With a security
    stamp loader, the session must also hold the user's current stamp (one round trip;
    ``flows.check_credentials``)."""
    if token.auth_time is None or time.time() - token.auth_time > max_age:
        raise InsufficientUserAuthentication(max_age)
    flows.check_credentials(get_state(), token, request_client())
