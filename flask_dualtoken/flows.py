"""The flows of the design: issue (login), reissue, re-authentication, logout, revocation.
HTTP-free.

Reissue follows the design (docs/design.md): verify the (possibly expired) access token
to learn the user, verify the refresh token, require that both were issued together,
then let the store rotate, replay or refuse in one atomic step. Each flow sends its
signal and writes its audit line here, with user id, session id and client address;
never a token. The signals are what the metrics count; each public flow runs in a span
when the app traces (``tracing.traced``).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import signals
from .errors import (
    CsrfFailed,
    InvalidCredentials,
    RefreshTokenExpired,
    RefreshTokenInvalid,
    RefreshTokenReused,
    SessionRevoked,
    TokenInvalid,
    TokenMismatch,
    TooManyAttempts,
    UserUnavailable,
)
from .limits import MAX_CLAIMS_BYTES
from .redis_scripts import ScriptCall
from .state import misconfigured
from .store import ClientInfo, SessionInfo
from .tokens import AccessToken, RefreshToken, TokenPair, new_id
from .tracing import traced

if TYPE_CHECKING:
    from blinker import NamedSignal

    from .state import AppState
    from .throttle import Reservation

logger = logging.getLogger("flask_dualtoken")

#: Checks a request's proof of origin for a session id; raises to refuse.
Proof = Callable[[str], None]


def _audit(
    state: AppState,
    signal: NamedSignal,
    what: str,
    *,
    level: int = logging.INFO,
    **facts: Any,
) -> None:
    """One security event: a log line and a signal carrying the same facts (user id,
    session id, address, and what else applies), never a token."""
    logged = " ".join(f"{name}={value!r}" for name, value in facts.items())
    logger.log(level, "%s: %s", what, logged)
    signal.send(state.app, **facts)


@traced
def login(state: AppState, username: str, password: str, client: ClientInfo) -> TokenPair:
    """Check credentials under the attempt limits, then start a session.

    The attempt is reserved before ``authenticate`` runs (one round trip), and a success
    gives it back in the round trip that stores the session: two in all.
    """
    user, reservation = _authenticate(state, username, password, client, "login")
    return issue(state, user, client, amr=PASSWORD, also=reservation.on_success)


def _authenticate(
    state: AppState,
    username: str,
    password: str,
    client: ClientInfo,
    what: str,
    *,
    user_id: str | None = None,
) -> tuple[Any, Reservation]:
    """The user of these credentials, checked under the attempt limits that login and
    re-authentication share; the reservation's ``on_success`` gives the attempt back and
    goes with the caller's store change. A failure keeps it: it counts.

    ``user_id``: whose credentials they must be (re-authentication); another user's count
    as a failure, and change nothing.
    """
    wait, reservation = state.throttle.reserve(username, client.ip)
    if wait:
        _audit(
            state,
            signals.login_throttled,
            f"{what} throttled",
            level=logging.WARNING,
            username=username,
            ip=client.ip,
            retry_after=wait,
        )
        raise TooManyAttempts(wait)
    user = state.authenticate(username, password)
    if user is None or (
        user_id is not None
        and not hmac.compare_digest(state.identity_of(user).encode(), user_id.encode())
    ):
        _audit(
            state,
            signals.login_failed,
            f"{what} failed",
            level=logging.WARNING,
            username=username,
            ip=client.ip,
        )
        raise InvalidCredentials()
    return user, reservation


#: RFC 8176's value for a password login.
PASSWORD = ("pwd",)


@traced
def issue(
    state: AppState,
    user: Any,
    client: ClientInfo,
    *,
    amr: Sequence[str] = (),
    also: Sequence[ScriptCall] = (),
) -> TokenPair:
    """Start a new session for an authenticated user; store first, then sign.

    Beyond ``DUALTOKEN_MAX_SESSIONS`` the store ends the user's oldest sessions in the same
    step. ``amr``: how the user authenticated (RFC 8176), carried by every access token of
    the session with the time of it (``auth_time``). ``also``: store calls to make in the
    same round trip (the throttle's release).
    """
    user_id = state.identity_of(user)
    sid, refresh_jti = new_id(), new_id()
    access_template, refresh_template = _templates(state, user, user_id, sid, refresh_jti)
    created = state.store.create(
        user_id,
        sid,
        refresh_jti,
        access_template,
        refresh_template,
        client,
        amr=amr,
        stamp=_current_stamp(state, user, user_id),
        also=also,
    )
    _audit(
        state,
        signals.user_logged_in,
        "session started",
        user_id=user_id,
        session_id=sid,
        ip=client.ip,
    )
    for ended in created.evicted:
        _revoked(state, user_id, ended, "session_limit", client)
    return state.codec.sign(created.grant, user_id=user_id, session_id=sid)


def _templates(
    state: AppState, user: Any, user_id: str, sid: str, refresh_jti: str
) -> tuple[str, str]:
    """The unsigned claims of a new pair: the same for a login and every rotation, with
    the user's current role and extra claims."""
    access = state.codec.access_template(
        sub=user_id,
        role=state.role_of(user),
        sid=sid,
        jti=new_id(),
        rti=refresh_jti,
        extra=state.extra_claims_of(user),
    )
    if len(access) > MAX_CLAIMS_BYTES:
        # Checked before anything is stored: a token over the limit would be refused on
        # every request it is sent with.
        raise misconfigured(
            "claims_loader and role_loader",
            f"made access-token claims of {len(access)} bytes",
            f"return claims under {MAX_CLAIMS_BYTES} bytes in all (ids, not documents)",
        )
    return access, state.codec.refresh_template(sub=user_id, sid=sid, jti=refresh_jti)


def _current_stamp(state: AppState, user: Any, user_id: str) -> str:
    """The digest of the user's security stamp under the current secret; '' without a
    ``security_stamp_loader``."""
    digests = state.stamp_digests(user, user_id)
    return digests[0] if digests else ""


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


@traced
def reissue(
    state: AppState,
    access_token: str,
    refresh_token: str,
    client: ClientInfo,
    *,
    proof: Proof | None = None,
) -> TokenPair:
    """Rotate a session: new pair for the current RT, the same pair again within grace.

    ``proof``: for tokens a browser sent by itself (cookies), called with the session id
    once both tokens verify and before anything changes; it raises to refuse (CSRF).
    """
    access, refresh = verify_pair(state, access_token, refresh_token)
    if proof is not None:
        proof(access.sid)
    user_id, sid = access.sub, access.sid
    user = state.load_user(user_id)
    if user is None:
        revoke(state, user_id, sid, "user_unavailable", client)
        raise UserUnavailable()

    new_refresh_jti = new_id()
    templates = _templates(state, user, user_id, sid, new_refresh_jti)
    result = state.store.rotate(
        user_id,
        sid,
        refresh.jti,
        refresh.gen,
        new_refresh_jti,
        *templates,
        client,
        stamps=state.stamp_digests(user, user_id),
    )
    if result.grant is not None:
        _audit(
            state,
            signals.token_reissued,
            "tokens reissued",
            user_id=user_id,
            session_id=sid,
            ip=client.ip,
            replayed=result.outcome == "replayed",
        )
        return state.codec.sign(result.grant, user_id=user_id, session_id=sid)
    if result.outcome == "reused":
        _audit(
            state,
            signals.refresh_token_reused,
            "refresh token reuse detected, session revoked",
            level=logging.WARNING,
            user_id=user_id,
            session_id=sid,
            ip=client.ip,
        )
        raise RefreshTokenReused()
    if result.outcome == "credentials_changed":
        _revoked(state, user_id, sid, "credentials_changed", client)
        raise SessionRevoked()
    logger.info(
        "reissue refused (%s): user_id=%r session_id=%r ip=%r",
        result.outcome,
        user_id,
        sid,
        client.ip,
    )
    if result.outcome == "revoked":
        raise SessionRevoked()
    if result.outcome == "expired":
        raise RefreshTokenExpired()
    raise RefreshTokenInvalid()


def check_credentials(state: AppState, access: AccessToken, client: ClientInfo) -> None:
    """Before a sensitive action, with a security stamp loader registered: the session
    must still hold the user's current stamp. A recent login proves the person; a session
    begun with a password the user no longer has must not use it to change the password
    again (and so keep itself alive). A session that recorded another stamp ends here, as
    at a reissue; without a loader this is nothing, and so in a verify-only app, which
    has no store to ask."""
    if state.extension._security_stamp_loader is None or state.settings.verify_only:
        return
    user_id, sid = access.sub, access.sid
    user = state.load_user(user_id)
    if user is None:
        revoke(state, user_id, sid, "user_unavailable", client)
        raise UserUnavailable()
    alive = state.store.check_stamp(user_id, sid, state.stamp_digests(user, user_id))
    if alive is None:
        _revoked(state, user_id, sid, "credentials_changed", client)
    if not alive:
        raise SessionRevoked()


@traced
def reauthenticate(
    state: AppState, access: AccessToken, username: str, password: str, client: ClientInfo
) -> TokenPair:
    """The user of a live session proves who they are again: a new pair for the same
    session, whose access token says so (``auth_time`` now, ``amr`` ["pwd"]).

    ``access``: the request's verified, unexpired access token. The credentials must be
    that token's user's, and are checked under the login attempt limits, in the same two
    round trips as a login. The session rotates as at a reissue (its refresh token's
    predecessor stays good for the grace window, so a reissue racing with this one works).
    """
    user_id, sid = access.sub, access.sid
    user, reservation = _authenticate(
        state, username, password, client, "re-authentication", user_id=user_id
    )
    new_refresh_jti = new_id()
    templates = _templates(state, user, user_id, sid, new_refresh_jti)
    result = state.store.reauthenticate(
        user_id,
        sid,
        new_refresh_jti,
        *templates,
        client,
        amr=PASSWORD,
        stamp=_current_stamp(state, user, user_id),
        also=reservation.on_success,
    )
    if result.grant is None:
        logger.info(
            "re-authentication refused (%s): user_id=%r session_id=%r ip=%r",
            result.outcome,
            user_id,
            sid,
            client.ip,
        )
        if result.outcome == "expired":
            raise RefreshTokenExpired()
        raise SessionRevoked()  # ended, or gone: only a login helps
    _audit(
        state,
        signals.user_reauthenticated,
        "user re-authenticated",
        user_id=user_id,
        session_id=sid,
        ip=client.ip,
    )
    return state.codec.sign(result.grant, user_id=user_id, session_id=sid)


@traced
def logout(
    state: AppState,
    access_token: str,
    refresh_token: str,
    client: ClientInfo,
    *,
    proof: Proof | None = None,
) -> None:
    """End the session of a bound pair; expiry of either token does not matter."""
    access, _ = verify_pair(state, access_token, refresh_token, verify_exp=False)
    if proof is not None:
        proof(access.sid)
    if state.store.revoke(access.sub, access.sid, "logout"):
        _audit(
            state,
            signals.session_logged_out,
            "logged out",
            user_id=access.sub,
            session_id=access.sid,
            ip=client.ip,
        )


@traced
def revoke_token(
    state: AppState, token: str, client: ClientInfo, *, proof: Proof | None = None
) -> None:
    """RFC 7009: end the session of a valid, unexpired access or refresh token; anything
    else changes nothing, and the caller answers the same either way. ``proof``: checked
    with the token's session id before anything changes (cookie mode's CSRF header); a
    proof of another session ends nothing either, and is answered the same (a 403 here
    would tell a valid token from an invalid one)."""
    try:
        found: AccessToken | RefreshToken = state.codec.decode_access(token)
    except TokenInvalid:
        try:
            found = state.codec.decode_refresh(token)
        except TokenInvalid:
            return
    if proof is not None:
        try:
            proof(found.sid)
        except CsrfFailed:
            return
    revoke(state, found.sub, found.sid, "revoked", client)


@traced
def revoke(
    state: AppState,
    user_id: str,
    session_id: str,
    reason: str,
    client: ClientInfo,
    *,
    caller: str | None = None,
) -> bool:
    """End one session by id; True if it was alive. ``caller``: the session id of the
    access token asking, which must still be alive (else 401 ``session_revoked``)."""
    ended = state.store.revoke(user_id, session_id, reason, caller=caller)
    if ended:
        _revoked(state, user_id, session_id, reason, client)
    return ended


def _revoked(
    state: AppState, user_id: str, session_id: str, reason: str, client: ClientInfo
) -> None:
    _audit(
        state,
        signals.session_revoked,
        f"session revoked ({reason})",
        user_id=user_id,
        session_id=session_id,
        ip=client.ip,
        reason=reason,
    )


@traced
def revoke_all(
    state: AppState, user_id: str, client: ClientInfo, *, caller: str | None = None
) -> None:
    """End every session of a user (password change, account disabled, logout-all).
    ``caller`` as for ``revoke``."""
    state.store.revoke_all(user_id, caller=caller)
    _audit(
        state, signals.all_sessions_revoked, "all sessions revoked", user_id=user_id, ip=client.ip
    )


@traced
def list_sessions(
    state: AppState, user_id: str, *, caller: str | None = None
) -> list[SessionInfo]:
    """The user's live sessions, oldest first. ``caller`` as for ``revoke``."""
    return state.store.sessions(user_id, caller=caller)


@traced
def credentials_changed(
    state: AppState, user: Any, client: ClientInfo, *, keep_session: str | None
) -> bool:
    """End every session of a user whose credentials changed, but ``keep_session``, which
    takes the user's new security stamp; one atomic step. True if it was alive and kept."""
    user_id = state.identity_of(user)
    result = state.store.end_others(
        user_id, keep_session, _current_stamp(state, user, user_id), "credentials_changed"
    )
    _audit(
        state,
        signals.credentials_changed,
        "credentials changed, other sessions ended",
        level=logging.WARNING if keep_session and not result.kept else logging.INFO,
        user_id=user_id,
        session_id=keep_session if result.kept else None,
        ip=client.ip,
        ended=result.ended,
    )
    return result.kept
