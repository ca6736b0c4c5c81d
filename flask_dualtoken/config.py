"""Settings: one table of every DUALTOKEN_* key, read and validated once, at ``init_app``.

``SETTINGS`` is the only list of settings: the known keys, the defaults, the parsing into
the frozen ``Settings`` and the docs' reference table (``scripts/reference.py``) all come
from it, so a key cannot be accepted and then ignored. A bad setting must stop the app at
start-up with a message naming the key, never surface later as a 500 on some request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from functools import partial
from types import MappingProxyType
from typing import Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit

from redis import Redis
from redis.cluster import RedisCluster

from . import ed25519, metrics, tracing
from .connection import REDIS_SCHEMES, UrlError, check_url, redact_url
from .metrics import Metrics
from .remote_keys import KeySetError, parse_key_set
from .tracing import Tracing

MIN_SECRET_BYTES = 32
_GENERATE = "python -m flask_dualtoken gen-secret"
_GENERATE_ANYWHERE = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'
GENERATE_SECRET_HINT = f"generate one with: {_GENERATE} (or {_GENERATE_ANYWHERE})"
#: The highest DUALTOKEN_MAX_SESSIONS: the session list walks at most this many sessions.
MAX_SESSIONS_CAP = 1000
#: The longest DUALTOKEN_INTROSPECTION_CACHE_SECONDS: beyond it, asking is hardly worth it.
MAX_INTROSPECTION_CACHE_SECONDS = 300

#: Where tokens travel: JSON bodies and ``Authorization``, cookies, or either per client.
TokenLocation = Literal["headers", "cookies", "both"]
TOKEN_LOCATIONS: tuple[TokenLocation, ...] = get_args(TokenLocation)
SameSite = Literal["Strict", "Lax"]
SAMESITE_VALUES: tuple[SameSite, ...] = get_args(SameSite)
#: What an access token of an ended session meets: refused within milliseconds ("push"),
#: at its next request ("strict"), or only at its expiry ("expiry").
Revocation = Literal["push", "strict", "expiry"]
REVOCATION_MODES: tuple[Revocation, ...] = get_args(Revocation)
#: How access tokens are signed: HMAC under the access key, or Ed25519 (keys.py, ed25519.py).
AccessAlgorithm = Literal["HS256", "EdDSA"]
ACCESS_ALGORITHMS: tuple[AccessAlgorithm, ...] = get_args(AccessAlgorithm)


class ConfigError(RuntimeError):
    """A DUALTOKEN_* setting is missing or invalid; raised by ``init_app``."""


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one app. Durations are whole seconds.

    Each field is filled by exactly one entry of ``SETTINGS``.
    """

    secret: bytes
    redis_url: str
    redis_client: Redis | RedisCluster | None
    access_expires: int
    refresh_expires: int
    session_max_age: int
    reuse_grace: int
    url_prefix: str
    key_prefix: str
    issuer: str | None
    audience: str | None
    leeway: int
    #: Seconds since the last login that ``@jwt_required(fresh=True)`` accepts.
    fresh_max_age: int
    #: Seconds since the last login that ending another session or every session needs;
    #: 0: no such need.
    session_admin_fresh: int
    revocation: Revocation
    #: Push revocation's heartbeat, in seconds (float): the listener's proof of being heard.
    revocation_heartbeat: float
    login_max_attempts: int
    login_max_attempts_per_address: int
    login_window: int
    max_sessions: int
    #: Verify-only secrets of earlier generations, newest first.
    previous_secrets: tuple[bytes, ...]
    #: "HS256" (only holders of the secret verify) or "EdDSA" (anyone with the JWKS does).
    access_algorithm: AccessAlgorithm
    #: A verify-only app's source of public keys: the issuing app's JWK Set URL...
    jwks_url: str | None
    #: ...or its keys, given here: Ed25519 public keys by key id (typed Any, as the
    #: cryptography package that defines them is optional).
    public_keys: Mapping[str, Any] | None
    #: A verify-only app's question to the issuing app, per request: its RFC 7662 URL...
    introspection_url: str | None
    #: ...and this app's client id and secret there (both set with the URL, or neither).
    introspection_client_id: str | None
    introspection_client_secret: bytes | None
    #: Seconds an answer of the introspection URL is kept; 0: asked at every request.
    introspection_cache_seconds: int
    #: RFC 7662 introspection clients, {client_id: secret}; empty: no introspection route.
    introspection_clients: Mapping[str, bytes]
    #: Introspections one authenticated client may ask per window; 0: no limit.
    introspection_max_requests: int
    introspection_window: int
    token_cache_size: int
    openapi: bool
    #: Where tokens travel: "headers" (JSON bodies and Authorization), "cookies", "both".
    token_location: TokenLocation
    #: In cookie mode, the access token in an HttpOnly cookie (else in the JSON body).
    access_cookie: bool
    cookie_secure: bool
    cookie_domain: str | None
    cookie_samesite: SameSite
    csrf_header: str
    #: This app's Prometheus metrics, or None: no metrics (DUALTOKEN_METRICS).
    metrics: Metrics | None
    #: This app's OpenTelemetry spans, or None: no spans (DUALTOKEN_TRACING).
    tracing: Tracing | None

    def __repr__(self) -> str:
        """No secret and no Redis password: settings end up in tracebacks, debuggers and
        error reports."""
        shown = []
        for item in fields(self):
            value: Any = getattr(self, item.name)
            if item.name == "secret":
                value = _Hidden()
            elif item.name == "previous_secrets":
                value = tuple(_Hidden() for _ in value)
            elif item.name == "introspection_clients":
                value = {client_id: _Hidden() for client_id in value}
            elif item.name == "introspection_client_secret" and value is not None:
                value = _Hidden()
            elif item.name == "redis_url":
                value = redact_url(value)
            elif item.name == "redis_client" and value is not None:
                value = _Hidden(type(value).__name__)
            shown.append(f"{item.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    # Where tokens may travel, as the settings allow it; ``transport`` holds each request
    # and answer to it (and its docstring tells the three locations side by side).

    @property
    def verify_only(self) -> bool:
        """An app that verifies another app's EdDSA access tokens: no secret, no store, no
        routes (DUALTOKEN_JWKS_URL or DUALTOKEN_PUBLIC_KEYS)."""
        return self.jwks_url is not None or self.public_keys is not None

    @property
    def asks_introspection(self) -> bool:
        """A verify-only app that asks the issuing app about each token's session
        (DUALTOKEN_INTROSPECTION_URL)."""
        return self.introspection_url is not None

    @property
    def cookies_enabled(self) -> bool:
        """Whether tokens may travel in cookies: "cookies" or "both"."""
        return self.token_location != "headers"  # noqa: S105 - a place, not a secret

    @property
    def headers_enabled(self) -> bool:
        """Whether tokens may travel in JSON bodies and headers: "headers" or "both"."""
        return self.token_location != "cookies"  # noqa: S105 - a place, not a secret

    @property
    def transport_per_request(self) -> bool:
        """With "both", each client gets its tokens where it asked for them."""
        return self.token_location == "both"  # noqa: S105 - a place, not a secret

    @property
    def access_from_cookie(self) -> bool:
        """Whether ``@jwt_required`` reads the access token from its cookie."""
        return self.cookies_enabled and self.access_cookie

    @property
    def access_from_header(self) -> bool:
        """Whether ``@jwt_required`` reads an ``Authorization: Bearer`` header."""
        return self.headers_enabled or not self.access_cookie


class _Hidden:
    def __init__(self, what: str = "hidden") -> None:
        self._what = what

    def __repr__(self) -> str:
        return f"<{self._what}>"


#: A parser: (key, raw config value) -> the typed ``Settings`` value, or ConfigError naming
#: the key.
Parse = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Setting:
    """One DUALTOKEN_* key: the ``Settings`` field it fills, its default, what it means (in
    Markdown, for the docs' reference table) and the parser that validates it."""

    key: str
    field: str
    default: Any
    help: str
    parse: Parse
    #: A Flask key read when this one is unset or None (the secret falls back to SECRET_KEY).
    fallback: str | None = None


# Parsers. Each takes the key (for its message) and the raw value.


def _secret(key: str, value: Any) -> bytes:
    if value is None or value == "" or value == b"":
        raise ConfigError(
            f"{key} (or SECRET_KEY) is not set. Set it to a random value of at "
            f"least {MIN_SECRET_BYTES} bytes; {GENERATE_SECRET_HINT}"
        )
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes):
        raise ConfigError(f"{key} must be str or bytes, not {type(value).__name__}")
    if len(value) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{key} is {len(value)} bytes; at least {MIN_SECRET_BYTES} are "
            f"required; {GENERATE_SECRET_HINT}"
        )
    return value


def _previous_secrets(key: str, value: Any) -> tuple[bytes, ...]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key} must be a list of secrets (newest first), got {value!r:.40}")
    return tuple(_secret(f"{key}[{i}]", item) for i, item in enumerate(value))


def _access_algorithm(key: str, value: Any) -> AccessAlgorithm:
    algorithm = _choice(key, value, choices=ACCESS_ALGORITHMS)
    if algorithm == ed25519.ALGORITHM and not ed25519.available():
        raise ConfigError(
            f"{key} = {algorithm!r} signs access tokens with Ed25519, which needs the "
            f"'cryptography' package: {ed25519.INSTALL_HINT}"
        )
    return algorithm


_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _pinned_url(key: str, value: Any, *, example: str) -> str | None:
    # https only (plain http on loopback, for development and tests): whoever can change
    # the answer decides which tokens are valid, and the introspection URL gets our client
    # secret.
    if value is None:
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if (
        parts is None
        or not parts.hostname
        or parts.username is not None
        or parts.fragment
        or not (
            parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
        )
    ):
        raise ConfigError(
            f"{key} must be the issuing app's {example} "
            f"(http only on 127.0.0.1, ::1 or localhost); got {value!r:.80}"
        )
    return str(value)


def _public_keys(key: str, value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not ed25519.available():
        raise ConfigError(f"{key} holds Ed25519 keys, which need {ed25519.INSTALL_HINT}")
    try:
        return MappingProxyType(parse_key_set(value))
    except KeySetError as exc:
        raise ConfigError(f"{key} must be the issuing app's JWK Set: {exc}") from None


_CLIENT_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _client_id(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _CLIENT_ID.fullmatch(value):
        raise ConfigError(
            f"{key} must be a client id of 1-64 letters, digits, '_', '.' or '-' (one of "
            f"the issuing app's DUALTOKEN_INTROSPECTION_CLIENTS); got {value!r:.40}"
        )
    return value


def _client_secret(key: str, value: Any) -> bytes | None:
    # As long as the issuing app requires of its clients' secrets; never shown.
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes) or len(value) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{key} must be the client's secret (str or bytes) of at least "
            f"{MIN_SECRET_BYTES} bytes, as the issuing app's DUALTOKEN_INTROSPECTION_CLIENTS "
            f"holds it; {GENERATE_SECRET_HINT}"
        )
    return value


def _clients(key: str, value: Any) -> Mapping[str, bytes]:
    # Secrets as long as ours: guessing one must be as hopeless as guessing the secret.
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{key} must be a dict {{client_id: secret}}, got {type(value).__name__}"
        )
    clients = {}
    for client_id, secret in value.items():
        if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
            raise ConfigError(
                f"{key}: client ids are 1-64 letters, digits, '_', '.' or '-'; "
                f"got {client_id!r:.40}"
            )
        clients[client_id] = _secret(f"{key}[{client_id!r}]", secret)
    return MappingProxyType(clients)


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be True or False, got {value!r}")
    return value


def _count(key: str, value: Any, *, maximum: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < 0
        or (maximum is not None and value > maximum)
    ):
        bounds = ">= 0" if maximum is None else f"between 0 and {maximum}"
        raise ConfigError(f"{key} must be an int {bounds} (0 turns the limit off), got {value!r}")
    return value


def _seconds(key: str, value: Any, *, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if seconds != int(seconds):
            raise ConfigError(f"{key} must be a whole number of seconds, got {value!r}")
        value = int(seconds)
    elif isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"{key} must be an int (seconds) or a timedelta, not {type(value).__name__}"
        )
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ConfigError(f"{key} must be {bounds} seconds, got {value}")
    return int(value)


def _interval(key: str, value: Any, *, minimum: float, maximum: float) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"{key} must be a number of seconds or a timedelta, not {type(value).__name__}"
        )
    if not minimum <= value <= maximum:  # also refuses NaN
        raise ConfigError(f"{key} must be between {minimum} and {maximum} seconds, got {value}")
    return float(value)


def _redis_url(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty string")
    parts = urlsplit(value)
    if parts.scheme not in REDIS_SCHEMES:
        raise ConfigError(
            f"{key} has scheme {parts.scheme!r}; use one of "
            f"{', '.join(sorted(s + '://' for s in REDIS_SCHEMES))}"
        )
    try:
        check_url(value)
    except UrlError as exc:
        raise ConfigError(f"{key} {redact_url(value)!r}: {exc}") from None
    return value


def _redis_client(key: str, value: Any) -> Redis | RedisCluster | None:
    if value is not None and not isinstance(value, (Redis, RedisCluster)):
        raise ConfigError(
            f"{key} must be a redis.Redis (Sentinel's master_for gives one) or a "
            f"redis.cluster.RedisCluster client, not {type(value).__name__}"
        )
    return value


def _url_prefix(key: str, value: Any) -> str:
    if not isinstance(value, str) or (
        value and (not value.startswith("/") or value.endswith("/"))
    ):
        raise ConfigError(
            f"{key} must be a path like '/auth' (leading '/', no trailing '/'), "
            f"or '' for the root; got {value!r}"
        )
    return value


_KEY_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _key_prefix(key: str, value: Any) -> str:
    # Braces would break the per-user hash tag; spaces and control characters have no place
    # in a key namespace.
    if not isinstance(value, str) or not _KEY_PREFIX.fullmatch(value):
        raise ConfigError(
            f"{key} must be 1-64 characters of letters, digits, '_', '.', ':' "
            f"or '-'; got {value!r}"
        )
    return value


def _optional_text(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty string or None, got {value!r}")
    return value


_Choice = TypeVar("_Choice", bound=str)


def _choice(key: str, value: Any, *, choices: tuple[_Choice, ...]) -> _Choice:
    for choice in choices:
        if value == choice:
            return choice
    raise ConfigError(f"{key} must be one of {', '.join(map(repr, choices))}; got {value!r}")


_DOMAIN = re.compile(r"\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


def _cookie_domain(key: str, value: Any) -> str | None:
    # None keeps cookies host-only, which is what allows the __Host- prefix.
    if value is None:
        return None
    if not isinstance(value, str) or not _DOMAIN.fullmatch(value):
        raise ConfigError(
            f"{key} must be None (host-only cookies) or a domain such as "
            f"'example.com'; got {value!r}"
        )
    return value


_HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")


def _header_name(key: str, value: Any) -> str:
    # A header the browser sends on simple requests would be no CSRF proof at all.
    simple = {"accept", "accept-language", "content-language", "content-type", "range"}
    if (
        not isinstance(value, str)
        or not _HEADER_NAME.fullmatch(value)
        or value.lower() in simple
        or value.lower() in {"cookie", "authorization", "origin", "referer", "host"}
    ):
        raise ConfigError(
            f"{key} must be a custom header name such as 'X-CSRF-Token'; got {value!r}"
        )
    return value


def _metrics(key: str, value: Any) -> Metrics | None:
    # Unset: on when prometheus-client is installed; asked for, it must be.
    if value is None:
        return metrics.for_registry(metrics.default_registry()) if metrics.available() else None
    if value is False:
        return None
    if value is not True and not metrics.is_registry(value):
        raise ConfigError(
            f"{key} must be True, False, None (on when prometheus-client is installed) or a "
            f"prometheus_client CollectorRegistry; got {value!r:.80}"
        )
    if not metrics.available():
        raise ConfigError(
            f"{key} = True counts in Prometheus metrics, which need the 'prometheus-client' "
            f"package: {metrics.INSTALL_HINT}"
        )
    return metrics.for_registry(metrics.default_registry() if value is True else value)


def _tracing(key: str, value: Any) -> Tracing | None:
    # Unset: on when the OpenTelemetry API is installed; asked for, it must be.
    if value is None:
        return tracing.tracing_for() if tracing.available() else None
    if value is False:
        return None
    if value is not True and not tracing.is_provider(value):
        raise ConfigError(
            f"{key} must be True, False, None (on when opentelemetry-api is installed) or an "
            f"OpenTelemetry TracerProvider; got {value!r:.80}"
        )
    if not tracing.available():
        raise ConfigError(
            f"{key} = True makes OpenTelemetry spans, which need the 'opentelemetry-api' "
            f"package: {tracing.INSTALL_HINT}"
        )
    return tracing.tracing_for(None if value is True else value)


#: Every setting, in the order of the docs' table and of the ``Settings`` fields.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DUALTOKEN_SECRET_KEY",
        "secret",
        None,
        "the one secret, str or bytes, at least 32 bytes; defaults to Flask's `SECRET_KEY`",
        _secret,
        fallback="SECRET_KEY",
    ),
    Setting(
        "DUALTOKEN_REDIS_URL",
        "redis_url",
        "redis://localhost:6379/0",
        "`redis://`, `rediss://`, `unix://`; "
        "`redis+cluster://host:port[,host:port...]` (or `rediss+cluster://`) for Redis Cluster; "
        "`redis+sentinel://host:port[,host:port...]/service_name[/db]` for Sentinel; `memory://` "
        "is an in-process fakeredis (one process only; logs a warning). Credentials go in the "
        "URL as usual (`redis+cluster://user:pw@host:port`)",
        _redis_url,
    ),
    Setting(
        "DUALTOKEN_REDIS",
        "redis_client",
        None,
        "a ready client: `redis.Redis`, `redis.cluster.RedisCluster`, or "
        "Sentinel's `master_for(...)`; wins over the URL",
        _redis_client,
    ),
    Setting(
        "DUALTOKEN_ACCESS_EXPIRES",
        "access_expires",
        15 * 60,
        "AT lifetime, seconds or `timedelta`",
        _seconds,
    ),
    Setting(
        "DUALTOKEN_REFRESH_EXPIRES",
        "refresh_expires",
        timedelta(days=14),
        "RT idle lifetime: each rotation issues an RT valid this long (capped by the "
        "session's end)",
        _seconds,
    ),
    Setting(
        "DUALTOKEN_SESSION_MAX_AGE",
        "session_max_age",
        timedelta(days=30),
        "absolute session lifetime; rotation never extends it",
        _seconds,
    ),
    Setting(
        "DUALTOKEN_REUSE_GRACE",
        "reuse_grace",
        30,
        "seconds after a rotation during which the previous pair gets the same new pair "
        "back; 0 disables",
        partial(_seconds, minimum=0),
    ),
    Setting(
        "DUALTOKEN_URL_PREFIX",
        "url_prefix",
        "/auth",
        "blueprint prefix; `''` mounts the routes at the root",
        _url_prefix,
    ),
    Setting(
        "DUALTOKEN_KEY_PREFIX",
        "key_prefix",
        "dualtoken",
        "Redis key namespace",
        _key_prefix,
    ),
    Setting(
        "DUALTOKEN_ISSUER",
        "issuer",
        None,
        "when set, written as `iss` and required on every token",
        _optional_text,
    ),
    Setting(
        "DUALTOKEN_AUDIENCE",
        "audience",
        None,
        "when set, written as `aud` and required on every token",
        _optional_text,
    ),
    Setting(
        "DUALTOKEN_LEEWAY",
        "leeway",
        0,
        "seconds of clock leeway for `exp`/`iat`/`nbf` (at most 300)",
        partial(_seconds, minimum=0, maximum=300),
    ),
    Setting(
        "DUALTOKEN_FRESH_MAX_AGE",
        "fresh_max_age",
        300,
        "seconds since the user last proved who they are (`auth_time`) that "
        "`@jwt_required(fresh=True)` accepts",
        _seconds,
    ),
    Setting(
        "DUALTOKEN_SESSION_ADMIN_FRESH",
        "session_admin_fresh",
        0,
        "when > 0, `DELETE {prefix}/sessions/<sid>` for another session and `POST "
        "{prefix}/logout-all` need a login (`auth_time`) within this many seconds, else 401 "
        "`insufficient_user_authentication`; 0 turns it off",
        partial(_seconds, minimum=0),
    ),
    Setting(
        "DUALTOKEN_REVOCATION",
        "revocation",
        "push",
        "what an access token of an ended session meets: `push` (refused on every process "
        "within milliseconds, no Redis call per request), `strict` (one Redis read per "
        "request; 503 while Redis is down) or `expiry` (valid until it expires)",
        partial(_choice, choices=REVOCATION_MODES),
    ),
    Setting(
        "DUALTOKEN_REVOCATION_HEARTBEAT",
        "revocation_heartbeat",
        0.5,
        "push mode: seconds between the listener's pings (0.01-30); twice this bounds how "
        "long a silently failed subscription goes unnoticed",
        partial(_interval, minimum=0.01, maximum=30.0),
    ),
    Setting(
        "DUALTOKEN_LOGIN_MAX_ATTEMPTS",
        "login_max_attempts",
        5,
        "failed logins per username per window before 429; 0 turns it off",
        _count,
    ),
    Setting(
        "DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS",
        "login_max_attempts_per_address",
        50,
        "failed logins per client address per window (failed introspection client "
        "authentications too, on a counter of their own); 0 turns it off",
        _count,
    ),
    Setting(
        "DUALTOKEN_LOGIN_WINDOW",
        "login_window",
        300,
        "seconds; the window opens with the first failed attempt",
        _seconds,
    ),
    Setting(
        "DUALTOKEN_MAX_SESSIONS",
        "max_sessions",
        100,
        "live sessions per user, at most 1000; a login beyond it ends the user's oldest "
        "session (signal `session_revoked`, reason `session_limit`). 0: no cap (the session "
        "list then shows the newest 100)",
        partial(_count, maximum=MAX_SESSIONS_CAP),
    ),
    Setting(
        "DUALTOKEN_PREVIOUS_SECRET_KEYS",
        "previous_secrets",
        (),
        "verify-only secrets of earlier generations, newest first, for rotating the secret",
        _previous_secrets,
    ),
    Setting(
        "DUALTOKEN_ACCESS_ALGORITHM",
        "access_algorithm",
        "HS256",
        '`"HS256"` (HMAC under the access key: whoever verifies can also mint) or `"EdDSA"` '
        "(Ed25519 under a key derived from the secret; other services verify with the public "
        "keys at `{prefix}/jwks.json`; needs the `eddsa` extra). Refresh tokens stay HS256",
        _access_algorithm,
    ),
    Setting(
        "DUALTOKEN_JWKS_URL",
        "jwks_url",
        None,
        "makes this app verify-only: it checks the EdDSA access tokens of the app at this "
        "URL (its `{prefix}/jwks.json`, https) with the keys fetched from there, and holds no "
        'secret, no store and no routes. Set `DUALTOKEN_ACCESS_ALGORITHM = "EdDSA"` too',
        partial(_pinned_url, example="key set URL, https://host/auth/jwks.json"),
    ),
    Setting(
        "DUALTOKEN_PUBLIC_KEYS",
        "public_keys",
        None,
        "verify-only as with `DUALTOKEN_JWKS_URL`, with the issuing app's JWK Set given here "
        "(a dict, the answer of its `{prefix}/jwks.json`) instead of fetched",
        _public_keys,
    ),
    Setting(
        "DUALTOKEN_INTROSPECTION_URL",
        "introspection_url",
        None,
        "verify-only apps: the issuing app's `{prefix}/introspect` (https), asked about every "
        "access token after its signature checks (RFC 7662, as "
        "`DUALTOKEN_INTROSPECTION_CLIENT_ID`), so that an ended session is refused (401 "
        "`session_revoked`); 503 `introspection_unavailable` while it cannot answer",
        partial(_pinned_url, example="introspection URL, https://host/auth/introspect"),
    ),
    Setting(
        "DUALTOKEN_INTROSPECTION_CLIENT_ID",
        "introspection_client_id",
        None,
        "with `DUALTOKEN_INTROSPECTION_URL`: this app's client id in the issuing app's "
        "`DUALTOKEN_INTROSPECTION_CLIENTS`",
        _client_id,
    ),
    Setting(
        "DUALTOKEN_INTROSPECTION_CLIENT_SECRET",
        "introspection_client_secret",
        None,
        "with `DUALTOKEN_INTROSPECTION_URL`: that client's secret (at least 32 bytes; never "
        "in a repr or a log line)",
        _client_secret,
    ),
    Setting(
        "DUALTOKEN_INTROSPECTION_CACHE_SECONDS",
        "introspection_cache_seconds",
        0,
        "with `DUALTOKEN_INTROSPECTION_URL`: seconds (at most 300) an answer is kept, never "
        "past the token's expiry, so that an ended session is still accepted that long; 0 "
        "asks at every request",
        partial(_seconds, minimum=0, maximum=MAX_INTROSPECTION_CACHE_SECONDS),
    ),
    Setting(
        "DUALTOKEN_INTROSPECTION_CLIENTS",
        "introspection_clients",
        {},
        "`{client_id: secret}` of the services allowed to ask `POST {prefix}/introspect` "
        "(RFC 7662) about a token, with HTTP Basic; secrets of at least 32 bytes. Empty: the "
        "route answers 404",
        _clients,
    ),
    Setting(
        "DUALTOKEN_INTROSPECTION_MAX_REQUESTS",
        "introspection_max_requests",
        6000,
        "introspections one authenticated client may ask per `DUALTOKEN_INTROSPECTION_WINDOW`"
        " (all its processes together), then 429 `too_many_requests` with `Retry-After`; 0 "
        "turns the limit off",
        _count,
    ),
    Setting(
        "DUALTOKEN_INTROSPECTION_WINDOW",
        "introspection_window",
        60,
        "seconds; a client's window opens with its first introspection",
        _seconds,
    ),
    Setting(
        "DUALTOKEN_TOKEN_CACHE_SIZE",
        "token_cache_size",
        4096,
        "access tokens this process remembers as verified; 0 turns the memo off",
        _count,
    ),
    Setting(
        "DUALTOKEN_OPENAPI",
        "openapi",
        True,
        "serve the OpenAPI 3.1 description of the routes at `{prefix}/openapi.json`",
        _flag,
    ),
    Setting(
        "DUALTOKEN_TOKEN_LOCATION",
        "token_location",
        "headers",
        '`"headers"` (tokens in JSON bodies, the AT in `Authorization`), `"cookies"` '
        '(HttpOnly cookies and a CSRF header, for browsers) or `"both"` (a login asks for '
        "cookies with `X-Token-Transport: cookies`)",
        partial(_choice, choices=TOKEN_LOCATIONS),
    ),
    Setting(
        "DUALTOKEN_ACCESS_COOKIE",
        "access_cookie",
        True,
        "in cookie mode, the AT in an HttpOnly cookie; `False` puts it in the JSON body "
        "instead, for a SPA that keeps it in memory",
        _flag,
    ),
    Setting(
        "DUALTOKEN_COOKIE_SECURE",
        "cookie_secure",
        True,
        "`Secure` cookies with the `__Host-`/`__Secure-` prefixes; `False` only for "
        "plain-HTTP development in browsers that refuse secure cookies on `localhost`",
        _flag,
    ),
    Setting(
        "DUALTOKEN_COOKIE_DOMAIN",
        "cookie_domain",
        None,
        "host-only cookies (which the `__Host-` prefix needs); set a domain to share them "
        "with subdomains",
        _cookie_domain,
    ),
    Setting(
        "DUALTOKEN_COOKIE_SAMESITE",
        "cookie_samesite",
        "Strict",
        " or ".join(f'`"{value}"`' for value in SAMESITE_VALUES),
        partial(_choice, choices=SAMESITE_VALUES),
    ),
    Setting(
        "DUALTOKEN_CSRF_HEADER",
        "csrf_header",
        "X-CSRF-Token",
        "the header that carries the CSRF token on state-changing cookie requests",
        _header_name,
    ),
    Setting(
        "DUALTOKEN_METRICS",
        "metrics",
        None,
        "Prometheus metrics (see Operations: metrics and traces). Unset: on when "
        "`prometheus-client` is installed (the `metrics` extra); `True`: on, and a start-up "
        "error without it; `False`: off; or a `prometheus_client.CollectorRegistry` to count "
        "in instead of the default registry",
        _metrics,
    ),
    Setting(
        "DUALTOKEN_TRACING",
        "tracing",
        None,
        "OpenTelemetry spans around the flows and the store's scripts. Unset: on when "
        "`opentelemetry-api` is installed (the `tracing` extra; no-op without an SDK); "
        "`True`: on, and a start-up error without it; `False`: off; or a `TracerProvider` to "
        "use instead of the global one",
        _tracing,
    ),
)
KNOWN_KEYS = frozenset(setting.key for setting in SETTINGS)


def load_settings(config: Mapping[str, Any]) -> Settings:
    """Validate the app's config; raise ConfigError naming the first bad key."""
    unknown = sorted(k for k in config if k.startswith("DUALTOKEN_") and k not in KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"Unknown setting {unknown[0]}: flask-dualtoken knows "
            f"{', '.join(sorted(KNOWN_KEYS))}. A typo here would silently weaken auth."
        )
    values: dict[str, Any] = {}
    verify_only = any(config.get(k) is not None for k in _VERIFY_ONLY_KEYS)
    for setting in SETTINGS:
        if verify_only and setting.field == "secret":
            values["secret"] = b""  # checked below: a verify-only app holds no secret
            continue
        value = config.get(setting.key, setting.default)
        if value is None and setting.fallback is not None:
            value = config.get(setting.fallback)
        values[setting.field] = setting.parse(setting.key, value)
    settings = Settings(**values)
    if verify_only:
        _check_verify_only(config, settings)
    _check_remote_introspection(config, settings)
    return settings


_VERIFY_ONLY_KEYS = ("DUALTOKEN_JWKS_URL", "DUALTOKEN_PUBLIC_KEYS")


def _check_verify_only(config: Mapping[str, Any], settings: Settings) -> None:
    """A verify-only app verifies EdDSA access tokens in headers, and must not be able to
    mint them: it holds no secret (Flask's SECRET_KEY, for its own sessions, is fine)."""
    if settings.jwks_url is not None and settings.public_keys is not None:
        raise ConfigError("Set DUALTOKEN_JWKS_URL or DUALTOKEN_PUBLIC_KEYS, not both.")
    given = " and ".join(k for k in _VERIFY_ONLY_KEYS if config.get(k) is not None)
    for key in ("DUALTOKEN_SECRET_KEY", "DUALTOKEN_PREVIOUS_SECRET_KEYS"):
        if config.get(key):
            raise ConfigError(
                f"{key} is set, but {given} makes this app verify-only: it must not hold the "
                "secret, which can mint tokens. Remove it (or the verify-only setting)."
            )
    if settings.access_algorithm != ed25519.ALGORITHM:
        raise ConfigError(
            f"{given} verifies EdDSA access tokens: set DUALTOKEN_ACCESS_ALGORITHM = 'EdDSA' "
            "(as on the issuing app)."
        )
    if config.get("DUALTOKEN_REVOCATION", "expiry") != "expiry":
        raise ConfigError(
            f"DUALTOKEN_REVOCATION is {settings.revocation!r}, but {given} makes this app "
            "verify-only: without the store it cannot know that a session ended, and its "
            "access tokens are good until they expire. Set it to 'expiry' or leave it out "
            "(DUALTOKEN_INTROSPECTION_URL asks the issuing app about every token instead)."
        )
    if settings.token_location != "headers":  # noqa: S105 - a place, not a secret
        raise ConfigError(
            f"{given}: a verify-only app reads access tokens from the Authorization header; "
            "set DUALTOKEN_TOKEN_LOCATION = 'headers'."
        )


_REMOTE_INTROSPECTION_KEYS = (
    "DUALTOKEN_INTROSPECTION_URL",
    "DUALTOKEN_INTROSPECTION_CLIENT_ID",
    "DUALTOKEN_INTROSPECTION_CLIENT_SECRET",
)


def _check_remote_introspection(config: Mapping[str, Any], settings: Settings) -> None:
    """The URL, the client id and its secret come together, in a verify-only app only (an
    app with the store asks the store itself), and the cache goes with them."""
    given = [k for k in _REMOTE_INTROSPECTION_KEYS if config.get(k) is not None]
    if settings.introspection_cache_seconds and not settings.asks_introspection:
        given.append("DUALTOKEN_INTROSPECTION_CACHE_SECONDS")
    if not given:
        return
    if not settings.verify_only:
        raise ConfigError(
            f"{given[0]} is for a verify-only app (DUALTOKEN_JWKS_URL or "
            "DUALTOKEN_PUBLIC_KEYS), which asks the issuing app whether a session is alive; "
            "this app has the store and knows it. Remove it (and its companions)."
        )
    missing = [k for k in _REMOTE_INTROSPECTION_KEYS if config.get(k) is None]
    if missing:
        raise ConfigError(
            f"{given[0]} is set but {' and '.join(missing)} is not: a verify-only app asks "
            "the issuing app's introspection URL as one of its DUALTOKEN_INTROSPECTION_CLIENTS,"
            " so it needs the URL, the client id and the client secret."
        )
