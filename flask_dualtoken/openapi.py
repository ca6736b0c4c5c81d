"""The OpenAPI 3.1 description of the blueprint's routes, served at ``{prefix}/openapi.json``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .config import Settings

ERROR_CODES = [
    "invalid_request", "request_too_large", "method_not_allowed", "invalid_credentials",
    "too_many_attempts", "token_missing", "token_invalid", "token_expired",
    "refresh_token_invalid", "refresh_token_expired", "token_mismatch",
    "refresh_token_reused", "session_revoked", "user_unavailable", "insufficient_role",
    "session_not_found", "store_unavailable", "not_found",
]  # fmt: skip

_JSON = "application/json"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _body(schema: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


_PAIR = {
    "description": "A new token pair (not to be cached).",
    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/TokenPair"}}},
}
_COMMON = {
    "400": _error("Malformed request: not a JSON object, a field of the wrong type."),
    "405": _error("Wrong method."),
    "413": _error("Request body over 16 KiB."),
    "503": _error("The session store is unavailable; nothing was issued."),
}
_BEARER_ERRORS = {
    "401": _error("Missing, invalid or expired access token, or a session that ended."),
}


def _version() -> str:
    try:
        return version("flask-dualtoken")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def openapi_document(settings: Settings) -> dict[str, Any]:
    """Build the document for one app's settings (its URL prefix)."""
    p = settings.url_prefix
    bearer: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    paths: dict[str, Any] = {
        f"{p}/login": {
            "post": {
                "summary": "Log in with username and password; start a session.",
                "operationId": "login",
                "requestBody": _body("LoginRequest"),
                "responses": {
                    "200": _PAIR,
                    "401": _error("invalid_credentials: unknown user or wrong password."),
                    "429": _error("too_many_attempts: throttled; see Retry-After."),
                    **_COMMON,
                },
            }
        },
        f"{p}/reissue": {
            "post": {
                "summary": "Rotate a session: the (possibly expired) access token and its "
                "refresh token in, a new pair out.",
                "operationId": "reissue",
                "security": bearer,
                "requestBody": _body("RefreshRequest"),
                "responses": {
                    "200": _PAIR,
                    "401": _error(
                        "token_missing, token_invalid, refresh_token_invalid, "
                        "refresh_token_expired, token_mismatch, refresh_token_reused, "
                        "session_revoked or user_unavailable."
                    ),
                    **_COMMON,
                },
            }
        },
        f"{p}/logout": {
            "post": {
                "summary": "End the session of a bound token pair (expiry does not matter).",
                "operationId": "logout",
                "security": bearer,
                "requestBody": _body("RefreshRequest"),
                "responses": {
                    "204": {"description": "Session ended (or already ended)."},
                    "401": _error("The pair is invalid or not bound."),
                    **_COMMON,
                },
            }
        },
        f"{p}/logout-all": {
            "post": {
                "summary": "End every session of the caller.",
                "operationId": "logoutAll",
                "security": bearer,
                "responses": {
                    "204": {"description": "Every session ended."},
                    **_BEARER_ERRORS,
                    **_COMMON,
                },
            }
        },
        f"{p}/sessions": {
            "get": {
                "summary": "The caller's live sessions, oldest first.",
                "operationId": "listSessions",
                "security": bearer,
                "responses": {
                    "200": {
                        "description": "Live sessions.",
                        "content": {
                            _JSON: {"schema": {"$ref": "#/components/schemas/SessionList"}}
                        },
                    },
                    **_BEARER_ERRORS,
                    **_COMMON,
                },
            }
        },
        f"{p}/sessions/{{sid}}": {
            "delete": {
                "summary": "End one of the caller's sessions.",
                "operationId": "revokeSession",
                "security": bearer,
                "parameters": [
                    {"name": "sid", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "204": {"description": "Session ended."},
                    "404": _error(
                        "session_not_found: no live session of the caller has this id "
                        "(the same answer for someone else's)."
                    ),
                    **_BEARER_ERRORS,
                    **_COMMON,
                },
            }
        },
    }
    text = {"type": "string"}
    seconds = {"type": "integer", "description": "Unix time, seconds."}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flask-dualtoken authentication API",
            "version": _version(),
            "description": "Login, rotating refresh tokens with reuse detection, logout and "
            "session management. Every error body is {error, message}.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": {
                "LoginRequest": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "username": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 256,
                            "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
                            "description": "No control characters.",
                        },
                        "password": {"type": "string", "maxLength": 1024},
                    },
                },
                "RefreshRequest": {
                    "type": "object",
                    "required": ["refresh_token"],
                    "properties": {
                        "refresh_token": text,
                        "access_token": {**text, "description": "Instead of the header."},
                    },
                },
                "TokenPair": {
                    "type": "object",
                    "required": [
                        "access_token",
                        "refresh_token",
                        "token_type",
                        "expires_in",
                        "refresh_expires_in",
                    ],
                    "properties": {
                        "access_token": text,
                        "refresh_token": text,
                        "token_type": {"const": "Bearer"},
                        "expires_in": {"type": "integer"},
                        "refresh_expires_in": {"type": "integer"},
                    },
                },
                "Session": {
                    "type": "object",
                    "required": [
                        "sid",
                        "created_at",
                        "last_used_at",
                        "expires_at",
                        "current",
                        "user_agent",
                        "ip",
                    ],
                    "properties": {
                        "sid": text,
                        "created_at": seconds,
                        "last_used_at": seconds,
                        "expires_at": seconds,
                        "current": {"type": "boolean"},
                        "user_agent": text,
                        "ip": text,
                    },
                },
                "SessionList": {
                    "type": "object",
                    "required": ["sessions"],
                    "properties": {
                        "sessions": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Session"},
                        }
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"enum": ERROR_CODES}, "message": text},
                },
            },
        },
    }
