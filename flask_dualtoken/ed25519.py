"""Ed25519: the access-token signing key derived from the secret, and its public JWK.

With ``DUALTOKEN_ACCESS_ALGORITHM = "EdDSA"`` access tokens are signed with an Ed25519
key whose 32-byte private seed is HMAC-SHA256(key=secret, msg=b"access-ed25519"), so other
services can verify them with the public key alone, without the power to mint them. The
seed is derived like every other key: still one secret and one rotation procedure (a
previous secret gives a previous public key, which still verifies), and the private key is
never stored anywhere. ``cryptography`` (the ``eddsa`` extra) is imported only here, and
only when the setting asks for it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from .keys import SigningKeys, derive_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

ED25519_LABEL = b"access-ed25519"
ALGORITHM = "EdDSA"
#: How long a verifier may cache the key set (Cache-Control max-age), in seconds. A new
#: secret must be published (as a previous one) at least this long before it signs.
JWKS_MAX_AGE = 300
INSTALL_HINT = "pip install 'flask-dualtoken[eddsa]'"


def available() -> bool:
    """Whether ``cryptography`` is installed, which EdDSA needs."""
    return find_spec("cryptography") is not None


def private_key(secret: bytes) -> Ed25519PrivateKey:
    """The access-token signing key of one secret: its seed is the secret's HMAC under the
    label ``access-ed25519``, so an outside party holding the secret could derive it, and
    nobody holding only the public key can."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(derive_key(secret, ED25519_LABEL))


@dataclass(frozen=True)
class AccessKeyPair:
    """One secret's Ed25519 access keys and its key id (the same ``kid`` as its HMAC keys,
    so a token names the secret generation that signed it whatever the algorithm)."""

    private: Ed25519PrivateKey
    public: Ed25519PublicKey
    kid: str

    @classmethod
    def from_secret(cls, secret: bytes) -> AccessKeyPair:
        key = private_key(secret)
        return cls(private=key, public=key.public_key(), kid=SigningKeys.from_secret(secret).kid)

    def jwk(self) -> dict[str, str]:
        """The public key as RFC 7517/RFC 8037 describe it; never the private part."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = self.public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii"),
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
        }

    def __repr__(self) -> str:  # never print key material
        return f"AccessKeyPair(kid={self.kid!r}, private=<hidden>)"


def key_set(pairs: list[AccessKeyPair]) -> dict[str, Any]:
    """A JWK Set of the public keys, the current one first, one per key id."""
    seen: set[str] = set()
    keys = []
    for pair in pairs:
        if pair.kid not in seen:
            seen.add(pair.kid)
            keys.append(pair.jwk())
    return {"keys": keys}
