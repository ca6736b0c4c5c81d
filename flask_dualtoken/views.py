"""The blueprint: HTTP in and out of the flows in ``sessions``. Nothing else lives here."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from . import sessions
from .context import BODY_KEY, UNSAFE_CHARS, get_request_token, request_client
from .cookies import TRANSPORT_HEADER
from .decorators import bearer_token, jwt_required
from .errors import (
    DualTokenError,
    InvalidRequest,
    MethodRefused,
    RequestTooLarge,
    RouteNotFound,
    SessionNotFound,
    TokenMissing,
)
from .limits import MAX_BODY_BYTES, MAX_PASSWORD_CHARS, MAX_USERNAME_CHARS
from .openapi import openapi_document
from .state import get_state
from .tokens import TokenPair, is_token_id

blueprint = Blueprint("dualtoken", __name__)

#: Each route of the blueprint and its one method, as the routes register themselves.
_ROUTES: list[tuple[str, str]] = []

_View = TypeVar("_View", bound=Callable[..., Any])
_Result = TypeVar("_Result")


def _route(rule: str, method: str) -> Callable[[_View], _View]:
    """A route with one method; the JSON 405s below are derived from these."""
    _ROUTES.append((rule, method))
    return blueprint.route(rule, methods=[method], provide_automatic_options=False)


def _json_object() -> dict[str, Any]:
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


def _text_field(body: dict[str, Any], name: str, limit: int) -> str | None:
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


def _pair_response(pair: TokenPair, in_cookies: bool) -> Response:
    jar = get_state().cookies
    response = jsonify(jar.body(pair) if in_cookies else pair.to_dict())
    if in_cookies:
        jar.write(response, pair)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _token_inputs(body: dict[str, Any]) -> tuple[str, str]:
    """The AT (Authorization header, or body ``access_token``) and body ``refresh_token``."""
    header_token = bearer_token()
    body_token = _text_field(body, "access_token", MAX_BODY_BYTES)
    refresh = _text_field(body, "refresh_token", MAX_BODY_BYTES)
    access = header_token if header_token is not None else body_token
    if access is None or refresh is None:
        raise TokenMissing(
            "Send the access token as 'Authorization: Bearer <token>' and the refresh "
            'token as JSON {"refresh_token": ...}.'
        )
    return access, refresh


def _body_tokens() -> tuple[str, str]:
    # No body at all is a missing refresh token (401), not a malformed request (400).
    body = _json_object() if request.content_length or request.is_json else {}
    return _token_inputs(body)


def _uses_cookies() -> bool:
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
    return "refresh_token" not in _json_object()


def _cookie_inputs() -> tuple[str, str, sessions.Proof]:
    """The refresh cookie's tokens, and the CSRF check they must pass."""
    jar = get_state().cookies
    values = jar.refresh_cookies(request.headers.get("Cookie", ""))
    if not values:
        if get_state().settings.transport_per_request:  # a header client may be asking
            raise TokenMissing(
                'Send the refresh token as JSON {"refresh_token": ...} with the access token '
                "as 'Authorization: Bearer <token>', or the refresh cookie."
            )
        raise TokenMissing("There is no refresh cookie: log in again.")
    proof = request.headers.get(jar.csrf_header)
    access, refresh = jar.refresh_pair(values, proof)
    return access, refresh, partial(jar.check_csrf, proof=proof)


def _clearing_cookies(exc: DualTokenError) -> DualTokenError:
    # Cookies that failed as credentials can never work again: let the browser drop them.
    # Not on 403 csrf_failed (a cross-site request must not be able to log anyone out),
    # nor on 503 (the session may be fine), nor unless exactly one refresh cookie came:
    # with several, one was planted, and our deletion would drop the page's own cookies,
    # not the planted one; with none, there is nothing of ours to drop.
    jar = get_state().cookies
    if exc.code == 401 and len(jar.refresh_cookies(request.headers.get("Cookie", ""))) == 1:
        exc.add_headers(jar.clear_headers())
    return exc


def _login_in_cookies() -> bool:
    settings = get_state().settings
    if not settings.transport_per_request:
        return not settings.headers_enabled
    return request.headers.get(TRANSPORT_HEADER, "").strip().lower() == "cookies"


@_route("/login", "POST")
def login() -> Response:
    body = _json_object()
    username = _text_field(body, "username", MAX_USERNAME_CHARS)
    password = _text_field(body, "password", MAX_PASSWORD_CHARS)
    if not username or password is None:
        raise InvalidRequest('Send JSON {"username": ..., "password": ...}.')
    if UNSAFE_CHARS.search(username):
        # Usernames reach logs and signal receivers: no control, line or bidi characters.
        raise InvalidRequest("'username' must not contain control characters.")
    pair = sessions.login(get_state(), username, password, request_client())
    return _pair_response(pair, _login_in_cookies())


@_route("/reissue", "POST")
def reissue() -> Response:
    pair, in_cookies = _with_presented_pair(sessions.reissue)
    return _pair_response(pair, in_cookies)


@_route("/logout", "POST")
def logout() -> Response:
    _, in_cookies = _with_presented_pair(sessions.logout)
    return _no_content(get_state().cookies.clear_headers() if in_cookies else None)


def _with_presented_pair(flow: Callable[..., _Result]) -> tuple[_Result, bool]:
    """Run reissue or logout on the pair the request presents: from the bearer header and
    the body, or from the refresh cookie with its CSRF proof (when the cookies fail as
    credentials, the answer deletes them). Also says which it was."""
    state, client = get_state(), request_client()
    if not _uses_cookies():
        access, refresh = _body_tokens()
        return flow(state, access, refresh, client), False
    try:
        access, refresh, proof = _cookie_inputs()
        return flow(state, access, refresh, client, proof=proof), True
    except DualTokenError as exc:
        raise _clearing_cookies(exc) from None


@_route("/logout-all", "POST")
@jwt_required
def logout_all() -> Response:
    state = get_state()
    user_id, sid = _caller()
    sessions.revoke_all(state, user_id, request_client(), caller=sid)
    # A browser that called this with its cookies is logged out too: drop them.
    jar = state.cookies
    in_browser = state.settings.cookies_enabled and jar.has_cookie(
        request.headers.get("Cookie", ""), jar.csrf_name
    )
    return _no_content(state.cookies.clear_headers() if in_browser else [])


@_route("/sessions", "GET")
@jwt_required
def list_sessions() -> Response:
    user_id, current = _caller()
    found = sessions.list_sessions(get_state(), user_id, caller=current)
    response = jsonify({"sessions": [info.to_dict(current) for info in found]})
    response.headers["Cache-Control"] = "no-store"
    return response


@_route("/sessions/<sid>", "DELETE")
@jwt_required
def revoke_session(sid: str) -> Response:
    # The key is built from the caller's own user id: another user's sid is simply not
    # found, so the answer cannot tell "someone else's" from "no such session".
    user_id, current = _caller()
    if not is_token_id(sid) or not sessions.revoke(
        get_state(), user_id, sid, "revoked", request_client(), caller=current
    ):
        raise SessionNotFound()
    return _no_content()


@_route("/openapi.json", "GET")
def openapi() -> Response:
    state = get_state()
    if not state.settings.openapi:
        raise RouteNotFound()
    return jsonify(openapi_document(state.settings))


def _no_content(headers: list[tuple[str, str]] | None = None) -> Response:
    """A 204: no body, so no Content-Type either (Flask would say text/html)."""
    response = Response(status=204, headers=headers)
    del response.headers["Content-Type"]
    return response


def _caller() -> tuple[str, str]:
    """The user id and session id of this request's verified access token."""
    token = get_request_token()
    assert token is not None  # guaranteed by @jwt_required
    return token.sub, token.sid


# Flask answers a wrong method with an HTML 405 before any blueprint handler could run,
# and its automatic OPTIONS would advertise every method of every rule on a path. So each
# path also gets a rule for all its other methods: a JSON 405, and the same exact Allow
# header as its OPTIONS answer.
def _other_methods(allowed: str, **_: Any) -> Response:
    allow = f"{allowed}, HEAD, OPTIONS" if allowed == "GET" else f"{allowed}, OPTIONS"
    if request.method == "OPTIONS":
        return Response(status=200, headers={"Allow": allow})
    raise MethodRefused(allowed, allow)


for _index, (_rule, _allowed) in enumerate(_ROUTES):
    blueprint.add_url_rule(
        _rule,
        endpoint=f"other_methods_{_index}",
        view_func=partial(_other_methods, _allowed),
        methods=[m for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS") if m != _allowed],
        provide_automatic_options=False,
    )
