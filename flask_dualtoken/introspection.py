"""Introspection (RFC 7662): which service asks, and what it is told about a token. No HTTP.

Only configured clients may ask (``DUALTOKEN_INTROSPECTION_CLIENTS``), so the answer is no
oracle for anyone else. A token is active only while it is a valid access token of ours
and its session is alive in the store (the read strict revocation makes); everything else
(expired, forged, a refresh token, an ended session, garbage) gets exactly
``{"active": false}``, with nothing that tells the cases apart.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from .errors import InvalidClient, TokenInvalid, TooManyAttempts

if TYPE_CHECKING:
    from .state import AppState

INACTIVE: dict[str, Any] = {"active": False}
#: Compared against when the client id is unknown, so that an unknown id costs the same.
_NO_SECRET = b"\x00" * 32


def authenticate_client(state: AppState, client_id: str, secret: str, ip: str) -> None:
    """Raise ``InvalidClient`` (401) unless these are a configured client's credentials.

    Failures count on the address's login counter (``DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_
    ADDRESS`` per ``DUALTOKEN_LOGIN_WINDOW``, then 429), reserved before the comparison
    as a login's are; a success gives its attempt back. Not per client id: whoever knows
    an id could then lock that service out, and a secret of 32 bytes is not guessed.
    Every configured secret is compared, in constant time, whatever the id, so neither the
    answer nor its time tells a known id from an unknown one.
    """
    wait, reservation = state.throttle.reserve(None, ip)
    if wait:
        raise TooManyAttempts(wait)
    given = secret.encode("utf-8", "surrogateescape")
    matched = False
    for known_id, known_secret in state.settings.introspection_clients.items():
        same_id = hmac.compare_digest(known_id.encode(), client_id.encode("utf-8", "replace"))
        same_secret = hmac.compare_digest(known_secret, given)
        matched |= same_id & same_secret
    hmac.compare_digest(_NO_SECRET, given)  # the same work when there is one client or none
    if not matched:
        raise InvalidClient()
    state.throttle.release(reservation)


def introspect(state: AppState, token: str) -> dict[str, Any]:
    """RFC 7662's answer about a token: its claims while it is a live access token."""
    try:
        access = state.codec.decode_access(token)
    except TokenInvalid:  # expired too: every refusal is the same inactive answer
        return dict(INACTIVE)
    if not state.store.is_live(access.sub, access.sid):
        return dict(INACTIVE)
    answer: dict[str, Any] = {
        "active": True,
        "sub": access.sub,
        "sid": access.sid,
        "role": access.role,
        "exp": access.exp,
        "iat": access.claims["iat"],
        "token_type": "access_token",
    }
    if access.auth_time is not None:
        answer["auth_time"] = access.auth_time
    return answer
