"""Keys: the HMAC keys derived from the one configured secret (signing, security stamps)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

ACCESS_LABEL = b"access"
REFRESH_LABEL = b"refresh"
KEY_ID_LABEL = b"key-id"
STAMP_LABEL = b"security-stamp"


def derive_key(secret: bytes, label: bytes) -> bytes:
    """HMAC-SHA256(key=secret, msg=label): the seed design's derivation, verbatim.

    Distinct labels give unrelated keys, so a token signed for one purpose can never verify
    for the other, and an outside verifier needs only the secret and this formula.
    """
    return hmac.new(secret, label, hashlib.sha256).digest()


@dataclass(frozen=True)
class SigningKeys:
    """The access-token and refresh-token keys of one secret, and the secret's key id.

    The key id (the ``kid`` header) names the secret generation that signed a token, so
    tokens of a previous secret keep verifying during a rotation. It is derived like the
    keys, so it tells nothing about the secret.
    """

    access: bytes
    refresh: bytes
    kid: str

    @classmethod
    def from_secret(cls, secret: bytes) -> SigningKeys:
        kid = base64.urlsafe_b64encode(derive_key(secret, KEY_ID_LABEL)[:9]).decode("ascii")
        return cls(
            access=derive_key(secret, ACCESS_LABEL),
            refresh=derive_key(secret, REFRESH_LABEL),
            kid=kid,
        )

    def __repr__(self) -> str:  # never print key material
        return f"SigningKeys(kid={self.kid!r}, access=<hidden>, refresh=<hidden>)"


class StampKeys:
    """What turns a user's security stamp into what a session keeps: an HMAC under a key
    derived from the secret, so the stamp itself (often a password hash) never reaches
    Redis, and someone who reads Redis learns nothing of it.

    One key per secret generation, the current one first: a digest made under a previous
    secret still matches during a secret rotation, and the store keeps the current one.
    """

    def __init__(self, secrets: Sequence[bytes]) -> None:
        self._keys = tuple(derive_key(secret, STAMP_LABEL) for secret in secrets)

    def digests(self, user_id: str, stamp: str) -> tuple[str, ...]:
        """The stamp's digest under every secret, the current one first. The user id is
        part of the message (length first), so equal stamps of two users differ."""
        uid = user_id.encode("utf-8")
        message = len(uid).to_bytes(4, "big") + uid + stamp.encode("utf-8")
        return tuple(
            base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest())
            .rstrip(b"=")
            .decode("ascii")
            for key in self._keys
        )

    def __repr__(self) -> str:  # never print key material
        return f"StampKeys(<{len(self._keys)} hidden>)"
