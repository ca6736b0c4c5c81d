"""Tokens: build claim sets, sign them, and parse-and-verify a token exactly once.

Access and refresh tokens differ in three independent ways: the signing key (derived with
another label), the ``typ`` header, and their claims. Verification pins each kind's
algorithm, never reading it from the token (refresh tokens HS256; access tokens HS256, or
EdDSA with ``DUALTOKEN_ACCESS_ALGORITHM``), refuses every header parameter we do not
write ourselves (``jku``, ``jwk``, ``x5u``, ``kid``...), and checks each claim's type
before anything else reads it.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jwt
from jwt.types import Options

from . import ed25519
from .config import Settings
from .errors import (
    RefreshTokenExpired,
    RefreshTokenInvalid,
    TokenExpired,
    TokenInvalid,
)
from .keys import SigningKeys
from .limits import MAX_SUBJECT_CHARS, MAX_TOKEN_BYTES
from .remote_keys import RemoteKeys

#: The refresh tokens' algorithm, and the access tokens' by default.
ALGORITHM = "HS256"
ACCESS_TYP = "at+jwt"
REFRESH_TYP = "rt+jwt"

#: Claims the library owns; ``claims_loader`` may not set them.
RESERVED_CLAIMS = frozenset(
    {
        "sub",
        "role",
        "sid",
        "jti",
        "rti",
        "gen",
        "iat",
        "exp",
        "nbf",
        "iss",
        "aud",
        "typ",
        "kid",
        "auth_time",
        "amr",
    }
)
_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_HEADER = {"alg", "typ", "kid"}
#: What a verify-only app says when asked to sign or to end a session.
VERIFY_ONLY_REFUSAL = (
    "This app is verify-only (DUALTOKEN_JWKS_URL or DUALTOKEN_PUBLIC_KEYS): it verifies "
    "access tokens and cannot issue them or end sessions; the issuing app does."
)


def is_token_id(value: str) -> bool:
    """Whether a string has the shape of our session and token ids."""
    return _ID.fullmatch(value) is not None


def new_id() -> str:
    """A random 128-bit identifier for sessions and token ids."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class AccessToken:
    """A verified access token. ``rti`` is the id of the refresh token issued with it."""

    sub: str
    role: str
    sid: str
    jti: str
    rti: str
    exp: int
    claims: Mapping[str, Any]
    #: When the user last proved who they are; None in a token from before it was written.
    auth_time: int | None = None


@dataclass(frozen=True)
class RefreshToken:
    """A verified refresh token; ``gen`` is the session generation it was issued for."""

    sub: str
    sid: str
    jti: str
    gen: int
    exp: int


@dataclass(frozen=True)
class Grant:
    """What the store keeps for a pair: unsigned claim templates, and the generation and
    times the store chose.

    Templates are JSON text without ``gen``/``iat``/``exp``; signing the same grant twice
    gives byte-identical tokens (HMAC and Ed25519 signatures are deterministic), which is
    how a grace-window replay returns the very pair the first request got while Redis holds
    no bearer credential.
    """

    access_template: str
    refresh_template: str
    generation: int
    issued_at: int
    access_exp: int
    refresh_exp: int
    #: When the user last proved who they are (the login, or a re-authentication): kept
    #: by the session, the same in every pair until then (OIDC's auth_time).
    auth_time: int
    #: How (RFC 8176 values, such as "pwd"); empty when the app did not say.
    amr: tuple[str, ...] = ()


@dataclass(frozen=True)
class TokenPair:
    """A signed access/refresh pair, as returned by login, reissue and ``DualToken.issue``."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    user_id: str
    session_id: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of a successful login or reissue."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_expires_in": self.refresh_expires_in,
        }

    def __repr__(self) -> str:  # keep tokens out of logs and tracebacks
        return f"TokenPair(user_id={self.user_id!r}, session_id={self.session_id!r})"


class VerifiedTokens:
    """A bounded memo of access tokens this process has already verified.

    Keyed by the exact token text: the same text under the same key verifies the same
    way, so a hit needs only the time checks, which are redone on every hit. The memo
    belongs to one codec, so it is emptied whenever the keys change (a new secret means a
    new app configuration; a verify-only app keeps a token whose key the issuer has since
    unpublished until it expires). Oldest entries go first when full.
    """

    def __init__(self, size: int, leeway: int) -> None:
        self._size = size
        self._leeway = leeway
        self._entries: dict[str, tuple[AccessToken, float]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> AccessToken | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        verified, not_before = entry
        now = time.time()
        if not_before - self._leeway <= now < verified.exp + self._leeway:
            return verified
        return None  # outside its window: the full check gives the precise error

    def put(self, token: str, verified: AccessToken) -> None:
        claims = verified.claims
        not_before = max(float(claims["iat"]), float(claims.get("nbf") or claims["iat"]))
        with self._lock:
            if len(self._entries) >= self._size:
                del self._entries[next(iter(self._entries))]
            self._entries[token] = (verified, not_before)


class TokenCodec:
    """Signs and verifies the two token kinds of one app's settings."""

    def __init__(self, settings: Settings) -> None:
        self.access_algorithm = settings.access_algorithm
        #: A verify-only app's lookup of the public key of a key id (None: no such key).
        self._public_key: Callable[[str], Any] | None = None
        self._keys: SigningKeys | None = None
        self._by_kid: dict[str, SigningKeys] = {}
        self._access_signing: Any = None
        self._access_verifying: dict[str, Any] = {}
        self.access_key_pairs: list[ed25519.AccessKeyPair] = []
        if settings.jwks_url is not None:
            self._public_key = RemoteKeys(settings.jwks_url).key
        elif settings.public_keys is not None:
            self._public_key = settings.public_keys.get
        else:
            self._derive_keys(settings)
        #: The public JWK Set of {prefix}/jwks.json; None with HS256, which publishes no key.
        self.jwks = ed25519.key_set(self.access_key_pairs) if self.access_key_pairs else None
        self._issuer = settings.issuer
        self._audience = settings.audience
        self._leeway = settings.leeway
        self._jwt = jwt.PyJWT()
        required = ["sub", "jti", "sid", "iat", "exp"]
        if settings.issuer is not None:
            required.append("iss")
        if settings.audience is not None:
            required.append("aud")
        self._options_exp: Options = {"require": required, "verify_signature": True}
        self._options_no_exp: Options = {**self._options_exp, "verify_exp": False}
        self._verified = (
            VerifiedTokens(settings.token_cache_size, settings.leeway)
            if settings.token_cache_size
            else None
        )

    def _derive_keys(self, settings: Settings) -> None:
        """The keys of an app that holds the secret: it signs, and verifies both kinds."""
        self._keys = SigningKeys.from_secret(settings.secret)
        # Verify-only keys of previous secrets, by key id; the current one wins a clash.
        self._by_kid = {k.kid: k for k in map(SigningKeys.from_secret, settings.previous_secrets)}
        self._by_kid[self._keys.kid] = self._keys
        # Access tokens: signed with the access key (HS256) or the Ed25519 key of the same
        # secret (EdDSA); verified with the same key or its public half, by key id.
        self._access_signing = self._keys.access
        self._access_verifying = {kid: keys.access for kid, keys in self._by_kid.items()}
        # The Ed25519 key pairs, the current one first (published at {prefix}/jwks.json).
        if settings.access_algorithm == ed25519.ALGORITHM:
            self.access_key_pairs = [
                ed25519.AccessKeyPair.from_secret(secret)
                for secret in (settings.secret, *settings.previous_secrets)
            ]
            self._access_signing = self.access_key_pairs[0].private
            self._access_verifying = {
                pair.kid: pair.public for pair in reversed(self.access_key_pairs)
            }

    # -- building -------------------------------------------------------------------------

    def access_template(
        self, *, sub: str, role: str, sid: str, jti: str, rti: str, extra: Mapping[str, Any]
    ) -> str:
        reserved = RESERVED_CLAIMS.intersection(extra)
        if reserved:
            raise ValueError(
                f"claims_loader returned reserved claim(s) {sorted(reserved)}; "
                "rename them, the library sets these itself"
            )
        claims: dict[str, Any] = {"sub": sub, "role": role, "sid": sid, "jti": jti, "rti": rti}
        claims.update(self._registered())
        claims.update(extra)
        try:
            return json.dumps(claims, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"claims_loader returned claims that are not JSON: {exc}") from exc

    def refresh_template(self, *, sub: str, sid: str, jti: str) -> str:
        claims: dict[str, Any] = {"sub": sub, "sid": sid, "jti": jti, **self._registered()}
        return json.dumps(claims, separators=(",", ":"))

    def _registered(self) -> dict[str, str]:
        claims = {}
        if self._issuer is not None:
            claims["iss"] = self._issuer
        if self._audience is not None:
            claims["aud"] = self._audience
        return claims

    def sign(self, grant: Grant, *, user_id: str, session_id: str) -> TokenPair:
        """Sign a grant; deterministic, so the same grant always yields the same pair."""
        if self._keys is None:
            raise RuntimeError(VERIFY_ONLY_REFUSAL)
        access = json.loads(grant.access_template)
        access.update(iat=grant.issued_at, exp=grant.access_exp, auth_time=grant.auth_time)
        if grant.amr:
            access["amr"] = list(grant.amr)
        refresh = json.loads(grant.refresh_template)
        refresh.update(gen=grant.generation, iat=grant.issued_at, exp=grant.refresh_exp)
        return TokenPair(
            access_token=self._jwt.encode(
                access,
                self._access_signing,
                algorithm=self.access_algorithm,
                headers={"typ": ACCESS_TYP, "kid": self._keys.kid},
            ),
            refresh_token=self._jwt.encode(
                refresh,
                self._keys.refresh,
                algorithm=ALGORITHM,
                headers={"typ": REFRESH_TYP, "kid": self._keys.kid},
            ),
            expires_in=grant.access_exp - grant.issued_at,
            refresh_expires_in=grant.refresh_exp - grant.issued_at,
            user_id=user_id,
            session_id=session_id,
        )

    # -- verifying --------------------------------------------------------------------------

    def decode_access(self, token: str, *, verify_exp: bool = True) -> AccessToken:
        """Verify an access token; expiry is skipped only for reissue and logout."""
        if verify_exp and self._verified is not None:
            hit = self._verified.get(token)
            if hit is not None:
                return hit
        verified = self._decode_access(token, verify_exp)
        if verify_exp and self._verified is not None:
            self._verified.put(token, verified)
        return verified

    def _decode_access(self, token: str, verify_exp: bool) -> AccessToken:
        claims = self._decode(token, ACCESS_TYP, verify_exp, TokenExpired)
        role = claims.get("role")
        rti = claims.get("rti")
        if not isinstance(role, str) or not isinstance(rti, str) or not _ID.fullmatch(rti):
            raise TokenInvalid("The access token is missing a required claim.")
        auth_time = claims.get("auth_time")
        if auth_time is not None and (type(auth_time) is not int or auth_time < 0):
            raise TokenInvalid("The access token has an invalid auth_time claim.")
        return AccessToken(
            sub=claims["sub"],
            role=role,
            sid=claims["sid"],
            jti=claims["jti"],
            rti=rti,
            exp=claims["exp"],
            claims=MappingProxyType(claims),  # read-only: the same object may be memoised
            auth_time=auth_time,
        )

    def decode_refresh(self, token: str, *, verify_exp: bool = True) -> RefreshToken:
        try:
            claims = self._decode(token, REFRESH_TYP, verify_exp, RefreshTokenExpired)
        except RefreshTokenExpired:
            raise
        except TokenInvalid:
            raise RefreshTokenInvalid() from None
        gen = claims.get("gen")
        if isinstance(gen, bool) or not isinstance(gen, int) or gen < 0:
            raise RefreshTokenInvalid()
        return RefreshToken(
            sub=claims["sub"], sid=claims["sid"], jti=claims["jti"], gen=gen, exp=claims["exp"]
        )

    def _access_key(self, token: str) -> tuple[str, Any]:
        """The key id an access token must name, and the key that verifies it."""
        if self._public_key is None:
            kid = self._signing_keys(token).kid
            return kid, self._access_verifying[kid]
        kid = self._unverified_kid(token)
        key = self._public_key(kid)  # a verify-only app's: may fetch (remote_keys)
        if key is None:
            raise TokenInvalid()
        return kid, key

    def _unverified_kid(self, token: str) -> str:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise TokenInvalid() from None
        if not isinstance(kid, str):
            raise TokenInvalid()
        return kid

    def _signing_keys(self, token: str) -> SigningKeys:
        if self._keys is None:
            raise TokenInvalid()  # a verify-only app holds no HMAC key
        if len(self._by_kid) == 1:
            return self._keys  # one secret: the header is checked after verification
        keys = self._by_kid.get(self._unverified_kid(token))
        if keys is None:
            raise TokenInvalid()
        return keys

    def _decode(
        self, token: str, typ: str, verify_exp: bool, expired: type[TokenInvalid]
    ) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_BYTES or not token.isascii():
            raise TokenInvalid()
        key: Any
        algorithm: str
        if typ == ACCESS_TYP:
            (kid, key), algorithm = self._access_key(token), self.access_algorithm
        else:
            keys = self._signing_keys(token)
            kid, key, algorithm = keys.kid, keys.refresh, ALGORITHM
        try:
            decoded = self._jwt.decode_complete(
                token,
                key,
                algorithms=[algorithm],
                options=self._options_exp if verify_exp else self._options_no_exp,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise expired() from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise TokenInvalid() from None
        header = decoded["header"]
        # Exactly the header we write: a key hint (jku, jwk, x5u, x5c) or crit from outside
        # is never honoured, typ keeps the two kinds apart, kid names a key we hold.
        if header.keys() != _HEADER or header["typ"] != typ or header["kid"] != kid:
            raise TokenInvalid()
        claims: dict[str, Any] = decoded["payload"]
        sub, sid, jti, exp = (claims.get(k) for k in ("sub", "sid", "jti", "exp"))
        if (
            not isinstance(sub, str)
            or not 0 < len(sub) <= MAX_SUBJECT_CHARS
            or not isinstance(sid, str)
            or not _ID.fullmatch(sid)
            or not isinstance(jti, str)
            or not _ID.fullmatch(jti)
            or isinstance(exp, bool)
            or not isinstance(exp, int)
        ):
            raise TokenInvalid()
        return claims
