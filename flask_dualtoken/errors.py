"""The one exception hierarchy, each error carrying its own JSON response.

Every error is a werkzeug ``HTTPException``: Flask renders it through ``get_response``
with no error handler registered, and extensions that re-handle HTTP exceptions
(Flask-RESTful, RESTX) keep its status instead of turning it into a 500.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from werkzeug.exceptions import HTTPException


class DualTokenError(HTTPException):
    """Base class: ``error`` is the stable machine code, ``description`` the message."""

    code: int | None = 400
    error: ClassVar[str] = "invalid_request"
    description: str | None = "The request is invalid."
    #: RFC 6750 error code for the WWW-Authenticate header; None sends no such header.
    bearer_error: ClassVar[str | None] = None
    #: Headers this error always carries (Allow, Retry-After...).
    extra_headers: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(
        self, message: str | None = None, *, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(description=message)
        self._instance_headers = headers

    def add_headers(self, headers: list[tuple[str, str]]) -> DualTokenError:
        """Attach response headers (cookies to clear, say) to this error; returns it."""
        self._instance_headers = (*self._instance_headers, *headers)
        return self

    def get_headers(
        self, environ: Any = None, scope: dict[str, Any] | None = None
    ) -> list[tuple[str, str]]:
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        headers.extend(self.extra_headers)
        headers.extend(self._instance_headers)
        challenge = self.www_authenticate_value()
        if challenge is not None:
            headers.append(("WWW-Authenticate", challenge))
        return headers

    def www_authenticate_value(self) -> str | None:
        if self.code != 401 and self.bearer_error is None:
            return None
        if self.bearer_error is None:  # RFC 6750 3.1: no credentials, no error code
            return 'Bearer realm="api"'
        # Descriptions are our own text; still, nothing but printable ASCII goes in a header.
        message = "".join(
            "'" if c == '"' else c for c in self.description or "" if " " <= c <= "~" and c != "\\"
        )
        return f'Bearer realm="api", error="{self.bearer_error}", error_description="{message}"'

    def get_body(self, environ: Any = None, scope: dict[str, Any] | None = None) -> str:
        # Compact, like the success bodies Flask writes.
        return json.dumps(
            {"error": self.error, "message": self.description}, separators=(",", ":")
        )


class InvalidRequest(DualTokenError):
    code = 400
    error = "invalid_request"
    description = "The request body must be a JSON object with the documented fields."


class RequestTooLarge(DualTokenError):
    code = 413
    error = "request_too_large"
    description = "The request body is too large."


class MethodRefused(DualTokenError):
    code = 405
    error = "method_not_allowed"
    description = "This method is not allowed here."

    def __init__(self, allowed: str, allow_header: str) -> None:
        super().__init__(f"This endpoint accepts {allowed}.", headers=(("Allow", allow_header),))


class RouteNotFound(DualTokenError):
    code = 404
    error = "not_found"
    description = "Not found."


class SessionNotFound(DualTokenError):
    code = 404
    error = "session_not_found"
    description = "No live session of yours has this id."


class TooManyAttempts(DualTokenError):
    code = 429
    error = "too_many_attempts"
    description = "Too many failed logins; try again later."

    def __init__(self, retry_after: int, *, of: str = "failed logins") -> None:
        super().__init__(
            f"Too many {of}; try again in {retry_after} seconds.",
            headers=(("Retry-After", str(retry_after)),),
        )


class TooManyRequests(DualTokenError):
    """An introspection client over its DUALTOKEN_INTROSPECTION_MAX_REQUESTS per window."""

    code = 429
    error = "too_many_requests"
    description = "Too many requests from this client; try again later."

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many requests from this client; try again in {retry_after} seconds.",
            headers=(("Retry-After", str(retry_after)),),
        )


class InvalidCredentials(DualTokenError):
    code = 401
    error = "invalid_credentials"
    description = "The username or password is incorrect."

    def www_authenticate_value(self) -> str | None:
        return None  # a password login is not a bearer-token challenge


class InvalidClient(DualTokenError):
    """RFC 7662 / RFC 6749 5.2: the introspection client's credentials are wrong or absent.
    One answer for an unknown id and a wrong secret."""

    code = 401
    error = "invalid_client"
    description = "Client authentication failed: send HTTP Basic client_id and secret."

    def www_authenticate_value(self) -> str | None:
        return 'Basic realm="introspection", charset="UTF-8"'


class TokenMissing(DualTokenError):
    code = 401
    error = "token_missing"
    description = "An access token is required: send 'Authorization: Bearer <token>'."


class TokenInvalid(DualTokenError):
    code = 401
    error = "token_invalid"
    description = "The access token is invalid."
    bearer_error = "invalid_token"


class TokenExpired(TokenInvalid):
    error = "token_expired"
    description = "The access token has expired; reissue it with the refresh token."


class RefreshTokenInvalid(TokenInvalid):
    error = "refresh_token_invalid"
    description = "The refresh token is invalid or unknown."


class RefreshTokenExpired(TokenInvalid):
    error = "refresh_token_expired"
    description = "The refresh token or its session has expired; log in again."


class TokenMismatch(TokenInvalid):
    error = "token_mismatch"
    description = "The access token and refresh token were not issued together."


class RefreshTokenReused(TokenInvalid):
    error = "refresh_token_reused"
    description = "The refresh token was already used; the session has been revoked."


class SessionRevoked(TokenInvalid):
    error = "session_revoked"
    description = "The session has been revoked; log in again."


class UserUnavailable(TokenInvalid):
    error = "user_unavailable"
    description = "The user of this token no longer exists or is disabled."


class InsufficientUserAuthentication(DualTokenError):
    """RFC 9470: the route needs a more recent login than the token's ``auth_time``."""

    code = 401
    error = "insufficient_user_authentication"
    bearer_error = "insufficient_user_authentication"
    description = "This action needs a recent login: authenticate again."

    def __init__(self, max_age: int) -> None:
        super().__init__(
            f"This action needs a login within the last {max_age} seconds: authenticate again."
        )
        self.max_age = max_age

    def www_authenticate_value(self) -> str | None:
        # RFC 9470 section 3: the age the route accepts, so a client knows what to ask for.
        return f'{super().www_authenticate_value()}, max_age="{self.max_age}"'


class InsufficientRole(DualTokenError):
    code = 403
    error = "insufficient_role"
    description = "Your role does not allow this request."
    bearer_error = "insufficient_scope"


class CsrfFailed(DualTokenError):
    code = 403
    error = "csrf_failed"
    description = "This request authenticates with cookies and needs its CSRF header."


class Misconfigured(DualTokenError, TypeError, ValueError):
    """One of the app's loaders returned something the library cannot use.

    A JSON 500 whose body says only that (the details are the server's business); the
    log line and ``str()`` name the loader, what it returned or lacked, and the fix. Also a
    TypeError and ValueError, for Python callers of ``issue``.
    """

    code = 500
    error = "server_misconfigured"
    description = "The server is misconfigured; its log says how to fix it."

    def get_body(self, environ: Any = None, scope: dict[str, Any] | None = None) -> str:
        body = {"error": self.error, "message": type(self).description}
        return json.dumps(body, separators=(",", ":"))


class StoreUnavailable(DualTokenError):
    code = 503
    error = "store_unavailable"
    description = "The session store is unavailable; try again shortly."
    extra_headers = (("Retry-After", "1"),)


class IntrospectionUnavailable(StoreUnavailable):
    """A verify-only app that asks by introspection (DUALTOKEN_INTROSPECTION_URL) got no
    usable answer: it cannot tell whether the session is alive, so it refuses. Its store
    is the issuing app's, hence a kind of StoreUnavailable."""

    error = "introspection_unavailable"
    description = "The issuing service cannot say whether the session is alive; try again shortly."


class KeysUnavailable(DualTokenError):
    """A verify-only app has never fetched the issuing app's key set (DUALTOKEN_JWKS_URL)."""

    code = 503
    error = "keys_unavailable"
    description = "The keys that verify access tokens are unavailable; try again shortly."
    extra_headers = (("Retry-After", "30"),)


def error_codes() -> list[str]:
    """Every error code, once each, in the order the classes are defined."""
    codes: list[str] = []

    def walk(cls: type[DualTokenError]) -> None:
        for sub in cls.__subclasses__():
            if sub.__module__ == __name__ and sub.error not in codes:
                codes.append(sub.error)
            walk(sub)

    walk(DualTokenError)
    return codes
