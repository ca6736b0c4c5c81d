"""Settings are read and validated once, at init_app; a bad one stops the app there."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import fakeredis
import pytest
from conftest import SECRET
from flask import Flask

from flask_dualtoken import ConfigError, DualToken
from flask_dualtoken.config import load_settings
from flask_dualtoken.state import get_state


def make(config: dict[str, Any]) -> Flask:
    app = Flask("config_tests")
    app.config.update(config)
    DualToken(app)
    return app


BASE = {"DUALTOKEN_SECRET_KEY": SECRET, "DUALTOKEN_REDIS_URL": "memory://"}


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


def test_callbacks_missing_at_request_time_name_the_decorator() -> None:
    app = make(BASE)
    with (
        app.test_request_context(),
        pytest.raises(RuntimeError, match=r"@dualtoken\.authenticate"),
    ):
        get_state(app).authenticate("a", "b")


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
    assert _redis_client(client) is client


def test_no_secret_key_or_password_in_any_repr(users: Any) -> None:
    from conftest import SECRET, build_app

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
