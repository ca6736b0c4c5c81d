"""Signing keys: two independent HMAC keys derived from the one configured secret."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

ACCESS_LABEL = b"access"
REFRESH_LABEL = b"refresh"


def derive_key(secret: bytes, label: bytes) -> bytes:
    """HMAC-SHA256(key=secret, msg=label): the seed design's derivation, verbatim.

    Distinct labels give unrelated keys, so a token signed for one purpose can never verify
    for the other, and an outside verifier needs only the secret and this formula.
    """
    return hmac.new(secret, label, hashlib.sha256).digest()


@dataclass(frozen=True)
class SigningKeys:
    """The access-token and refresh-token keys of one secret."""

    access: bytes
    refresh: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> SigningKeys:
        return cls(
            access=derive_key(secret, ACCESS_LABEL), refresh=derive_key(secret, REFRESH_LABEL)
        )

    def __repr__(self) -> str:  # never print key material
        return "SigningKeys(access=<hidden>, refresh=<hidden>)"
