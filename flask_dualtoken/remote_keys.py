"""Remote keys: a verify-only app's copy of the issuing app's public keys (its JWK Set).

Fetched from ``DUALTOKEN_JWKS_URL`` and nowhere else: no redirect is followed and no proxy
is asked (the key set decides whose tokens are valid, so it must come from exactly the
configured origin), within one deadline for the whole exchange and with a size cap. The
copy is kept ``KEYS_LIFETIME`` seconds, and a token whose ``kid`` the copy lacks makes it
fetch again at most once per ``REFETCH_INTERVAL``: tokens with made-up key ids cannot make
it fetch per request. A fetch holds up no other request: while one runs, every other
thread goes on with the keys in hand (only an app that has none yet waits for it). Only
Ed25519 keys (kty OKP) for signing are taken; anything else in the set is ignored.

``pinned_opener`` is also remote_introspection's: the HTTP both use, pinned to one URL and
to one deadline from connecting to the last byte read.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import io
import json
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from . import ed25519
from .errors import KeysUnavailable

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

#: The largest key set read, in bytes; a longer answer is refused unread beyond that.
MAX_KEY_SET_BYTES = 64 * 1024
#: The most keys taken from one set (a current secret and a few previous ones).
MAX_KEYS = 32
#: Seconds one fetch may take, from connecting to the last byte read.
FETCH_TIMEOUT = 3.0
#: Seconds a fetched key set is used before it is fetched again.
KEYS_LIFETIME = 300
#: The least time, in seconds, between two fetches caused by unknown key ids or failures.
REFETCH_INTERVAL = 30
_MAX_KID_CHARS = 64
#: Seconds past FETCH_TIMEOUT that a thread with no keys at all waits for the first fetch
#: (which its deadline ends by then), and after which a fetch is taken for dead (a fork).
_FETCH_SLACK = 1.0

logger = logging.getLogger("flask_dualtoken")


class KeySetError(ValueError):
    """A key set that cannot be used: its message says why (never the keys)."""


def parse_key_set(document: Any) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 signing keys of a JWK Set, by key id; KeySetError if none is usable."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    keys_list = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(keys_list, list):
        raise KeySetError('a JWK Set is a JSON object {"keys": [...]}')
    keys: dict[str, Ed25519PublicKey] = {}
    for jwk in keys_list[:MAX_KEYS]:
        if not isinstance(jwk, Mapping):
            continue
        kid, x = jwk.get("kid"), jwk.get("x")
        if (
            jwk.get("kty") != "OKP"
            or jwk.get("crv") != "Ed25519"
            or jwk.get("alg", ed25519.ALGORITHM) != ed25519.ALGORITHM
            or jwk.get("use", "sig") != "sig"
            or not isinstance(kid, str)
            or not 0 < len(kid) <= _MAX_KID_CHARS
            or not isinstance(x, str)
            or kid in keys
        ):
            continue
        try:
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            keys[kid] = Ed25519PublicKey.from_public_bytes(raw)
        except (ValueError, binascii.Error):
            continue
    if not keys:
        raise KeySetError("the JWK Set holds no Ed25519 signing key with a kid")
    return keys


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx is then an error: answers come from the configured URL only


def _remaining(deadline: float) -> float:
    """Seconds left until ``deadline``; TimeoutError when none is."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the exchange took longer than its timeout")
    return left


class _DeadlineReader(io.RawIOBase):
    """A socket's bytes, each read given only the time left until the deadline: a server
    that trickles its answer (status line, headers or body) is cut at the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # keeps the socket open until closed
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(_remaining(self._deadline))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def _response_class(deadline: float) -> type[http.client.HTTPResponse]:
    class DeadlineResponse(http.client.HTTPResponse):
        def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
            super().__init__(sock, *args, **kwargs)
            unbounded, self.fp = self.fp, io.BufferedReader(_DeadlineReader(sock, deadline))
            unbounded.close()

    return DeadlineResponse


class _DeadlineConnection(http.client.HTTPConnection):
    """One exchange, from connecting to the last byte read, within ``deadline`` (a
    ``time.monotonic()`` value): connecting, the TLS handshake, sending and each read are
    given only the time left. No thread, no timer: nothing outlives the exchange."""

    def __init__(self, *args: Any, deadline: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline
        self._create_connection = self._connect_within
        # http.client makes the response with self.response_class(sock, ...).
        self.response_class = _response_class(deadline)

    def _connect_within(
        self, address: tuple[str, int], timeout: Any = None, source_address: Any = None
    ) -> socket.socket:
        sock = socket.create_connection(address, _remaining(self._deadline), source_address)
        try:
            sock.settimeout(_remaining(self._deadline))  # the TLS handshake, if any
        except OSError:
            sock.close()
            raise
        return sock

    def send(self, data: Any) -> None:
        if self.sock is not None:
            self.sock.settimeout(_remaining(self._deadline))
        super().send(data)


class _DeadlineHTTPSConnection(_DeadlineConnection, http.client.HTTPSConnection):
    pass


class _DeadlineHandling(urllib.request.AbstractHTTPHandler):
    """Makes the request's ``timeout`` the deadline of its whole exchange."""

    def do_open(
        self, http_class: Any, req: urllib.request.Request, **http_conn_args: Any
    ) -> http.client.HTTPResponse:
        timeout = req.timeout
        if not isinstance(timeout, (int, float)):  # no timeout given: no deadline either
            return super().do_open(http_class, req, **http_conn_args)
        deadline = time.monotonic() + timeout
        https = issubclass(http_class, http.client.HTTPSConnection)
        connection = _DeadlineHTTPSConnection if https else _DeadlineConnection
        return super().do_open(partial(connection, deadline=deadline), req, **http_conn_args)


class _DeadlineHTTPHandler(_DeadlineHandling, urllib.request.HTTPHandler):
    pass


class _DeadlineHTTPSHandler(_DeadlineHandling, urllib.request.HTTPSHandler):
    pass


def pinned_opener() -> urllib.request.OpenerDirector:
    """An opener for one configured URL of the issuing app: no proxy from the environment
    and no redirect followed (a 3xx is an HTTPError), so what is fetched, and what is sent
    (remote_introspection's client secret), goes to that origin only. ``open(...,
    timeout=T)`` is one deadline of T seconds for the whole exchange, from connecting to
    the last byte of the answer read (TimeoutError past it), not T per wait: a server that
    trickles its answer cannot hold a request past it. It keeps no connection between
    requests, and starts no thread: nothing to go wrong across a fork."""
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        _NoRedirects,
        _DeadlineHTTPHandler,
        _DeadlineHTTPSHandler,
    )


class RemoteKeys:
    """The key set at one URL, fetched when needed, shared by every thread of a process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._opener = pinned_opener()
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at = -float("inf")  # when the keys in hand were fetched
        self._tried_at = -float("inf")  # when a fetch was last started
        self._fetching: threading.Event | None = None  # set when the fetch under way ends
        self._lock = threading.Lock()  # held to decide, never during a fetch

    def key(self, kid: str) -> Ed25519PublicKey | None:
        """The public key of ``kid``, fetching the set when it is stale or lacks the kid
        (at most once per REFETCH_INTERVAL); None when the set has no such key.
        KeysUnavailable (503) when no key set could ever be fetched.

        Only the thread that starts a fetch waits for it: the others go on with the keys in
        hand, so a fetch for a made-up kid, or the routine refresh, from a slow issuer holds
        up nobody else. Only while no key set was ever fetched do they wait for it (at most
        its deadline), having nothing else to go on.
        """
        with self._lock:
            now = time.monotonic()
            keys, under_way = self._keys, self._fetching
            if under_way is not None and now - self._tried_at > FETCH_TIMEOUT + _FETCH_SLACK:
                under_way = None  # ended long ago in a process this one was forked from
            stale = now - self._fetched_at >= KEYS_LIFETIME
            fetch = (
                under_way is None
                and (stale or kid not in keys)
                and now - self._tried_at >= REFETCH_INTERVAL
            )
            if fetch:
                self._tried_at = now
                self._fetching = under_way = threading.Event()
        if fetch:
            assert under_way is not None
            try:
                self._fetch(now)
            finally:
                with self._lock:
                    self._fetching = None
                under_way.set()
            keys = self._keys
        elif not keys and under_way is not None:
            under_way.wait(FETCH_TIMEOUT + _FETCH_SLACK)
            keys = self._keys
        if not keys:
            raise KeysUnavailable()
        return keys.get(kid)

    def _fetch(self, now: float) -> None:
        # A failed fetch keeps the keys in hand (a restarting issuer must not lock every
        # user out); its cause goes to the log with the URL, which holds no secret.
        try:
            with self._opener.open(self.url, timeout=FETCH_TIMEOUT) as response:
                body = response.read(MAX_KEY_SET_BYTES + 1)
            if len(body) > MAX_KEY_SET_BYTES:
                raise KeySetError(f"the answer is over {MAX_KEY_SET_BYTES} bytes")
            keys = parse_key_set(json.loads(body))
        except (OSError, http.client.HTTPException, ValueError, RecursionError) as exc:
            reason = exc if isinstance(exc, KeySetError) else type(exc).__name__
            logger.warning("could not fetch the key set at %s: %s", self.url, reason)
            return
        with self._lock:  # the new set replaces the old in one assignment
            self._keys, self._fetched_at = keys, now

    def __repr__(self) -> str:
        return f"RemoteKeys({self.url!r}, {len(self._keys)} keys)"
