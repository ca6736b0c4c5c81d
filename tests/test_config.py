"""Settings are read and validated once, at init_app; a bad one stops the app there."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import fields
from datetime import timedelta
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import fakeredis
import pytest
from flask import Flask
from helpers import SECRET

from flask_dualtoken import ConfigError, DualToken
from flask_dualtoken.config import (
    KNOWN_KEYS,
    MAX_SESSIONS_CAP,
    SETTINGS,
    TOKEN_LOCATIONS,
    Settings,
    load_settings,
)
from flask_dualtoken.ed25519 import AccessKeyPair
from flask_dualtoken.remote_keys import parse_key_set
from flask_dualtoken.state import get_state


def make(config: dict[str, Any]) -> Flask:
    app = Flask("config_tests")
    app.config.update(config)
    DualToken(app)
    return app


BASE = {"DUALTOKEN_SECRET_KEY": SECRET, "DUALTOKEN_REDIS_URL": "memory://"}
KEY_SET = {"keys": [AccessKeyPair.from_secret(SECRET.encode()).jwk()]}


def test_defaults_match_the_documented_table() -> None:
    settings = load_settings({"DUALTOKEN_SECRET_KEY": SECRET})
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.access_expires == 900
    assert settings.refresh_expires == 14 * 86400
    assert settings.session_max_age == 30 * 86400
    assert settings.reuse_grace == 30
    assert settings.url_prefix == "/auth"
    assert settings.key_prefix == "dualtoken"
    assert settings.issuer is None and settings.audience is None
    assert settings.leeway == 0
    assert settings.session_admin_fresh == 0  # off


def test_the_table_and_the_settings_fields_match_one_to_one() -> None:
    """A key in the table fills exactly one field, and every field has exactly one key:
    a setting cannot be accepted and then ignored."""
    keys = [setting.key for setting in SETTINGS]
    assert len(keys) == len(set(keys)) == len(KNOWN_KEYS)
    assert set(keys) == KNOWN_KEYS
    assert all(key.startswith("DUALTOKEN_") for key in keys)
    assert [setting.field for setting in SETTINGS] == [f.name for f in fields(Settings)]


def test_the_enumerated_settings_are_literal_types() -> None:
    hints = get_type_hints(Settings)
    assert get_args(hints["token_location"]) == TOKEN_LOCATIONS == ("headers", "cookies", "both")
    assert get_args(hints["cookie_samesite"]) == ("Strict", "Lax")


def _samples() -> dict[str, tuple[Any, Any]]:
    """A valid value that is not the default for every setting: (in config, in Settings)."""
    client = fakeredis.FakeRedis()
    return {
        "DUALTOKEN_SECRET_KEY": ("s" * 40, b"s" * 40),
        "DUALTOKEN_REDIS_URL": ("redis://db.example:6380/2", "redis://db.example:6380/2"),
        "DUALTOKEN_REDIS": (client, client),
        "DUALTOKEN_ACCESS_EXPIRES": (timedelta(minutes=2), 120),
        "DUALTOKEN_REFRESH_EXPIRES": (3600, 3600),
        "DUALTOKEN_SESSION_MAX_AGE": (timedelta(days=7), 7 * 86400),
        "DUALTOKEN_REUSE_GRACE": (0, 0),
        "DUALTOKEN_URL_PREFIX": ("", ""),
        "DUALTOKEN_KEY_PREFIX": ("app:auth", "app:auth"),
        "DUALTOKEN_ISSUER": ("https://issuer.example", "https://issuer.example"),
        "DUALTOKEN_AUDIENCE": ("api", "api"),
        "DUALTOKEN_LEEWAY": (300, 300),
        "DUALTOKEN_FRESH_MAX_AGE": (timedelta(minutes=10), 600),
        "DUALTOKEN_SESSION_ADMIN_FRESH": (timedelta(minutes=5), 300),
        "DUALTOKEN_REVOCATION": ("strict", "strict"),
        "DUALTOKEN_REVOCATION_HEARTBEAT": (timedelta(milliseconds=50), 0.05),
        "DUALTOKEN_LOGIN_MAX_ATTEMPTS": (0, 0),
        "DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS": (7, 7),
        "DUALTOKEN_LOGIN_WINDOW": (timedelta(minutes=1), 60),
        "DUALTOKEN_MAX_SESSIONS": (MAX_SESSIONS_CAP, MAX_SESSIONS_CAP),
        "DUALTOKEN_PREVIOUS_SECRET_KEYS": (["p" * 32, b"q" * 32], (b"p" * 32, b"q" * 32)),
        "DUALTOKEN_ACCESS_ALGORITHM": ("EdDSA", "EdDSA"),
        "DUALTOKEN_JWKS_URL": ("https://auth.example/auth/jwks.json",) * 2,
        "DUALTOKEN_PUBLIC_KEYS": (KEY_SET, parse_key_set(KEY_SET)),
        "DUALTOKEN_INTROSPECTION_URL": ("https://auth.example/auth/introspect",) * 2,
        "DUALTOKEN_INTROSPECTION_CLIENT_ID": ("reports", "reports"),
        "DUALTOKEN_INTROSPECTION_CLIENT_SECRET": ("r" * 32, b"r" * 32),
        "DUALTOKEN_INTROSPECTION_CACHE_SECONDS": (timedelta(seconds=5), 5),
        "DUALTOKEN_INTROSPECTION_CLIENTS": ({"gateway": "g" * 32}, {"gateway": b"g" * 32}),
        "DUALTOKEN_INTROSPECTION_MAX_REQUESTS": (0, 0),
        "DUALTOKEN_INTROSPECTION_WINDOW": (timedelta(minutes=5), 300),
        "DUALTOKEN_TOKEN_CACHE_SIZE": (0, 0),
        "DUALTOKEN_OPENAPI": (False, False),
        "DUALTOKEN_TOKEN_LOCATION": ("both", "both"),
        "DUALTOKEN_ACCESS_COOKIE": (False, False),
        "DUALTOKEN_COOKIE_SECURE": (False, False),
        "DUALTOKEN_COOKIE_DOMAIN": ("example.com", "example.com"),
        "DUALTOKEN_COOKIE_SAMESITE": ("Lax", "Lax"),
        "DUALTOKEN_CSRF_HEADER": ("X-Proof", "X-Proof"),
        # Both on by default in this suite (the test extra installs their packages).
        "DUALTOKEN_METRICS": (False, None),
        "DUALTOKEN_TRACING": (False, None),
    }


def _conforms(value: Any, hint: Any) -> bool:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return value in args
    if origin in (Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if origin is Mapping:
        return isinstance(value, Mapping)
    if origin is tuple:
        return isinstance(value, tuple) and all(_conforms(item, args[0]) for item in value)
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


REMOTE_INTROSPECTION_KEYS = (
    "DUALTOKEN_INTROSPECTION_URL",
    "DUALTOKEN_INTROSPECTION_CLIENT_ID",
    "DUALTOKEN_INTROSPECTION_CLIENT_SECRET",
)
REMOTE_INTROSPECTION_FIELDS = (
    "introspection_url",
    "introspection_client_id",
    "introspection_client_secret",
)


def test_every_setting_has_a_sample() -> None:
    assert set(_samples()) == KNOWN_KEYS


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.key)
def test_each_setting_lands_in_its_own_field_and_only_there(setting: Any) -> None:
    raw, expected = _samples()[setting.key]
    base: dict[str, Any] = {"DUALTOKEN_SECRET_KEY": SECRET}
    also: set[str] = set()
    if setting.key in {"DUALTOKEN_JWKS_URL", "DUALTOKEN_PUBLIC_KEYS"}:
        # A verify-only app: no secret, EdDSA (tests/test_verify_only.py).
        base, also = {"DUALTOKEN_ACCESS_ALGORITHM": "EdDSA"}, {"secret", "access_algorithm"}
    elif setting.key in {*REMOTE_INTROSPECTION_KEYS, "DUALTOKEN_INTROSPECTION_CACHE_SECONDS"}:
        # A verify-only app that asks by introspection: URL, client id and secret together
        # (tests/test_remote_introspection.py).
        base = {
            "DUALTOKEN_ACCESS_ALGORITHM": "EdDSA",
            "DUALTOKEN_JWKS_URL": "https://a.example/jwks.json",
            **{key: _samples()[key][0] for key in REMOTE_INTROSPECTION_KEYS},
        }
        also = {"secret", "access_algorithm", "jwks_url", *REMOTE_INTROSPECTION_FIELDS}
    defaults = load_settings({"DUALTOKEN_SECRET_KEY": SECRET})
    changed = load_settings({**base, setting.key: raw})
    assert getattr(changed, setting.field) == expected != getattr(defaults, setting.field)
    hints = get_type_hints(Settings)
    for item in fields(Settings):
        assert _conforms(getattr(changed, item.name), hints[item.name]), item.name
        if item.name != setting.field and item.name not in also:
            assert getattr(changed, item.name) == getattr(defaults, item.name), item.name


@pytest.mark.parametrize("secret", [None, "", b""])
def test_a_missing_secret_refuses_to_start_and_says_how_to_make_one(secret: Any) -> None:
    with pytest.raises(ConfigError, match=r"secrets\.token_urlsafe"):
        make({**BASE, "DUALTOKEN_SECRET_KEY": secret})


def test_a_secret_under_32_bytes_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match=r"31 bytes.*secrets\.token_urlsafe"):
        make({**BASE, "DUALTOKEN_SECRET_KEY": "x" * 31})


def test_the_secret_length_counts_utf8_bytes() -> None:
    make({**BASE, "DUALTOKEN_SECRET_KEY": "é" * 16})  # 32 bytes in UTF-8


def test_flask_secret_key_is_the_fallback() -> None:
    app = make({"DUALTOKEN_REDIS_URL": "memory://", "SECRET_KEY": SECRET})
    assert get_state(app).settings.secret == SECRET.encode()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DUALTOKEN_SECRET_KEY", 12345678901234567890123456789012345),
        ("DUALTOKEN_REDIS_URL", "http://localhost:6379"),
        ("DUALTOKEN_REDIS_URL", ""),
        ("DUALTOKEN_REDIS_URL", 6379),
        ("DUALTOKEN_REDIS_URL", "redis+cluster://"),
        ("DUALTOKEN_REDIS_URL", "redis+cluster://host"),
        ("DUALTOKEN_REDIS_URL", "redis+cluster://a:1,b"),
        ("DUALTOKEN_REDIS_URL", "redis+sentinel://a:26379"),
        ("DUALTOKEN_REDIS_URL", "redis+sentinel://a:26379/mymaster/x"),
        ("DUALTOKEN_REDIS_URL", "sentinel://a:26379/mymaster"),
        ("DUALTOKEN_REDIS", "redis://localhost"),
        ("DUALTOKEN_ACCESS_EXPIRES", "900"),
        ("DUALTOKEN_ACCESS_EXPIRES", 0),
        ("DUALTOKEN_ACCESS_EXPIRES", True),
        ("DUALTOKEN_ACCESS_EXPIRES", 1.5),
        ("DUALTOKEN_ACCESS_EXPIRES", timedelta(milliseconds=1500)),
        ("DUALTOKEN_REFRESH_EXPIRES", -1),
        ("DUALTOKEN_SESSION_MAX_AGE", None),
        ("DUALTOKEN_REUSE_GRACE", -1),
        ("DUALTOKEN_URL_PREFIX", "auth"),
        ("DUALTOKEN_URL_PREFIX", "/auth/"),
        ("DUALTOKEN_KEY_PREFIX", "a{b}"),
        ("DUALTOKEN_KEY_PREFIX", ""),
        ("DUALTOKEN_KEY_PREFIX", "has space"),
        ("DUALTOKEN_ISSUER", ""),
        ("DUALTOKEN_AUDIENCE", ["a"]),
        ("DUALTOKEN_LEEWAY", 301),
        ("DUALTOKEN_LEEWAY", -1),
        ("DUALTOKEN_SESSION_ADMIN_FRESH", -60),
        ("DUALTOKEN_SESSION_ADMIN_FRESH", "300"),
        ("DUALTOKEN_ACCES_EXPIRES", 900),
    ],
)
def test_a_bad_setting_fails_at_start_up_naming_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        make({**BASE, key: value})


def test_durations_accept_seconds_and_timedeltas() -> None:
    app = make(
        {
            **BASE,
            "DUALTOKEN_ACCESS_EXPIRES": timedelta(minutes=5),
            "DUALTOKEN_REFRESH_EXPIRES": 3600,
            "DUALTOKEN_REUSE_GRACE": 0,
        }
    )
    settings = get_state(app).settings
    assert (settings.access_expires, settings.refresh_expires, settings.reuse_grace) == (
        300,
        3600,
        0,
    )


def test_init_app_refuses_a_second_registration() -> None:
    app = make(BASE)
    with pytest.raises(RuntimeError, match="already registered"):
        DualToken(app)


def test_one_extension_object_serves_several_apps() -> None:
    dualtoken = DualToken()
    first, second = Flask("one"), Flask("two")
    for app, prefix in ((first, "/auth"), (second, "/api/auth")):
        app.config.update(BASE, DUALTOKEN_URL_PREFIX=prefix)
        dualtoken.init_app(app)
    assert get_state(first).extension is get_state(second).extension
    assert "/api/auth/login" in {r.rule for r in second.url_map.iter_rules()}


def test_a_ready_client_wins_over_the_url() -> None:
    client = fakeredis.FakeRedis()
    app = make({**BASE, "DUALTOKEN_REDIS_URL": "redis://nowhere:1/0", "DUALTOKEN_REDIS": client})
    assert get_state(app).store.client is client


def test_clients_we_build_answer_an_outage_fast() -> None:
    app = make({**BASE, "DUALTOKEN_REDIS_URL": "redis://127.0.0.1:1/0"})
    kwargs = get_state(app).store.client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] <= 0.5
    assert kwargs["socket_connect_timeout"] <= 0.5
    assert kwargs["retry"].get_retries() <= 1


def test_a_missing_callback_is_a_json_500_that_names_the_decorator(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make(BASE)
    response = app.test_client().post("/auth/login", json={"username": "a", "password": "b"})
    assert (response.status_code, response.json) == (
        500,
        {
            "error": "server_misconfigured",
            "message": "The server is misconfigured; its log says how to fix it.",
        },
    )
    assert "decorate a function with @dualtoken.authenticate" in caplog.text


def test_cluster_and_sentinel_urls_are_parsed() -> None:
    from flask_dualtoken.connection import cluster_nodes, sentinel_parts

    assert cluster_nodes("redis+cluster://10.0.0.1:7000,10.0.0.2:7001") == [
        ("10.0.0.1", 7000),
        ("10.0.0.2", 7001),
    ]
    assert cluster_nodes("rediss+cluster://user:pw@[::1]:7000") == [("::1", 7000)]
    assert sentinel_parts("redis+sentinel://s1:26379,s2:26380/mymaster/2") == (
        [("s1", 26379), ("s2", 26380)],
        "mymaster",
        2,
    )
    assert sentinel_parts("redis+sentinel://s1:26379/mymaster")[2] == 0


def test_a_ready_cluster_client_is_accepted() -> None:
    from redis.cluster import RedisCluster

    from flask_dualtoken.config import _redis_client

    client = RedisCluster.__new__(RedisCluster)  # no connection needed to check the type
    assert _redis_client("DUALTOKEN_REDIS", client) is client


def test_no_secret_key_or_password_in_any_repr(users: Any) -> None:
    from helpers import SECRET, build_app

    from flask_dualtoken.cookies import CSRF_LABEL
    from flask_dualtoken.keys import ACCESS_LABEL, REFRESH_LABEL, derive_key
    from flask_dualtoken.state import get_state

    previous = "previous-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
    url = "redis://app-user:redis-pass-word@127.0.0.1:1/0"
    app = build_app(
        None,
        users,
        DUALTOKEN_REDIS=None,
        DUALTOKEN_REDIS_URL=url,
        DUALTOKEN_PREVIOUS_SECRET_KEYS=[previous],
    )
    state = get_state(app)
    shown = " ".join(
        [repr(state), str(state), repr(state.settings), str(state.settings), repr(state.codec)]
    )
    forbidden = [SECRET, previous, "redis-pass-word"]
    for secret in (SECRET, previous):
        for label in (ACCESS_LABEL, REFRESH_LABEL, CSRF_LABEL):
            key = derive_key(secret.encode(), label)
            forbidden += [repr(key), key.hex(), str(key)]
        forbidden += [repr(secret.encode()), secret.encode().hex()]
    assert not [f for f in forbidden if f in shown]
    assert "redis://<credentials hidden>" in shown
    assert "DualToken" in shown or "extension" in shown


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:1/0?password=redis-pass-word",
        "unix:///run/redis.sock?db=0&password=redis-pass-word",
        "redis://:redis-pass-word@127.0.0.1:1/0",
    ],
)
def test_no_redis_password_in_the_settings_repr(url: str) -> None:
    settings = load_settings({"DUALTOKEN_SECRET_KEY": SECRET, "DUALTOKEN_REDIS_URL": url})
    assert "pass-word" not in repr(settings)
    assert "<credentials hidden>" in repr(settings)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://:redis-pass-word@h1:26379",
        "redis+cluster://:redis-pass-word@h1:x",
        "redis+sentinel://:redis/pass-word@s1:26379,s2:26379/mymaster",
        "redis://:redis-pass/word@h1:1/0",  # an unencoded '/', '?' or '#' moves the parts
        "redis://:redis?pass-word@127.0.0.1:1/0",
        "redis://user:redis#pass-word@127.0.0.1:1/0",
        "redis://h1:1/0?PASSWORD=redis-pass-word",
    ],
)
def test_no_redis_password_in_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"DUALTOKEN_SECRET_KEY": SECRET, "DUALTOKEN_REDIS_URL": url})
    assert "redis-pass-word" not in str(raised.value)
