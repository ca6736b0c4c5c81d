"""Remote keys: a verify-only app's copy of the issuing app's public keys (its JWK Set).

Fetched from ``DUALTOKEN_JWKS_URL`` and nowhere else: no redirect is followed and no proxy
is asked (the key set decides whose tokens are valid, so it must come from exactly the
configured origin), with a timeout and a size cap. The copy is kept ``KEYS_LIFETIME``
seconds, and a token whose ``kid`` the copy lacks makes it fetch again at most once per
``REFETCH_INTERVAL``: tokens with made-up key ids cannot make it fetch per request. Only
Ed25519 keys (kty OKP) for signing are taken; anything else in the set is ignored.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import ed25519
from .errors import KeysUnavailable

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

#: The largest key set read, in bytes; a longer answer is refused unread beyond that.
MAX_KEY_SET_BYTES = 64 * 1024
#: The most keys taken from one set (a current secret and a few previous ones).
MAX_KEYS = 32
#: Seconds one fetch may wait on the network (connecting, and each read).
FETCH_TIMEOUT = 3.0
#: Seconds a fetched key set is used before it is fetched again.
KEYS_LIFETIME = 300
#: The least time, in seconds, between two fetches caused by unknown key ids or failures.
REFETCH_INTERVAL = 30
_MAX_KID_CHARS = 64

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
        return None  # the 3xx is then an error: keys come from the configured URL only


class RemoteKeys:
    """The key set at one URL, fetched when needed, shared by every thread of a process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects)
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at = -float("inf")  # when the keys in hand were fetched
        self._tried_at = -float("inf")  # when a fetch was last started
        self._lock = threading.Lock()

    def key(self, kid: str) -> Ed25519PublicKey | None:
        """The public key of ``kid``, fetching the set when it is stale or lacks the kid
        (at most once per REFETCH_INTERVAL); None when the set has no such key.
        KeysUnavailable (503) when no key set could ever be fetched."""
        with self._lock:
            now = time.monotonic()
            stale = now - self._fetched_at >= KEYS_LIFETIME
            if (stale or kid not in self._keys) and now - self._tried_at >= REFETCH_INTERVAL:
                self._tried_at = now
                self._fetch(now)
            if not self._keys:
                raise KeysUnavailable()
            return self._keys.get(kid)

    def _fetch(self, now: float) -> None:
        # A failed fetch keeps the keys in hand (a restarting issuer must not lock every
        # user out); its cause goes to the log with the URL, which holds no secret.
        try:
            with self._opener.open(self.url, timeout=FETCH_TIMEOUT) as response:
                body = response.read(MAX_KEY_SET_BYTES + 1)
            if len(body) > MAX_KEY_SET_BYTES:
                raise KeySetError(f"the answer is over {MAX_KEY_SET_BYTES} bytes")
            self._keys = parse_key_set(json.loads(body))
            self._fetched_at = now
        except (OSError, http.client.HTTPException, ValueError, RecursionError) as exc:
            reason = exc if isinstance(exc, KeySetError) else type(exc).__name__
            logger.warning("could not fetch the key set at %s: %s", self.url, reason)

    def __repr__(self) -> str:
        return f"RemoteKeys({self.url!r}, {len(self._keys)} keys)"
