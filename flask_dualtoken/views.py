"""The blueprint: HTTP in and out of the flows in ``sessions``. Nothing else lives here."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from . import sessions, signals
from .decorators import bearer_token
from .errors import (
    InvalidCredentials,
    InvalidRequest,
    MethodNotAllowed,
    RequestTooLarge,
    TokenMissing,
)
from .extension import get_state
from .tokens import TokenPair

blueprint = Blueprint("dualtoken", __name__)

MAX_BODY_BYTES = 16 * 1024
MAX_USERNAME_CHARS = 256
#: Bounds the work a request can ask of the password hasher.
MAX_PASSWORD_CHARS = 1024


def _json_object() -> dict[str, Any]:
    if not request.is_json:
        raise InvalidRequest("The request body must be JSON (Content-Type: application/json).")
    request.max_content_length = MAX_BODY_BYTES
    try:
        body = request.get_json(silent=True)
    except RequestEntityTooLarge:
        raise RequestTooLarge() from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def _text_field(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string.")
    if len(value) > limit:
        raise InvalidRequest(f"'{name}' is too long.")
    return value


def _pair_response(pair: TokenPair) -> Response:
    response = jsonify(pair.to_dict())
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _token_inputs() -> tuple[str, str]:
    """The AT (Authorization header, or body ``access_token``) and body ``refresh_token``."""
    body = _json_object()
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


@blueprint.post("/login")
def login() -> Response:
    body = _json_object()
    username = _text_field(body, "username", MAX_USERNAME_CHARS)
    password = _text_field(body, "password", MAX_PASSWORD_CHARS)
    if not username or password is None:
        raise InvalidRequest('Send JSON {"username": ..., "password": ...}.')
    state = get_state()
    user = state.authenticate(username, password)
    if user is None:
        signals.login_failed.send(state.app, username=username)
        raise InvalidCredentials()
    pair = sessions.issue(state, user)
    signals.user_logged_in.send(state.app, user_id=pair.user_id, session_id=pair.session_id)
    return _pair_response(pair)


@blueprint.post("/reissue")
def reissue() -> Response:
    access, refresh = _token_inputs()
    return _pair_response(sessions.reissue(get_state(), access, refresh))


@blueprint.post("/logout")
def logout() -> tuple[str, int]:
    access, refresh = _token_inputs()
    sessions.logout(get_state(), access, refresh)
    return "", 204


# Flask answers a wrong method with an HTML 405 before any blueprint handler could run;
# claiming the other methods here keeps every answer of these routes JSON.
_OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE"]


@blueprint.route("/login", methods=_OTHER_METHODS, endpoint="login_other")
@blueprint.route("/reissue", methods=_OTHER_METHODS, endpoint="reissue_other")
@blueprint.route("/logout", methods=_OTHER_METHODS, endpoint="logout_other")
def method_not_allowed() -> Response:
    raise MethodNotAllowed()
