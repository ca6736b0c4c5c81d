"""Settings: every DUALTOKEN_* key read and validated once, at ``init_app``.

A bad setting must stop the app at start-up with a message naming the key, never
surface later as a 500 on some request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from redis import Redis
from redis.cluster import RedisCluster

from .connection import REDIS_SCHEMES, UrlError, check_url, redact_url

MIN_SECRET_BYTES = 32
_GENERATE = "python -m flask_dualtoken gen-secret"
_GENERATE_ANYWHERE = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'
GENERATE_SECRET_HINT = f"generate one with: {_GENERATE} (or {_GENERATE_ANYWHERE})"
#: The highest DUALTOKEN_MAX_SESSIONS: the session list walks at most this many sessions.
MAX_SESSIONS_CAP = 1000
TOKEN_LOCATIONS = ("headers", "cookies", "both")

_DEFAULTS: dict[str, Any] = {
    "DUALTOKEN_SECRET_KEY": None,
    "DUALTOKEN_REDIS_URL": "redis://localhost:6379/0",
    "DUALTOKEN_REDIS": None,
    "DUALTOKEN_ACCESS_EXPIRES": 15 * 60,
    "DUALTOKEN_REFRESH_EXPIRES": timedelta(days=14),
    "DUALTOKEN_SESSION_MAX_AGE": timedelta(days=30),
    "DUALTOKEN_REUSE_GRACE": 30,
    "DUALTOKEN_URL_PREFIX": "/auth",
    "DUALTOKEN_KEY_PREFIX": "dualtoken",
    "DUALTOKEN_ISSUER": None,
    "DUALTOKEN_AUDIENCE": None,
    "DUALTOKEN_LEEWAY": 0,
    "DUALTOKEN_VERIFY_SESSION": False,
    "DUALTOKEN_LOGIN_MAX_ATTEMPTS": 5,
    "DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS": 50,
    "DUALTOKEN_LOGIN_WINDOW": 300,
    "DUALTOKEN_MAX_SESSIONS": 100,
    "DUALTOKEN_PREVIOUS_SECRET_KEYS": (),
    "DUALTOKEN_TOKEN_CACHE_SIZE": 4096,
    "DUALTOKEN_OPENAPI": True,
    "DUALTOKEN_TOKEN_LOCATION": "headers",
    "DUALTOKEN_ACCESS_COOKIE": True,
    "DUALTOKEN_COOKIE_SECURE": True,
    "DUALTOKEN_COOKIE_DOMAIN": None,
    "DUALTOKEN_COOKIE_SAMESITE": "Strict",
    "DUALTOKEN_CSRF_HEADER": "X-CSRF-Token",
}
KNOWN_KEYS = frozenset(_DEFAULTS)

#: What each setting means, in Markdown: the source of the configuration reference (the
#: docs' settings table is generated from it, and a test keeps them in step).
SETTING_HELP: dict[str, str] = {
    "DUALTOKEN_SECRET_KEY": "the one secret, str or bytes, at least 32 bytes; defaults to "
    "Flask's `SECRET_KEY`",
    "DUALTOKEN_REDIS_URL": "`redis://`, `rediss://`, `unix://`; "
    "`redis+cluster://host:port[,host:port...]` (or `rediss+cluster://`) for Redis Cluster; "
    "`redis+sentinel://host:port[,host:port...]/service_name[/db]` for Sentinel; `memory://` "
    "is an in-process fakeredis (one process only; logs a warning). Credentials go in the "
    "URL as usual (`redis+cluster://user:pw@host:port`)",
    "DUALTOKEN_REDIS": "a ready client: `redis.Redis`, `redis.cluster.RedisCluster`, or "
    "Sentinel's `master_for(...)`; wins over the URL",
    "DUALTOKEN_ACCESS_EXPIRES": "AT lifetime, seconds or `timedelta`",
    "DUALTOKEN_REFRESH_EXPIRES": "RT idle lifetime: each rotation issues an RT valid this "
    "long (capped by the session's end)",
    "DUALTOKEN_SESSION_MAX_AGE": "absolute session lifetime; rotation never extends it",
    "DUALTOKEN_REUSE_GRACE": "seconds after a rotation during which the previous pair gets "
    "the same new pair back; 0 disables",
    "DUALTOKEN_URL_PREFIX": "blueprint prefix; `''` mounts the routes at the root",
    "DUALTOKEN_KEY_PREFIX": "Redis key namespace",
    "DUALTOKEN_ISSUER": "when set, written as `iss` and required on every token",
    "DUALTOKEN_AUDIENCE": "when set, written as `aud` and required on every token",
    "DUALTOKEN_LEEWAY": "seconds of clock leeway for `exp`/`iat`/`nbf` (at most 300)",
    "DUALTOKEN_VERIFY_SESSION": "strict mode: every `@jwt_required` request checks in Redis "
    "that the token's session is alive",
    "DUALTOKEN_LOGIN_MAX_ATTEMPTS": "failed logins per username per window before 429; 0 "
    "turns it off",
    "DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS": "failed logins per client address per "
    "window; 0 turns it off",
    "DUALTOKEN_LOGIN_WINDOW": "seconds; the window opens with the first failed attempt",
    "DUALTOKEN_MAX_SESSIONS": "live sessions per user, at most 1000; a login beyond it ends "
    "the user's oldest session (signal `session_revoked`, reason `session_limit`). 0: no "
    "cap (the session list then shows the newest 100)",
    "DUALTOKEN_PREVIOUS_SECRET_KEYS": "verify-only secrets of earlier generations, newest "
    "first, for rotating the secret",
    "DUALTOKEN_TOKEN_CACHE_SIZE": "access tokens this process remembers as verified; 0 "
    "turns the memo off",
    "DUALTOKEN_OPENAPI": "serve the OpenAPI 3.1 description of the routes at "
    "`{prefix}/openapi.json`",
    "DUALTOKEN_TOKEN_LOCATION": '`"headers"` (tokens in JSON bodies, the AT in '
    '`Authorization`), `"cookies"` (HttpOnly cookies and a CSRF header, for browsers) or '
    '`"both"` (a login asks for cookies with `X-Token-Transport: cookies`)',
    "DUALTOKEN_ACCESS_COOKIE": "in cookie mode, the AT in an HttpOnly cookie; `False` puts "
    "it in the JSON body instead, for a SPA that keeps it in memory",
    "DUALTOKEN_COOKIE_SECURE": "`Secure` cookies with the `__Host-`/`__Secure-` prefixes; "
    "`False` only for plain-HTTP development in browsers that refuse secure cookies on "
    "`localhost`",
    "DUALTOKEN_COOKIE_DOMAIN": "host-only cookies (which the `__Host-` prefix needs); set a "
    "domain to share them with subdomains",
    "DUALTOKEN_COOKIE_SAMESITE": '`"Strict"` or `"Lax"`',
    "DUALTOKEN_CSRF_HEADER": "the header that carries the CSRF token on state-changing "
    "cookie requests",
}


def _default_text(key: str) -> str:
    value = _DEFAULTS[key]
    if key == "DUALTOKEN_SECRET_KEY":
        return "`SECRET_KEY`"
    if value is None:
        return "none"
    if isinstance(value, timedelta):
        return f"{value.days} days"
    if isinstance(value, tuple):
        return "`[]`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`" if isinstance(value, bool) else str(value)


def settings_reference() -> list[tuple[str, str, str]]:
    """Every setting as (key, default, meaning), in the order of the defaults."""
    return [(key, _default_text(key), SETTING_HELP[key]) for key in _DEFAULTS]


class ConfigError(RuntimeError):
    """A DUALTOKEN_* setting is missing or invalid; raised by ``init_app``."""


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one app. Durations are whole seconds."""

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
    verify_session: bool
    login_max_attempts: int
    login_max_attempts_per_address: int
    login_window: int
    max_sessions: int
    #: Verify-only secrets of earlier generations, newest first.
    previous_secrets: tuple[bytes, ...]
    token_cache_size: int
    openapi: bool
    #: Where tokens travel: "headers" (JSON bodies and Authorization), "cookies", "both".
    token_location: str
    #: In cookie mode, the access token in an HttpOnly cookie (else in the JSON body).
    access_cookie: bool
    cookie_secure: bool
    cookie_domain: str | None
    cookie_samesite: str
    csrf_header: str

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
            elif item.name == "redis_url":
                value = redact_url(value)
            elif item.name == "redis_client" and value is not None:
                value = _Hidden(type(value).__name__)
            shown.append(f"{item.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def cookies_enabled(self) -> bool:
        return self.token_location != "headers"  # noqa: S105 - a place, not a secret

    @property
    def headers_enabled(self) -> bool:
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


def load_settings(config: Mapping[str, Any]) -> Settings:
    """Validate the app's config; raise ConfigError naming the first bad key."""
    unknown = sorted(k for k in config if k.startswith("DUALTOKEN_") and k not in KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"Unknown setting {unknown[0]}: flask-dualtoken knows "
            f"{', '.join(sorted(KNOWN_KEYS))}. A typo here would silently weaken auth."
        )

    def get(key: str) -> Any:
        return config.get(key, _DEFAULTS[key])

    return Settings(
        secret=_secret(get("DUALTOKEN_SECRET_KEY"), config.get("SECRET_KEY")),
        redis_url=_redis_url(get("DUALTOKEN_REDIS_URL")),
        redis_client=_redis_client(get("DUALTOKEN_REDIS")),
        access_expires=_seconds("DUALTOKEN_ACCESS_EXPIRES", get("DUALTOKEN_ACCESS_EXPIRES")),
        refresh_expires=_seconds("DUALTOKEN_REFRESH_EXPIRES", get("DUALTOKEN_REFRESH_EXPIRES")),
        session_max_age=_seconds("DUALTOKEN_SESSION_MAX_AGE", get("DUALTOKEN_SESSION_MAX_AGE")),
        reuse_grace=_seconds("DUALTOKEN_REUSE_GRACE", get("DUALTOKEN_REUSE_GRACE"), minimum=0),
        url_prefix=_url_prefix(get("DUALTOKEN_URL_PREFIX")),
        key_prefix=_key_prefix(get("DUALTOKEN_KEY_PREFIX")),
        issuer=_optional_text("DUALTOKEN_ISSUER", get("DUALTOKEN_ISSUER")),
        audience=_optional_text("DUALTOKEN_AUDIENCE", get("DUALTOKEN_AUDIENCE")),
        leeway=_seconds("DUALTOKEN_LEEWAY", get("DUALTOKEN_LEEWAY"), minimum=0, maximum=300),
        verify_session=_flag("DUALTOKEN_VERIFY_SESSION", get("DUALTOKEN_VERIFY_SESSION")),
        login_max_attempts=_count(
            "DUALTOKEN_LOGIN_MAX_ATTEMPTS", get("DUALTOKEN_LOGIN_MAX_ATTEMPTS")
        ),
        login_max_attempts_per_address=_count(
            "DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS",
            get("DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS"),
        ),
        login_window=_seconds("DUALTOKEN_LOGIN_WINDOW", get("DUALTOKEN_LOGIN_WINDOW")),
        max_sessions=_count(
            "DUALTOKEN_MAX_SESSIONS", get("DUALTOKEN_MAX_SESSIONS"), maximum=MAX_SESSIONS_CAP
        ),
        previous_secrets=_previous_secrets(get("DUALTOKEN_PREVIOUS_SECRET_KEYS")),
        token_cache_size=_count("DUALTOKEN_TOKEN_CACHE_SIZE", get("DUALTOKEN_TOKEN_CACHE_SIZE")),
        openapi=_flag("DUALTOKEN_OPENAPI", get("DUALTOKEN_OPENAPI")),
        token_location=_choice(
            "DUALTOKEN_TOKEN_LOCATION", get("DUALTOKEN_TOKEN_LOCATION"), TOKEN_LOCATIONS
        ),
        access_cookie=_flag("DUALTOKEN_ACCESS_COOKIE", get("DUALTOKEN_ACCESS_COOKIE")),
        cookie_secure=_flag("DUALTOKEN_COOKIE_SECURE", get("DUALTOKEN_COOKIE_SECURE")),
        cookie_domain=_cookie_domain(get("DUALTOKEN_COOKIE_DOMAIN")),
        cookie_samesite=_choice(
            "DUALTOKEN_COOKIE_SAMESITE", get("DUALTOKEN_COOKIE_SAMESITE"), ("Strict", "Lax")
        ),
        csrf_header=_header_name("DUALTOKEN_CSRF_HEADER", get("DUALTOKEN_CSRF_HEADER")),
    )


def _secret(value: Any, fallback: Any, key: str = "DUALTOKEN_SECRET_KEY") -> bytes:
    if value is None:
        value = fallback
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


def _previous_secrets(value: Any) -> tuple[bytes, ...]:
    key = "DUALTOKEN_PREVIOUS_SECRET_KEYS"
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key} must be a list of secrets (newest first), got {value!r:.40}")
    return tuple(_secret(item, None, f"{key}[{i}]") for i, item in enumerate(value))


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


def _redis_url(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError("DUALTOKEN_REDIS_URL must be a non-empty string")
    parts = urlsplit(value)
    if parts.scheme not in REDIS_SCHEMES:
        raise ConfigError(
            f"DUALTOKEN_REDIS_URL has scheme {parts.scheme!r}; use one of "
            f"{', '.join(sorted(s + '://' for s in REDIS_SCHEMES))}"
        )
    try:
        check_url(value)
    except UrlError as exc:
        raise ConfigError(f"DUALTOKEN_REDIS_URL {redact_url(value)!r}: {exc}") from None
    return value


def _redis_client(value: Any) -> Redis | RedisCluster | None:
    if value is not None and not isinstance(value, (Redis, RedisCluster)):
        raise ConfigError(
            "DUALTOKEN_REDIS must be a redis.Redis (Sentinel's master_for gives one) or a "
            f"redis.cluster.RedisCluster client, not {type(value).__name__}"
        )
    return value


def _url_prefix(value: Any) -> str:
    if not isinstance(value, str) or (
        value and (not value.startswith("/") or value.endswith("/"))
    ):
        raise ConfigError(
            "DUALTOKEN_URL_PREFIX must be a path like '/auth' (leading '/', no trailing '/'), "
            f"or '' for the root; got {value!r}"
        )
    return value


_KEY_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _key_prefix(value: Any) -> str:
    # Braces would break the per-user hash tag; spaces and control characters have no place
    # in a key namespace.
    if not isinstance(value, str) or not _KEY_PREFIX.fullmatch(value):
        raise ConfigError(
            "DUALTOKEN_KEY_PREFIX must be 1-64 characters of letters, digits, '_', '.', ':' "
            f"or '-'; got {value!r}"
        )
    return value


def _optional_text(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty string or None, got {value!r}")
    return value


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return str(value)


_DOMAIN = re.compile(r"\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


def _cookie_domain(value: Any) -> str | None:
    # None keeps cookies host-only, which is what allows the __Host- prefix.
    if value is None:
        return None
    if not isinstance(value, str) or not _DOMAIN.fullmatch(value):
        raise ConfigError(
            f"DUALTOKEN_COOKIE_DOMAIN must be None (host-only cookies) or a domain such as "
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
