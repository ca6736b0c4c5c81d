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

from .errors import InvalidClient, TokenInvalid, TooManyAttempts, TooManyRequests

if TYPE_CHECKING:
    from .state import AppState

INACTIVE: dict[str, Any] = {"active": False}
#: Compared against when the client id is unknown, so that an unknown id costs the same.
_NO_SECRET = b"\x00" * 32


def authenticate_client(state: AppState, client_id: str, secret: bytes, ip: str) -> None:
    """Raise ``InvalidClient`` (401) unless these are a configured client's credentials
    (``POST {prefix}/revoke``; introspection calls ``admit_client``).

    A correct secret is always admitted, whatever was tried from its address: only wrong
    ones are counted, on the address's own counter of failed client authentications
    (``DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS`` per ``DUALTOKEN_LOGIN_WINDOW``, apart
    from the login counters), and once it is full a wrong secret is 429
    ``too_many_attempts`` instead of 401. So failed password logins from an address a
    client shares (a NAT, an egress proxy) never lock the client out, nor does anyone
    who knows its id. The limit cannot stop a guesser either (a right guess would be
    admitted over it too): the secrets' 32 bytes are what make guessing hopeless; the
    429 tells a misconfigured or guessing client to back off. Checking the limit and
    counting are one atomic step (lua/reserve.lua).

    Every configured secret is compared, in constant time, whatever the id, so neither the
    answer nor its time tells a known id from an unknown one.
    """
    matched = False
    for known_id, known_secret in state.settings.introspection_clients.items():
        same_id = hmac.compare_digest(known_id.encode(), client_id.encode("utf-8", "replace"))
        same_secret = hmac.compare_digest(known_secret, secret)
        matched |= same_id & same_secret
    hmac.compare_digest(_NO_SECRET, secret)  # the same work when there is one client or none
    if matched:
        return
    wait = state.throttle.count_client_failure(ip)
    if wait:
        raise TooManyAttempts(wait, of="failed client authentications from this address")
    raise InvalidClient()


def admit_client(state: AppState, client_id: str, secret: bytes, ip: str) -> None:
    """``authenticate_client``, then count the request on the client's own limit
    (``DUALTOKEN_INTROSPECTION_MAX_REQUESTS`` per ``DUALTOKEN_INTROSPECTION_WINDOW``):
    429 ``too_many_requests`` beyond it. Counted per client id, but only once the client
    proved who it is: nobody else can use up a client's budget."""
    authenticate_client(state, client_id, secret, ip)
    wait = state.throttle.count_client_request(client_id)
    if wait:
        raise TooManyRequests(wait)


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
