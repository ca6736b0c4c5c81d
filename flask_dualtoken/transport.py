"""Transport: where a request's tokens come from and a response's go: header, body or cookies.

``DUALTOKEN_TOKEN_LOCATION`` says where tokens travel, and this module is where requests
and answers are held to it: the blueprint and ``@jwt_required`` read and write tokens only
through it (``DualToken.set_cookies`` and ``clear_cookies``, for an app's own responses,
use the cookies directly). (``Settings`` derives what the setting allows: ``headers_enabled``,
``cookies_enabled``, ``transport_per_request``, ``access_from_header``,
``access_from_cookie``. ``cookies.CookieJar`` is the cookies' mechanics: their names and
attributes, reading the Cookie header, the CSRF proof.)

A re-authentication (a protected request answered with a new pair) is answered where the
client keeps its refresh token (``renewal_in_cookies``).

- ``"headers"``: a login is answered with both tokens in its JSON body. A protected
  request sends ``Authorization: Bearer <AT>``. Reissue and logout send the AT the same
  way (or as ``access_token`` in the JSON body) and the RT as ``refresh_token`` in it.
- ``"cookies"``: a login is answered in cookies, its body carrying the CSRF token (and the
  AT when ``DUALTOKEN_ACCESS_COOKIE`` is False: the page then sends it as a bearer
  header). A protected request sends the access cookie, and on a state-changing method
  the CSRF header too. Reissue and logout send the refresh cookie and the CSRF header.
  Logout, logout-all from a browser, and a refresh cookie that fails as a credential
  (401) are answered with the cookies' deletion.
- ``"both"``: a login is answered in cookies when it sends ``X-Token-Transport: cookies``.
  A protected request's bearer header is read first, then its access cookie. A reissue or
  logout that sends a bearer header or a ``refresh_token`` in its body is a header client,
  any other a browser with its cookies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import unquote_plus, unquote_to_bytes

from flask import Response, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from .context import BODY_KEY
from .cookies import TRANSPORT_HEADER
from .errors import DualTokenError, InvalidRequest, RequestTooLarge, TokenInvalid, TokenMissing
from .flows import Proof
from .limits import MAX_BODY_BYTES
from .state import get_state
from .tokens import TokenPair

#: Methods that change nothing: an access cookie needs no CSRF proof on them.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@dataclass(frozen=True)
class PresentedAccess:
    """The access token a protected request presents, still to be verified."""

    token: str
    #: For a cookie on a state-changing method: the CSRF check of the token's session.
    proof: Proof | None = None


@dataclass(frozen=True)
class PresentedPair:
    """The pair a reissue or logout presents, still to be verified."""

    access: str
    refresh: str
    #: For the refresh cookie: the CSRF check of the pair's session.
    proof: Proof | None
    #: Whether the pair came in the refresh cookie (so the answer goes in cookies too).
    in_cookies: bool


# -- the JSON body ------------------------------------------------------------------------


def json_body() -> dict[str, Any]:
    """The request's JSON object, parsed once per request."""
    cached: dict[str, Any] | None = g.get(BODY_KEY)
    if cached is not None:
        return cached
    if not request.is_json:
        raise InvalidRequest("The request body must be JSON (Content-Type: application/json).")
    # One byte over the limit: a chunked body (no Content-Length) is cut there rather than
    # refused, so reading that byte is how an oversized one shows.
    request.max_content_length = MAX_BODY_BYTES + 1
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise RequestTooLarge() from None
    if len(raw) > MAX_BODY_BYTES:
        raise RequestTooLarge()
    try:
        # Parsed here rather than by get_json: deep nesting raises RecursionError, which
        # must be a 400 like any other bad JSON, not a 500.
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    setattr(g, BODY_KEY, body)
    return body


def text_field(body: dict[str, Any], name: str, limit: int) -> str | None:
    """A string field of the JSON body, None when absent; 400 when not a sound string."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string.")
    if len(value) > limit:
        raise InvalidRequest(f"'{name}' is too long.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate such as "\ud800" is valid JSON
        raise InvalidRequest(f"'{name}' is not valid Unicode.") from None
    return value


# -- reading a request's tokens ---------------------------------------------------------------


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


def basic_credentials() -> tuple[str, bytes]:
    """An introspection client's id and secret from ``Authorization: Basic``, each
    form-decoded (RFC 6749 2.3.1); ('', b'') when there is no such header.

    The secret is decoded to bytes, compared as bytes with the configured ones: a secret
    configured as bytes that are not UTF-8 (``os.urandom(32)``) is sent percent-encoded
    byte by byte (as ``RemoteIntrospection`` does), and must come back the same bytes, not
    through a text decoding that would replace them."""
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return "", b""
    secret = unquote_to_bytes((auth.password or "").replace("+", " "))
    return unquote_plus(auth.username or ""), secret


def form_token() -> str:
    """The ``token`` field of a form-encoded body (RFC 7662 and RFC 7009), exactly one."""
    if request.mimetype != "application/x-www-form-urlencoded":
        raise InvalidRequest(
            "The request body must be form-encoded "
            "(Content-Type: application/x-www-form-urlencoded) with a 'token' field."
        )
    request.max_content_length = MAX_BODY_BYTES + 1
    try:
        values = request.form.getlist("token")
    except RequestEntityTooLarge:
        raise RequestTooLarge() from None
    if len(values) != 1 or not values[0]:
        raise InvalidRequest("Send exactly one 'token' field.")
    return values[0]


def revocation_proof() -> Proof | None:
    """Cookie mode's CSRF check for ``POST {prefix}/revoke`` (always in "cookies"; in
    "both" when the request came with our cookies).

    Checked in two steps, so that the answer tells nothing about the token. First,
    whatever the token: the CSRF header must equal the request's CSRF cookie (403
    ``csrf_failed`` otherwise), which a cross-site page can neither read nor send as a
    header. Then ``flows.revoke_token`` checks it against the token's own session: a
    proof of another session ends nothing, and gets the same 200 as an invalid token."""
    state = get_state()
    settings, jar = state.settings, state.cookies
    if not settings.cookies_enabled or (settings.transport_per_request and not from_browser()):
        return None
    proof = request.headers.get(jar.csrf_header)
    jar.check_csrf_cookie(_cookie_header(), proof)  # raises 403 csrf_failed
    return partial(jar.check_csrf, proof=proof)


def presented_access(*, required: bool) -> PresentedAccess | None:
    """The access token of a protected request: its bearer header, else its access cookie,
    each where the settings read it. None when there is neither: 401 ``token_missing``,
    saying where to send one, if ``required``."""
    state = get_state()
    settings, jar = state.settings, state.cookies
    raw = bearer_token() if settings.access_from_header else None
    if raw is not None:
        return PresentedAccess(raw)
    if settings.access_from_cookie:
        proof = request.headers.get(jar.csrf_header)
        raw = jar.access_token(_cookie_header(), proof)
        if raw is not None:
            # A cookie is sent by the browser whoever made the page: a state-changing
            # request must also prove it came from ours.
            if request.method in SAFE_METHODS:
                return PresentedAccess(raw)
            return PresentedAccess(raw, partial(jar.check_csrf, proof=proof))
    if required:
        raise _access_missing(settings.access_from_header, settings.access_from_cookie)
    return None


@contextmanager
def presented_pair() -> Iterator[PresentedPair]:
    """The pair a reissue or logout presents, for the block that runs the flow on it: from
    the bearer header and the JSON body, or from the refresh cookie with its CSRF proof.
    When cookies fail as credentials, in the reading or in the block, the error deletes
    them."""
    if not _pair_in_cookies():
        access, refresh = _body_pair()
        yield PresentedPair(access, refresh, None, in_cookies=False)
        return
    try:
        yield _cookie_pair()
    except DualTokenError as exc:
        raise _clearing_cookies(exc) from None


def login_in_cookies() -> bool:
    """Whether this login is answered in cookies: always in "cookies", never in "headers",
    and in "both" when the request asks with ``X-Token-Transport: cookies``."""
    settings = get_state().settings
    if not settings.transport_per_request:
        return not settings.headers_enabled
    return request.headers.get(TRANSPORT_HEADER, "").strip().lower() == "cookies"


def renewal_in_cookies() -> bool:
    """Whether a protected request answered with a new pair (re-authentication) gets it
    in cookies, where its refresh token is kept: always in "cookies", never in "headers";
    in "both" when its access token came in the access cookie, or, for a page that holds
    the access token itself (``DUALTOKEN_ACCESS_COOKIE`` False), when a browser sent it."""
    settings = get_state().settings
    if not settings.transport_per_request:
        return not settings.headers_enabled
    if bearer_token() is None:  # the access token was the cookie's
        return True
    return not settings.access_cookie and from_browser()


def from_browser() -> bool:
    """Whether a browser sent this request with our cookies (its CSRF cookie came)."""
    state = get_state()
    jar = state.cookies
    return state.settings.cookies_enabled and jar.has_cookie(_cookie_header(), jar.csrf_name)


# -- writing a response's tokens --------------------------------------------------------------


def pair_response(pair: TokenPair, in_cookies: bool) -> Response:
    """The answer carrying a new pair: in the JSON body, or in cookies with the CSRF token
    in the body; never to be cached."""
    jar = get_state().cookies
    response = jsonify(jar.body(pair) if in_cookies else pair.to_dict())
    if in_cookies:
        jar.write(response, pair)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def write_deletion(response: Response) -> None:
    """Delete every cookie of ours on ``response``, with the attributes that set it."""
    for name, value in get_state().cookies.clear_headers():
        response.headers.add(name, value)


# -- the rules behind them --------------------------------------------------------------------


def _cookie_header() -> str:
    return request.headers.get("Cookie", "")


def _access_missing(header: bool, cookie: bool) -> TokenMissing:
    if not cookie:
        return TokenMissing()
    where = "the access cookie"
    if header:
        where = f"'Authorization: Bearer <token>' or {where}"
    return TokenMissing(
        f"An access token is required: send {where} (it lapses with the token: reissue)."
    )


def _pair_in_cookies() -> bool:
    """Whether this reissue or logout request authenticates with the refresh cookie.

    With "both", a request that sends tokens itself (a bearer header, or a refresh token
    in its JSON body) is a header client; anything else is a browser relying on cookies.
    """
    settings = get_state().settings
    if not settings.transport_per_request:
        return not settings.headers_enabled
    if request.headers.get("Authorization") is not None:
        return False
    if not (request.is_json and request.content_length):
        return True
    # A browser's fetch may send a JSON body of its own ("{}"): only a refresh token in
    # it makes this a header client.
    return "refresh_token" not in json_body()


def _body_pair() -> tuple[str, str]:
    """The AT (Authorization header, or body ``access_token``) and body ``refresh_token``."""
    # No body at all is a missing refresh token (401), not a malformed request (400).
    body = json_body() if request.content_length or request.is_json else {}
    header_token = bearer_token()
    body_token = text_field(body, "access_token", MAX_BODY_BYTES)
    refresh = text_field(body, "refresh_token", MAX_BODY_BYTES)
    access = header_token if header_token is not None else body_token
    if access is None or refresh is None:
        raise TokenMissing(
            "Send the access token as 'Authorization: Bearer <token>' and the refresh "
            'token as JSON {"refresh_token": ...}.'
        )
    return access, refresh


def _cookie_pair() -> PresentedPair:
    """The refresh cookie's tokens, and the CSRF check they must pass."""
    jar = get_state().cookies
    values = jar.refresh_cookies(_cookie_header())
    if not values:
        if get_state().settings.transport_per_request:  # a header client may be asking
            raise TokenMissing(
                'Send the refresh token as JSON {"refresh_token": ...} with the access token '
                "as 'Authorization: Bearer <token>', or the refresh cookie."
            )
        raise TokenMissing("There is no refresh cookie: log in again.")
    proof = request.headers.get(jar.csrf_header)
    access, refresh = jar.refresh_pair(values, proof)
    return PresentedPair(access, refresh, partial(jar.check_csrf, proof=proof), in_cookies=True)


def _clearing_cookies(exc: DualTokenError) -> DualTokenError:
    # Cookies that failed as credentials can never work again: let the browser drop them.
    # Not on 403 csrf_failed (a cross-site request must not be able to log anyone out),
    # nor on 503 (the session may be fine), nor unless exactly one refresh cookie came:
    # with several, one was planted, and our deletion would drop the page's own cookies,
    # not the planted one; with none, there is nothing of ours to drop.
    jar = get_state().cookies
    if exc.code == 401 and len(jar.refresh_cookies(_cookie_header())) == 1:
        exc.add_headers(jar.clear_headers())
    return exc
