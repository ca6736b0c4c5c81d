"""The flows of the design: issue (login), reissue, logout. HTTP-free, so apps reuse them.

Reissue follows flows.md: verify the (possibly expired) access token to learn the user,
verify the refresh token, require that both were issued together, then let the store
rotate, replay or refuse in one atomic step.
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING, Any

from . import signals
from .errors import (
    RefreshTokenExpired,
    RefreshTokenInvalid,
    RefreshTokenReused,
    SessionRevoked,
    TokenMismatch,
    UserUnavailable,
)
from .tokens import AccessToken, RefreshToken, TokenPair, new_id

if TYPE_CHECKING:
    from .extension import AppState

logger = logging.getLogger("flask_dualtoken")


def issue(state: AppState, user: Any) -> TokenPair:
    """Start a new session for a user the app has authenticated; store first, then sign."""
    user_id = state.identity_of(user)
    sid, access_jti, refresh_jti = new_id(), new_id(), new_id()
    access_template = state.codec.access_template(
        sub=user_id,
        role=state.role_of(user),
        sid=sid,
        jti=access_jti,
        rti=refresh_jti,
        extra=state.extra_claims_of(user),
    )
    refresh_template = state.codec.refresh_template(sub=user_id, sid=sid, jti=refresh_jti)
    grant = state.store.create(user_id, sid, refresh_jti, access_template, refresh_template)
    return state.codec.sign(grant, user_id=user_id, session_id=sid)


def verify_pair(
    state: AppState, access_token: str, refresh_token: str, *, verify_exp: bool = True
) -> tuple[AccessToken, RefreshToken]:
    """Both signatures under their own keys, and the AT issued together with this RT.

    The access token's expiry is never checked here: reissue exists for expired ones.
    """
    access = state.codec.decode_access(access_token, verify_exp=False)
    refresh = state.codec.decode_refresh(refresh_token, verify_exp=verify_exp)
    bound = (
        hmac.compare_digest(access.rti, refresh.jti)
        & hmac.compare_digest(access.sid, refresh.sid)
        & hmac.compare_digest(access.sub.encode(), refresh.sub.encode())
    )
    if not bound:
        raise TokenMismatch()
    return access, refresh


def reissue(state: AppState, access_token: str, refresh_token: str) -> TokenPair:
    """Rotate a session: new pair for the current RT, the same pair again within grace."""
    access, refresh = verify_pair(state, access_token, refresh_token)
    user_id, sid = access.sub, access.sid
    user = state.load_user(user_id)
    if user is None:
        state.store.revoke(user_id, sid, "user_unavailable")
        raise UserUnavailable()

    new_access_jti, new_refresh_jti = new_id(), new_id()
    result = state.store.rotate(
        user_id,
        sid,
        refresh.jti,
        new_refresh_jti,
        state.codec.access_template(
            sub=user_id,
            role=state.role_of(user),
            sid=sid,
            jti=new_access_jti,
            rti=new_refresh_jti,
            extra=state.extra_claims_of(user),
        ),
        state.codec.refresh_template(sub=user_id, sid=sid, jti=new_refresh_jti),
    )
    if result.grant is not None:
        pair = state.codec.sign(result.grant, user_id=user_id, session_id=sid)
        signals.token_reissued.send(
            state.app, user_id=user_id, session_id=sid, replayed=result.outcome == "replayed"
        )
        return pair
    if result.outcome == "reused":
        logger.warning(
            "refresh token reuse detected: user_id=%r session_id=%r; session revoked",
            user_id,
            sid,
        )
        signals.refresh_token_reused.send(state.app, user_id=user_id, session_id=sid)
        raise RefreshTokenReused()
    if result.outcome == "revoked":
        raise SessionRevoked()
    if result.outcome == "expired":
        raise RefreshTokenExpired()
    raise RefreshTokenInvalid()


def logout(state: AppState, access_token: str, refresh_token: str) -> None:
    """End the session of a bound pair; expiry of either token does not matter."""
    access, _ = verify_pair(state, access_token, refresh_token, verify_exp=False)
    if state.store.revoke(access.sub, access.sid, "logout"):
        signals.session_logged_out.send(state.app, user_id=access.sub, session_id=access.sid)
