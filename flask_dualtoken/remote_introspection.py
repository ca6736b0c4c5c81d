"""Remote introspection: a verify-only app asks the issuing app whether a token is live.

With ``DUALTOKEN_INTROSPECTION_URL`` every access token whose signature checks is sent to
the issuing app's ``{prefix}/introspect`` (RFC 7662: the form-encoded ``token``, HTTP
Basic as one of its ``DUALTOKEN_INTROSPECTION_CLIENTS``), and passes only when the answer
is ``active`` and about the same ``sub`` and ``sid``; ``{"active": false}`` is 401
``session_revoked``. The client secret goes to that URL only: no redirect is followed and
no proxy asked (``remote_keys.pinned_opener``), and the whole exchange, from connecting to
the answer's last byte, has TIMEOUT seconds. Anything but a usable answer (refused,
timed out, a 3xx, a 401, any status but 200, not JSON, over MAX_ANSWER_BYTES, about
another token) is no answer, and the request is refused with a 503: an app that asks in
order to refuse ended sessions must not let a token through because nobody answered.

Answers may be kept ``DUALTOKEN_INTROSPECTION_CACHE_SECONDS`` (0, the default: asked at
every request), never past the token's expiry, at most CACHE_SIZE of them, by the token's
SHA-256 (no token is kept), counted from when the question was asked. An inactive answer
is kept too, and is final: an "active" answer to an older question, landing later, never
replaces it (an ended session never comes back). A failure is never kept.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, urlencode

from .errors import IntrospectionUnavailable, SessionRevoked
from .remote_keys import pinned_opener

if TYPE_CHECKING:
    from .config import Settings

#: The largest answer read, in bytes; a longer one is no answer.
MAX_ANSWER_BYTES = 64 * 1024
#: Seconds one question may take, from connecting to the answer's last byte.
TIMEOUT = 3.0
#: The most answers kept, when DUALTOKEN_INTROSPECTION_CACHE_SECONDS keeps any.
CACHE_SIZE = 4096
_CHUNK_BYTES = 16 * 1024

logger = logging.getLogger("flask_dualtoken")


class AnswerError(ValueError):
    """An answer that is no usable RFC 7662 answer about this token: its message says why
    (never the token, never the credentials)."""


class RemoteIntrospection:
    """The issuing app's introspection URL, asked for every request's access token; one
    per app, shared by the threads of a process. It holds no connection or thread: each
    question opens its own connection and closes it."""

    def __init__(
        self, url: str, client_id: str, client_secret: bytes, *, cache_seconds: int = 0
    ) -> None:
        self.url = url
        # RFC 6749 2.3.1: the id and secret form-encoded, then HTTP Basic.
        credentials = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
        self._authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
        self._opener = pinned_opener()
        self._cache_seconds = cache_seconds
        #: SHA-256 of a token -> (monotonic time it lapses, the token's exp, whether it
        #: was active).
        self._cache: dict[bytes, tuple[float, int, bool]] = {}
        self._lock = threading.Lock()
        self._down = False

    def check(self, token: str, user_id: str, sid: str, exp: int) -> None:
        """Raise ``SessionRevoked`` (401) unless the issuing app says this verified access
        token (of ``user_id``'s session ``sid``, expiring at ``exp``) is live, and
        ``IntrospectionUnavailable`` (503) when it gives no usable answer."""
        key = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        active = self._cached(key)
        if active is None:
            asked_at = time.monotonic()
            active = self._ask(token, user_id, sid)
            self._keep(key, active, exp, asked_at)
        if not active:
            raise SessionRevoked()

    def _ask(self, token: str, user_id: str, sid: str) -> bool:
        request = urllib.request.Request(  # noqa: S310 - an http(s) URL, checked at start-up
            self.url,
            data=urlencode({"token": token}).encode("ascii"),
            headers={
                "Authorization": self._authorization,
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            method="POST",
        )
        try:
            # The opener makes TIMEOUT the deadline of the whole exchange (TimeoutError).
            with self._opener.open(request, timeout=TIMEOUT) as response:
                body = _read_answer(response)
            active = _verdict(body, user_id, sid)
        except urllib.error.HTTPError as exc:  # a 3xx, 401, 5xx...: its body is not read
            exc.close()
            raise self._failed(_status_reason(exc.code)) from None
        except (OSError, http.client.HTTPException, ValueError, RecursionError) as exc:
            # Only our own messages and exception names: nothing from the wire is logged.
            raise self._failed(str(exc) if isinstance(exc, AnswerError) else _kind(exc)) from None
        self._answered()
        return active

    def _failed(self, reason: str) -> IntrospectionUnavailable:
        """Log a failure once until the URL answers again (so an outage does not flood
        the log), with the URL, which holds no credentials; the 503 to raise."""
        with self._lock:
            first, self._down = not self._down, True
        if first:
            logger.error(
                "introspection at %s gave no usable answer: %s; refusing access tokens "
                "(logged once, until it answers)",
                self.url,
                reason,
            )
        return IntrospectionUnavailable()

    def _answered(self) -> None:
        if not self._down:
            return
        with self._lock:
            was, self._down = self._down, False
        if was:
            logger.warning("introspection at %s answers again", self.url)

    def _cached(self, key: bytes) -> bool | None:
        if not self._cache_seconds:
            return None
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            lapses, exp, active = entry
            if time.monotonic() < lapses and time.time() < exp:
                return active
            del self._cache[key]
            return None

    def _keep(self, key: bytes, active: bool, exp: int, asked_at: float) -> None:
        # Counted from when the question was asked, so that of two answers about one token
        # the older question's lapses first; never past the token's expiry: a kept
        # "active" must not outlive the token.
        now = time.monotonic()
        lapses = min(asked_at + self._cache_seconds, now + exp - time.time())
        if lapses <= now:
            return
        with self._lock:
            kept = self._cache.get(key)
            if kept is not None and active and not kept[2]:
                # An inactive answer is final: this "active" answers an older question
                # (asked before the session ended), and must not bring the session back.
                return
            self._cache.pop(key, None)
            if len(self._cache) >= CACHE_SIZE:
                # The oldest answer: kept for the same time as the rest, the first to lapse.
                del self._cache[next(iter(self._cache))]
            self._cache[key] = (lapses, exp, active)

    def __repr__(self) -> str:
        return f"RemoteIntrospection({self.url!r}, cache_seconds={self._cache_seconds})"


def for_settings(settings: Settings) -> RemoteIntrospection | None:
    """The app's remote introspection (DUALTOKEN_INTROSPECTION_URL), or None."""
    url = settings.introspection_url
    client_id = settings.introspection_client_id
    secret = settings.introspection_client_secret
    if url is None or client_id is None or secret is None:  # load_settings: all or none
        return None
    return RemoteIntrospection(
        url, client_id, secret, cache_seconds=settings.introspection_cache_seconds
    )


def _read_answer(response: Any) -> bytes:
    """The body of a 200 JSON answer, read up to MAX_ANSWER_BYTES (the opener cuts it at
    the deadline)."""
    if response.status != 200:  # a 2xx other than 200 is no RFC 7662 answer either
        raise AnswerError(f"HTTP {response.status}, not 200")
    if response.headers.get_content_type() != "application/json":
        raise AnswerError("the answer is not application/json")
    body = bytearray()
    while len(body) <= MAX_ANSWER_BYTES:
        chunk = response.read1(_CHUNK_BYTES)
        if not chunk:
            return bytes(body)
        body += chunk
    raise AnswerError(f"the answer is over {MAX_ANSWER_BYTES} bytes")


def _verdict(body: bytes, user_id: str, sid: str) -> bool:
    """Whether the answer says active, for this very token's user and session."""
    answer = json.loads(body)
    active = answer.get("active") if isinstance(answer, dict) else None
    if not isinstance(active, bool):
        raise AnswerError('the answer is not an RFC 7662 object with a boolean "active"')
    if active and (answer.get("sub") != user_id or answer.get("sid") != sid):
        raise AnswerError("the answer is about another token: its sub or sid differs")
    return active


def _status_reason(status: int) -> str:
    if 300 <= status < 400:
        return f"HTTP {status}, a redirect, not followed (the credentials go to this URL only)"
    if status == 401:
        return (
            "HTTP 401: the issuing app refused DUALTOKEN_INTROSPECTION_CLIENT_ID and "
            "DUALTOKEN_INTROSPECTION_CLIENT_SECRET (check its DUALTOKEN_INTROSPECTION_CLIENTS)"
        )
    if status == 429:
        return (
            "HTTP 429: the issuing app throttles this client (its "
            "DUALTOKEN_INTROSPECTION_MAX_REQUESTS; or, with a wrong secret, failed client "
            "authentications from here); "
            "DUALTOKEN_INTROSPECTION_CACHE_SECONDS here asks less often"
        )
    return f"HTTP {status}, not 200"


def _kind(exc: BaseException) -> str:
    """What went wrong, by exception type (a URLError by its reason's: refused, timed
    out, a certificate)."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        return f"{type(exc).__name__} ({type(reason).__name__})"
    return type(exc).__name__
