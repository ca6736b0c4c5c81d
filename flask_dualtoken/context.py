"""Per-request auth state: the verified access token and the lazily loaded user."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flask import g, has_request_context, request
from werkzeug.local import LocalProxy

from .errors import UserUnavailable
from .limits import MAX_ADDRESS_CHARS, MAX_USER_AGENT_CHARS
from .state import get_state
from .store import ClientInfo
from .tokens import AccessToken

#: Characters a terminal, log viewer or browser may act on instead of showing: C0, DEL, C1
#: (ESC, BEL, CSI, NEL...), the line and paragraph separators, and Unicode's Bidi_Control
#: set (ALM, LRM, RLM, the embeddings, overrides and isolates of "Trojan Source").
UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
#: U+FFFD REPLACEMENT CHARACTER: what an unsafe character of a client string becomes.
PLACEHOLDER = "\ufffd"

#: What a request keeps in ``flask.g``: its verified token, and its parsed JSON body.
AUTH_KEY = "_dualtoken_auth"
BODY_KEY = "_dualtoken_body"
_UNLOADED: Any = object()


@dataclass
class RequestAuth:
    """What ``@jwt_required`` learnt about this request; ``token`` is None when optional."""

    token: AccessToken | None
    user: Any = field(default=_UNLOADED)


def set_request_auth(token: AccessToken | None) -> None:
    previous = _request_auth()
    if previous is not None and token is not None and previous.token == token:
        return  # verified again (a hook then the view, two decorators): one user load
    setattr(g, AUTH_KEY, RequestAuth(token))


def _request_auth() -> RequestAuth | None:
    auth: RequestAuth | None = g.get(AUTH_KEY)
    return auth


def _load_current_user() -> Any:
    auth = _request_auth()
    if auth is None or auth.token is None:
        return None
    if auth.user is _UNLOADED:  # at most one user_loader call per request
        auth.user = get_state().load_user(auth.token.sub)
    if auth.user is None:
        raise UserUnavailable()
    return auth.user


#: The user of the verified access token, loaded through ``user_loader`` on first use.
#: Stands for None on an optional route without a token (compare with ``== None`` or use
#: ``if current_user``); raises 401 ``user_unavailable`` when the user is gone.
current_user: Any = LocalProxy(_load_current_user)


def get_request_token() -> AccessToken | None:
    """The verified access token of this request, or None."""
    auth = _request_auth()
    return auth.token if auth is not None else None


def get_jwt() -> dict[str, Any]:
    """The verified access token's claims; empty when the request carries none."""
    auth = _request_auth()
    if auth is None or auth.token is None:
        return {}
    return dict(auth.token.claims)


def get_jwt_identity() -> str | None:
    """The access token's ``sub`` (the user id), or None."""
    auth = _request_auth()
    if auth is None or auth.token is None:
        return None
    return auth.token.sub


def client_text(value: str, limit: int) -> str:
    """A client-supplied string made safe to store, list, log and print.

    Cut to ``limit`` characters first, so a huge header costs no more than a short one;
    then every unsafe character becomes U+FFFD. Replaced rather than removed: the
    placeholder shows whoever reads it that the client sent something odd, where removal
    would silently join the text around it, and one for one keeps the bound exact.
    """
    return UNSAFE_CHARS.sub(PLACEHOLDER, value[:limit])


def request_client() -> ClientInfo:
    """The client of the current request, if any, both strings through ``client_text``.

    The address is ``request.remote_addr``: behind a proxy, wrap the app in werkzeug's
    ``ProxyFix`` so it is the client's. ``X-Forwarded-For`` alone is never trusted, but
    under ProxyFix it is what the address is made of, so it is as untrusted as the agent.
    """
    if not has_request_context():
        return ClientInfo()
    return ClientInfo(
        ip=client_text(request.remote_addr or "", MAX_ADDRESS_CHARS),
        user_agent=client_text(request.user_agent.string or "", MAX_USER_AGENT_CHARS),
    )
