"""The OpenAPI 3.1 description of the blueprint's routes, served at ``{prefix}/openapi.json``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from . import ed25519
from .config import Settings
from .cookies import TRANSPORT_HEADER, CookieJar
from .errors import error_codes
from .limits import MAX_BODY_BYTES, MAX_PASSWORD_CHARS, MAX_USERNAME_CHARS

#: Every error code the routes answer with, from the error classes themselves.
ERROR_CODES = error_codes()

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


_COMMON = {
    "400": _error("Malformed request: not a JSON object, a field of the wrong type."),
    "405": _error("Wrong method."),
    "413": _error(f"Request body over {MAX_BODY_BYTES // 1024} KiB."),
    "503": _error("The session store is unavailable; nothing was issued."),
}
_BEARER_ERRORS = {
    "401": _error("Missing, invalid or expired access token, or a session that ended."),
}


def _admin_errors(settings: Settings) -> dict[str, Any]:
    """The 401s of the routes that end other sessions: with DUALTOKEN_SESSION_ADMIN_FRESH,
    also a login too old for them, with RFC 9470's challenge."""
    max_age = settings.session_admin_fresh
    if not max_age:
        return _BEARER_ERRORS
    answer = _error(
        "Missing, invalid or expired access token, a session that ended, or "
        "insufficient_user_authentication: ending a session other than the caller's own "
        f"needs a login (auth_time) within {max_age} seconds; re-authenticate (POST "
        "reauth) and retry."
    )
    answer["headers"] = {
        "WWW-Authenticate": {
            "description": 'Bearer realm="api", error="insufficient_user_authentication", '
            f'..., max_age="{max_age}" (RFC 9470) when the login is too old.',
            "schema": {"type": "string"},
        }
    }
    return {"401": answer}


def _client_limit(settings: Settings) -> dict[str, Any]:
    """Introspection's 429s: failed authentications from the address, and the client's
    own request limit, each with Retry-After."""
    answer = _error(
        "too_many_attempts: too many failed client authentications from this address; or "
        "too_many_requests: this client asked more than "
        f"{settings.introspection_max_requests} times in {settings.introspection_window} s."
        if settings.introspection_max_requests
        else "too_many_attempts: too many failed client authentications from this address."
    )
    answer["headers"] = {
        "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
    }
    return answer


def _version() -> str:
    try:
        return version("flask-dualtoken")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def _cookie_parts(settings: Settings) -> dict[str, Any]:
    """What cookie mode adds: security schemes, requirements and the cookie login answer."""
    jar = CookieJar(settings)
    schemes: dict[str, Any] = {
        "refreshCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": jar.refresh_name,
            "description": "AT~RT, HttpOnly, sent only to reissue and logout.",
        },
        "csrfHeader": {
            "type": "apiKey",
            "in": "header",
            "name": jar.csrf_header,
            "description": f"The value of the {jar.csrf_name} cookie (or of csrf_token).",
        },
    }
    access: list[dict[str, list[str]]] = []
    if settings.access_from_cookie:
        schemes["accessCookie"] = {"type": "apiKey", "in": "cookie", "name": jar.access_name}
        # GET needs no CSRF proof; the requirement lists it for state-changing methods.
        access = [{"accessCookie": [], "csrfHeader": []}]
    return {
        "schemes": schemes,
        "refresh": [{"refreshCookie": [], "csrfHeader": []}],
        "access": access,
    }


def openapi_document(settings: Settings) -> dict[str, Any]:
    """Build the document for one app's settings (its URL prefix and token location)."""
    p = settings.url_prefix
    headers = settings.headers_enabled
    cookies = _cookie_parts(settings) if settings.cookies_enabled else None
    bearer: list[dict[str, list[str]]] = []
    if settings.access_from_header:
        bearer.append({"bearerAuth": []})
    refresh_security = ([{"bearerAuth": []}] if headers else []) + (
        cookies["refresh"] if cookies else []
    )
    if cookies:
        bearer = bearer + cookies["access"]
    pair_body = _body("RefreshRequest")
    if cookies:  # a cookie request carries no body
        pair_body = {**pair_body, "required": False}
    csrf = {"403": _error("csrf_failed: a cookie request without its CSRF header.")}
    pair_schemas = [{"$ref": "#/components/schemas/TokenPair"}] if headers else []
    if cookies:
        pair_schemas.append({"$ref": "#/components/schemas/CookieSession"})
    pair_answer = {
        "description": "A new token pair (not to be cached); in cookie mode the tokens are "
        "in Set-Cookie headers and the body carries the CSRF token.",
        "content": {_JSON: {"schema": {"oneOf": pair_schemas}}},
    }
    login_parameters = []
    if settings.transport_per_request:
        login_parameters.append(
            {
                "name": TRANSPORT_HEADER,
                "in": "header",
                "required": False,
                "description": "'cookies' for a browser login answered in cookies.",
                "schema": {"type": "string"},
            }
        )
    paths: dict[str, Any] = {
        f"{p}/login": {
            "post": {
                "summary": "Log in with username and password; start a session.",
                "operationId": "login",
                "parameters": login_parameters,
                "requestBody": _body("LoginRequest"),
                "responses": {
                    "200": pair_answer,
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
                "security": refresh_security,
                "requestBody": pair_body,
                "responses": {
                    "200": pair_answer,
                    **csrf,
                    "401": _error(
                        "token_missing, token_invalid, refresh_token_invalid, "
                        "refresh_token_expired, token_mismatch, refresh_token_reused, "
                        "session_revoked or user_unavailable."
                    ),
                    **_COMMON,
                },
            }
        },
        f"{p}/reauth": {
            "post": {
                "summary": "Prove who you are again in a live session: a new pair for the same "
                "session, its access token's auth_time now and amr ['pwd'].",
                "operationId": "reauth",
                "security": bearer,
                "requestBody": _body("LoginRequest"),
                "responses": {
                    "200": pair_answer,
                    **csrf,
                    "401": _error(
                        "invalid_credentials (wrong password, or another user's credentials), "
                        "token_missing, token_invalid, token_expired or session_revoked."
                    ),
                    "429": _error("too_many_attempts: throttled as login; see Retry-After."),
                    **_COMMON,
                },
            }
        },
        f"{p}/logout": {
            "post": {
                "summary": "End the session of a bound token pair (expiry does not matter).",
                "operationId": "logout",
                "security": refresh_security,
                "requestBody": pair_body,
                "responses": {
                    **csrf,
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
                    **csrf,
                    "204": {"description": "Every session ended."},
                    **_admin_errors(settings),
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
                    **csrf,
                    "204": {"description": "Session ended."},
                    "404": _error(
                        "session_not_found: no live session of the caller has this id "
                        "(the same answer for someone else's)."
                    ),
                    **_admin_errors(settings),
                    **_COMMON,
                },
            }
        },
    }
    if settings.access_algorithm == ed25519.ALGORITHM:  # with HS256 there is no such route
        paths[f"{p}/jwks.json"] = {
            "get": {
                "summary": "The public keys that verify access tokens (EdDSA), one per secret, "
                "the current one first; each key's kid is the kid header of its tokens.",
                "operationId": "jwks",
                "responses": {
                    "200": {
                        "description": "A JWK Set (RFC 7517, RFC 8037); cacheable.",
                        "headers": {
                            "Cache-Control": {
                                "description": f"public, max-age={ed25519.JWKS_MAX_AGE}",
                                "schema": {"type": "string"},
                            }
                        },
                        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/JwkSet"}}},
                    },
                    "405": _COMMON["405"],
                },
            }
        }
    revoke_security: list[dict[str, list[str]]] = []
    revoke_errors: dict[str, Any] = {}
    if settings.introspection_clients:
        revoke_security = [{"introspectionClient": []}]
        revoke_errors["401"] = _error("invalid_client: wrong or missing client credentials.")
        revoke_errors["429"] = _error("too_many_attempts: failed authentications; Retry-After.")
    if cookies:
        revoke_errors.update(csrf)
    paths[f"{p}/revoke"] = {
        "post": {
            "summary": "RFC 7009: end the session of a valid access or refresh token; the "
            "same 200 for any token, valid or not.",
            "operationId": "revoke",
            "security": revoke_security,
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {"$ref": "#/components/schemas/TokenForm"}
                    }
                },
            },
            "responses": {
                "200": {"description": "Done, or nothing to do: the answer never says which."},
                **revoke_errors,
                **_COMMON,
            },
        }
    }
    schemes: dict[str, Any] = {}
    if settings.introspection_clients:  # without clients there is no such route
        schemes["introspectionClient"] = {
            "type": "http",
            "scheme": "basic",
            "description": "A client of DUALTOKEN_INTROSPECTION_CLIENTS: its id and secret.",
        }
        paths[f"{p}/introspect"] = {
            "post": {
                "summary": "RFC 7662: whether an access token is live (valid, and its session "
                "alive), and its claims; exactly {active: false} for anything else.",
                "operationId": "introspect",
                "security": [{"introspectionClient": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {"$ref": "#/components/schemas/TokenForm"}
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The answer; not to be cached.",
                        "content": {
                            _JSON: {"schema": {"$ref": "#/components/schemas/Introspection"}}
                        },
                    },
                    "401": _error("invalid_client: wrong or missing client credentials."),
                    "429": _client_limit(settings),
                    **_COMMON,
                },
            }
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
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                **(cookies["schemes"] if cookies else {}),
                **schemes,
            },
            "schemas": {
                "LoginRequest": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "username": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_USERNAME_CHARS,
                            "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
                            "description": "No control characters.",
                        },
                        "password": {"type": "string", "maxLength": MAX_PASSWORD_CHARS},
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
                "CookieSession": {
                    "type": "object",
                    "required": ["csrf_token", "expires_in", "refresh_expires_in"],
                    "properties": {
                        "csrf_token": {
                            **text,
                            "description": "Send it in the CSRF header with every "
                            "state-changing request that uses the cookies.",
                        },
                        "access_token": {
                            **text,
                            "description": "Only when DUALTOKEN_ACCESS_COOKIE is False.",
                        },
                        "token_type": {"const": "Bearer"},
                        "expires_in": {"type": "integer"},
                        "refresh_expires_in": {"type": "integer"},
                    },
                    "not": {"required": ["refresh_token"]},
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
                "TokenForm": {
                    "type": "object",
                    "required": ["token"],
                    "properties": {
                        "token": {**text, "minLength": 1},
                        "token_type_hint": {
                            **text,
                            "description": "RFC 7009's hint (access_token or "
                            "refresh_token); not needed: both kinds are tried.",
                        },
                    },
                },
                "Introspection": {
                    "type": "object",
                    "required": ["active"],
                    "properties": {
                        "active": {"type": "boolean"},
                        "sub": text,
                        "sid": text,
                        "role": text,
                        "exp": seconds,
                        "iat": seconds,
                        "auth_time": seconds,
                        "token_type": {"const": "access_token"},
                    },
                },
                "JwkSet": {
                    "type": "object",
                    "required": ["keys"],
                    "properties": {
                        "keys": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["kty", "crv", "x", "kid", "use", "alg"],
                                "properties": {
                                    "kty": {"const": "OKP"},
                                    "crv": {"const": "Ed25519"},
                                    "x": text,
                                    "kid": text,
                                    "use": {"const": "sig"},
                                    "alg": {"const": ed25519.ALGORITHM},
                                },
                            },
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
