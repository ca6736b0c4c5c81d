"""Signing keys: two independent HMAC keys derived from the one configured secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

ACCESS_LABEL = b"access"
REFRESH_LABEL = b"refresh"
KEY_ID_LABEL = b"key-id"


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
