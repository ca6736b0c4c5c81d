"""The blueprint: HTTP in and out of the flows in ``flows``. Nothing else lives here."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify, request

from . import ed25519, flows, introspection, transport
from .context import UNSAFE_CHARS, get_request_token, request_client
from .decorators import jwt_required, require_recent_login
from .errors import InvalidRequest, MethodRefused, RouteNotFound, SessionNotFound
from .limits import MAX_PASSWORD_CHARS, MAX_USERNAME_CHARS
from .openapi import openapi_document
from .state import get_state
from .tokens import AccessToken, is_token_id

blueprint = Blueprint("dualtoken", __name__)

#: Each route of the blueprint and its one method, as the routes register themselves.
_ROUTES: list[tuple[str, str]] = []

_View = TypeVar("_View", bound=Callable[..., Any])


def _route(rule: str, method: str) -> Callable[[_View], _View]:
    """A route with one method; the JSON 405s below are derived from these."""
    _ROUTES.append((rule, method))
    return blueprint.route(rule, methods=[method], provide_automatic_options=False)


@_route("/login", "POST")
def login() -> Response:
    username, password = _credentials()
    pair = flows.login(get_state(), username, password, request_client())
    return transport.pair_response(pair, transport.login_in_cookies())


@_route("/reauth", "POST")
@jwt_required
def reauth() -> Response:
    username, password = _credentials()
    pair = flows.reauthenticate(get_state(), _token(), username, password, request_client())
    return transport.pair_response(pair, transport.renewal_in_cookies())


@_route("/reissue", "POST")
def reissue() -> Response:
    with transport.presented_pair() as presented:
        pair = flows.reissue(
            get_state(),
            presented.access,
            presented.refresh,
            request_client(),
            proof=presented.proof,
        )
    return transport.pair_response(pair, presented.in_cookies)


@_route("/logout", "POST")
def logout() -> Response:
    with transport.presented_pair() as presented:
        flows.logout(
            get_state(),
            presented.access,
            presented.refresh,
            request_client(),
            proof=presented.proof,
        )
    return _no_content(deleting_cookies=presented.in_cookies)


@_route("/logout-all", "POST")
@jwt_required
def logout_all() -> Response:
    _admin_fresh()
    user_id, sid = _caller()
    flows.revoke_all(get_state(), user_id, request_client(), caller=sid)
    # A browser that called this with its cookies is logged out too: drop them.
    return _no_content(deleting_cookies=transport.from_browser())


@_route("/sessions", "GET")
@jwt_required
def list_sessions() -> Response:
    user_id, current = _caller()
    found = flows.list_sessions(get_state(), user_id, caller=current)
    response = jsonify({"sessions": [info.to_dict(current) for info in found]})
    response.headers["Cache-Control"] = "no-store"
    return response


@_route("/sessions/<sid>", "DELETE")
@jwt_required
def revoke_session(sid: str) -> Response:
    # The key is built from the caller's own user id: another user's sid is simply not
    # found, so the answer cannot tell "someone else's" from "no such session".
    user_id, current = _caller()
    if sid != current:  # ending one's own session is a logout, and needs no fresh login
        _admin_fresh()
    if not is_token_id(sid) or not flows.revoke(
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


@_route("/jwks.json", "GET")
def jwks() -> Response:
    """The public keys that verify access tokens (EdDSA only: an HMAC key is no public key).

    Cacheable by anyone: it holds public keys only, and a verifier that caches it needs no
    request to us per token. Mount it at /.well-known/jwks.json too (docs/other-services.md).
    """
    key_set = get_state().codec.jwks
    if key_set is None:
        raise RouteNotFound()
    response = jsonify(key_set)
    response.headers["Cache-Control"] = f"public, max-age={ed25519.JWKS_MAX_AGE}"
    return response


@_route("/introspect", "POST")
def introspect() -> Response:
    """RFC 7662, for the services of DUALTOKEN_INTROSPECTION_CLIENTS; 404 without any."""
    state = get_state()
    if not state.settings.introspection_clients:
        raise RouteNotFound()
    client_id, secret = transport.basic_credentials()
    introspection.admit_client(state, client_id, secret, request_client().ip)
    response = jsonify(introspection.introspect(state, transport.form_token()))
    response.headers["Cache-Control"] = "no-store"
    return response


@_route("/revoke", "POST")
def revoke() -> Response:
    """RFC 7009: end the session of the token sent; 200 whatever the token (no oracle).
    With DUALTOKEN_INTROSPECTION_CLIENTS, only those clients may ask."""
    state = get_state()
    client = request_client()
    if state.settings.introspection_clients:
        client_id, secret = transport.basic_credentials()
        introspection.authenticate_client(state, client_id, secret, client.ip)
    proof = transport.revocation_proof()
    flows.revoke_token(state, transport.form_token(), client, proof=proof)
    response = Response(status=200)
    del response.headers["Content-Type"]
    response.headers["Cache-Control"] = "no-store"
    return response


def _no_content(*, deleting_cookies: bool = False) -> Response:
    """A 204: no body, so no Content-Type either (Flask would say text/html)."""
    response = Response(status=204)
    del response.headers["Content-Type"]
    if deleting_cookies:
        transport.write_deletion(response)
    return response


def _credentials() -> tuple[str, str]:
    """The username and password of a login or re-authentication body."""
    body = transport.json_body()
    username = transport.text_field(body, "username", MAX_USERNAME_CHARS)
    password = transport.text_field(body, "password", MAX_PASSWORD_CHARS)
    if not username or password is None:
        raise InvalidRequest('Send JSON {"username": ..., "password": ...}.')
    if UNSAFE_CHARS.search(username):
        # Usernames reach logs and signal receivers: no control, line or bidi characters.
        raise InvalidRequest("'username' must not contain control characters.")
    return username, password


def _token() -> AccessToken:
    """This request's verified access token."""
    token = get_request_token()
    assert token is not None  # guaranteed by @jwt_required
    return token


def _caller() -> tuple[str, str]:
    """The user id and session id of this request's verified access token."""
    token = _token()
    return token.sub, token.sid


def _admin_fresh() -> None:
    """Ending other sessions may need a recent login (DUALTOKEN_SESSION_ADMIN_FRESH;
    OWASP ASVS 5.0 7.5.2): the same 401 as ``@jwt_required(fresh=...)``."""
    max_age = get_state().settings.session_admin_fresh
    if max_age:
        require_recent_login(_token(), max_age)


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
