"""The operator CLI: flask dualtoken gen-secret | sessions | revoke | stats."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from helpers import Api, bearer, sid_of
from servers import RedisServer

from flask_dualtoken.config import load_settings
from flask_dualtoken.store import ClientInfo, SessionStore
from flask_dualtoken.tokens import new_id


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["dualtoken", *args])


def test_gen_secret_prints_a_strong_secret_the_app_accepts(app: Flask) -> None:
    first, second = run(app, "gen-secret"), run(app, "gen-secret")
    assert first.exit_code == 0
    secret = first.output.strip()
    assert len(secret) == 64
    assert secret != second.output.strip()
    assert load_settings({"DUALTOKEN_SECRET_KEY": secret}).secret == secret.encode()


def test_sessions_lists_a_users_live_sessions(app: Flask, api: Api) -> None:
    api.client.environ_base["HTTP_USER_AGENT"] = "Firefox/200"
    one, two = api.login(), api.login()
    api.logout(one)
    result = run(app, "sessions", "1")
    assert result.exit_code == 0
    assert sid_of(two) in result.output
    assert sid_of(one) not in result.output
    assert "Firefox/200" in result.output
    assert "127.0.0.1" in result.output
    assert "no live sessions" in run(app, "sessions", "2").output


def test_sessions_prints_stored_strings_escaped(app: Flask, store: SessionStore) -> None:
    # As an older version, another app or a hand edit might have left them in Redis.
    sid = new_id()
    agent = "Mozilla/5.0 \x1b[2J\x07 C:\\x1b \u200b \u202e é"
    store.create("1", sid, new_id(), "{}", "{}", ClientInfo("::1\r\nforged", agent))
    result = run(app, "sessions", "1")
    assert result.exit_code == 0
    line = result.output.splitlines()[1]
    assert len(result.output.splitlines()) == 2
    assert line.startswith(sid)
    assert "::1\\r\\nforged" in line
    assert line.endswith("Mozilla/5.0 \\x1b[2J\\x07 C:\\\\x1b \\u200b \\u202e é")


def test_sessions_prints_ordinary_strings_unchanged(app: Flask, store: SessionStore) -> None:
    agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Gecko/20100101 Firefox/128.0 ü"
    store.create("1", new_id(), new_id(), "{}", "{}", ClientInfo("2001:db8::1", agent))
    line = run(app, "sessions", "1").output.splitlines()[1]
    assert " 2001:db8::1 " in line
    assert line.endswith(" " + agent)


def test_revoke_one_session(app: Flask, api: Api) -> None:
    one, two = api.login(), api.login()
    result = run(app, "revoke", "1", "--session", sid_of(one))
    assert result.exit_code == 0
    assert api.reissue(one).json["error"] == "session_revoked"
    assert api.reissue(two).status_code == 200
    again = run(app, "revoke", "1", "--session", sid_of(one))
    assert again.exit_code != 0
    assert "no live session" in again.output


def test_revoke_echoes_a_session_id_escaped(app: Flask) -> None:
    result = run(app, "revoke", "1", "--session", "\x1b]0;pwned\x07\x9b2J")
    assert result.exit_code != 0
    assert "no live session \\x1b]0;pwned\\x07\\x9b2J" in result.output
    assert not any(ch in result.output for ch in "\x1b\x07\x9b")


def test_revoke_all_sessions_of_a_user(app: Flask, api: Api) -> None:
    pairs = [api.login(), api.login()]
    bob = api.login(username="bob")
    assert run(app, "revoke", "1").exit_code == 0
    assert all(api.reissue(p).json["error"] == "session_revoked" for p in pairs)
    assert api.reissue(bob).status_code == 200


def test_stats_reports_health_and_live_sessions(app: Flask, api: Api) -> None:
    for _ in range(3):
        api.login()
    ended = api.login(username="bob")
    api.logout(ended)
    everywhere = api.login(username="bob")
    api.client.post("/auth/logout-all", headers=bearer(everywhere["access_token"]))
    result = run(app, "stats")
    assert result.exit_code == 0
    assert "store: ok" in result.output
    assert "live sessions: 3" in result.output


def test_commands_fail_cleanly_when_the_store_is_down(users: Any) -> None:
    from helpers import app_on_url

    with app_on_url(users, "redis://127.0.0.1:1/0") as app:
        for args in (("sessions", "1"), ("revoke", "1"), ("stats",)):
            result = run(app, *args)
            assert result.exit_code == 1
            assert "unavailable" in result.output
            assert "Traceback" not in result.output


@pytest.mark.real_redis
def test_stats_and_the_first_request_warn_when_redis_may_evict(
    own_redis_server: RedisServer, users: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from helpers import app_on_url

    with own_redis_server.client() as direct:
        direct.config_set("maxmemory-policy", "volatile-lru")
    with app_on_url(users, own_redis_server.url) as app:
        assert not caplog.records, "init_app talks to no store"
        Api(app).login()
        Api(app).login()
        warnings = [r for r in caplog.records if "maxmemory-policy" in r.getMessage()]
        assert len(warnings) == 1, "once per process"
        assert "volatile-lru" in warnings[0].getMessage()
        result = app.test_cli_runner().invoke(args=["dualtoken", "stats"])
        assert "eviction policy: volatile-lru" in result.output
        assert "noeviction" in result.stderr


@pytest.mark.real_redis
def test_no_warning_with_noeviction(
    redis_server: RedisServer, users: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from helpers import app_on_url

    with app_on_url(users, redis_server.url) as app:
        Api(app).login()
        assert not [r for r in caplog.records if "maxmemory-policy" in r.getMessage()]
        result = run(app, "stats")
        assert "eviction policy: noeviction" in result.output


def test_gen_secret_works_with_no_configuration_at_all(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "bare.py").write_text(
        "from flask import Flask\nfrom flask_dualtoken import DualToken\n"
        "app = Flask(__name__)\nDualToken(app)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    flask = [sys.executable, "-m", "flask", "--app", "bare", "dualtoken", "gen-secret"]
    module = [sys.executable, "-m", "flask_dualtoken", "gen-secret"]
    secrets = set()
    for command in (flask, module):
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        secret = done.stdout.strip()
        assert len(secret) == 64 and secret not in secrets
        secrets.add(secret)


def test_under_memory_the_commands_say_they_see_their_own_empty_store(users: Any) -> None:
    from helpers import app_on_url

    with app_on_url(users, "memory://") as app:
        for args in (("sessions", "1"), ("revoke", "1"), ("stats",)):
            result = run(app, *args)
            assert "own empty in-process store" in result.output, args


def test_the_memory_store_warns_once_at_its_first_use_not_at_start_up(
    users: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An app's own commands that never touch the store (``create-user``) stay quiet."""
    from helpers import Api, app_on_url

    from flask_dualtoken.store import MEMORY_WARNING

    def warnings() -> int:
        return sum(MEMORY_WARNING in r.getMessage() for r in caplog.records)

    with app_on_url(users, "memory://") as app:
        app.cli.command("hello")(lambda: print("hello"))
        assert app.test_cli_runner().invoke(args=["hello"]).output == "hello\n"
        assert warnings() == 0
        api = Api(app)
        api.login()
        assert warnings() == 1
        api.login(username="bob")
        assert warnings() == 1
