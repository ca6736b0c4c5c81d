"""The example app, end to end: what a new user does after reading the README."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis
import time_machine
from flask import Flask
from helpers import bearer
from servers import RedisServer
from serving import serve_example

from example_app import User, create_app, db


@pytest.fixture
def make_example(tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Example apps on a temporary instance folder, their database connections closed after."""
    apps: list[Flask] = []

    def factory(config: dict[str, Any] | None = None) -> Flask:
        app = create_app({"TESTING": True, **(config or {})}, str(tmp_path / "instance"))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.engine.dispose()
        app.extensions["dualtoken"].store.client.close()


@pytest.fixture
def example(make_example: Callable[..., Flask], capsys: pytest.CaptureFixture[str]) -> Flask:
    app = make_example()
    assert "Created demo users" in capsys.readouterr().out
    return app


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def login(client: Any, username: str, password: str) -> dict[str, Any]:
    response = client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


def test_the_readme_walkthrough(example: Flask) -> None:
    client = example.test_client()
    with time_machine.travel(time.time(), tick=True) as clock:
        pair = login(client, "alice", "alice-password")
        me = client.get("/me", headers=bearer(pair["access_token"]))
        assert me.json == {
            "id": 1,
            "username": "alice",
            "role": "admin",
            "auth_time": claims(pair["access_token"])["iat"],
        }
        clock.shift(901)  # wait out the access token
        assert client.get("/me", headers=bearer(pair["access_token"])).json["error"] == (
            "token_expired"
        )
        new = client.post(
            "/auth/reissue",
            headers=bearer(pair["access_token"]),
            json={"refresh_token": pair["refresh_token"]},
        )
        assert new.status_code == 200
        assert client.get("/me", headers=bearer(new.json["access_token"])).status_code == 200
        clock.shift(31)  # past the grace window: the old refresh token is refused
        old = client.post(
            "/auth/reissue",
            headers=bearer(pair["access_token"]),
            json={"refresh_token": pair["refresh_token"]},
        )
        assert old.status_code == 401
        assert old.json["error"] == "refresh_token_reused"


def test_admin_route_needs_the_admin_role(example: Flask) -> None:
    client = example.test_client()
    alice = login(client, "alice", "alice-password")
    bob = login(client, "bob", "bob-password")
    assert client.get("/admin", headers=bearer(alice["access_token"])).status_code == 200
    assert client.get("/admin", headers=bearer(bob["access_token"])).json["error"] == (
        "insufficient_role"
    )
    assert client.get("/me", headers=bearer(bob["access_token"])).json["role"] == "user"


def test_unknown_user_and_wrong_password_look_alike(example: Flask) -> None:
    client = example.test_client()
    wrong = client.post("/auth/login", json={"username": "alice", "password": "x"})
    unknown = client.post("/auth/login", json={"username": "nobody", "password": "x"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.data == unknown.data


def test_unknown_users_cost_one_password_check_like_known_ones(
    example: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    import example_app

    checks: list[str] = []
    real = example_app.check_password_hash

    def counting(pwhash: str, password: str) -> bool:
        checks.append(pwhash)
        return real(pwhash, password)

    monkeypatch.setattr(example_app, "check_password_hash", counting)
    client = example.test_client()
    client.post("/auth/login", json={"username": "alice", "password": "x"})
    client.post("/auth/login", json={"username": "nobody", "password": "x"})
    assert len(checks) == 2, "one full hash check for the known and the unknown user alike"
    assert checks[0].split("$")[0] == checks[1].split("$")[0], "with the same hash method"


def test_create_user_command(example: Flask) -> None:
    runner = example.test_cli_runner()
    result = runner.invoke(args=["create-user", "carol", "--role", "editor", "--password", "pw-1"])
    assert result.exit_code == 0, result.output
    assert "carol" in result.output
    pair = login(example.test_client(), "carol", "pw-1")
    me = example.test_client().get("/me", headers=bearer(pair["access_token"]))
    assert me.json["role"] == "editor"
    again = runner.invoke(args=["create-user", "carol", "--password", "pw-1"])
    assert again.exit_code != 0
    assert "already exists" in again.output


def test_create_user_prompts_for_the_password(example: Flask) -> None:
    result = example.test_cli_runner().invoke(args=["create-user", "dave"], input="pw-2\npw-2\n")
    assert result.exit_code == 0, result.output
    login(example.test_client(), "dave", "pw-2")


def test_a_disabled_user_is_cut_off_at_reissue(example: Flask) -> None:
    client = example.test_client()
    pair = login(client, "bob", "bob-password")
    with example.app_context():
        db.session.get(User, 2).active = False
        db.session.commit()
    response = client.post(
        "/auth/reissue",
        headers=bearer(pair["access_token"]),
        json={"refresh_token": pair["refresh_token"]},
    )
    assert response.json["error"] == "user_unavailable"
    assert (
        client.post(
            "/auth/login", json={"username": "bob", "password": "bob-password"}
        ).status_code
        == 401
    )


def test_the_generated_secret_is_stable_across_restarts(
    tmp_path: Path, make_example: Callable[..., Flask]
) -> None:
    first = make_example()
    second = make_example()
    secret = first.extensions["dualtoken"].settings.secret
    assert secret == second.extensions["dualtoken"].settings.secret
    assert len(secret) >= 32
    assert (tmp_path / "instance" / "dualtoken-secret").stat().st_mode & 0o077 == 0


def test_settings_come_from_the_environment(
    make_example: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASK_DUALTOKEN_ACCESS_EXPIRES", "60")
    monkeypatch.setenv("FLASK_DUALTOKEN_SECRET_KEY", "e" * 40)
    app = make_example()
    settings = app.extensions["dualtoken"].settings
    assert settings.access_expires == 60
    assert settings.secret == b"e" * 40


@pytest.mark.real_redis
def test_a_real_redis_is_one_environment_variable_away(
    make_example: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    monkeypatch.setenv("FLASK_DUALTOKEN_REDIS_URL", redis_server.url)
    app = make_example()
    login(app.test_client(), "alice", "alice-password")
    with redis.Redis.from_url(redis_server.url) as direct:
        assert direct.keys("dualtoken:*")


def test_flask_run_serves_the_example(tmp_path: Path) -> None:
    """The README's command, for real: `flask --app example_app run`, then log in over HTTP."""
    import json
    import urllib.request

    with serve_example(tmp_path / "work") as served:
        request = urllib.request.Request(
            served.url + "/auth/login",
            data=json.dumps({"username": "alice", "password": "alice-password"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            pair = json.load(response)
        me = urllib.request.Request(served.url + "/me", headers=bearer(pair["access_token"]))
        with urllib.request.urlopen(me, timeout=5) as response:
            assert json.load(response)["username"] == "alice"
    assert "Created demo users" in served.output[0]
    assert (served.work / "instance" / "dualtoken-secret").exists()


def test_the_demo_page_is_served_at_the_root_with_a_strict_policy(example: Flask) -> None:
    client = example.test_client()
    page = client.get("/")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    html = page.get_data(as_text=True)
    assert 'data-csrf-cookie="__Host-dualtoken_csrf"' in html
    assert 'data-csrf-header="X-CSRF-Token"' in html
    assert 'data-prefix="/auth"' in html
    assert "<script>" not in html  # the policy would block an inline script
    script = client.get("/static/demo.js")
    assert script.status_code == 200
    assert b"X-Token-Transport" in script.data
    script.close()
    # An icon of its own, so browsers do not ask for a missing /favicon.ico; same origin,
    # since the policy's default-src 'self' leaves out data: URLs.
    assert '<link rel="icon" type="image/svg+xml" href="/static/favicon.svg">' in html
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert icon.data.startswith(b"<svg ")
    icon.close()


def test_the_example_serves_header_clients_and_browsers_side_by_side(example: Flask) -> None:
    pair = login(example.test_client(), "alice", "alice-password")
    assert "refresh_token" in pair
    browser = example.test_client()
    response = browser.post(
        "/auth/login",
        json={"username": "alice", "password": "alice-password"},
        headers={"X-Token-Transport": "cookies"},
    )
    assert "refresh_token" not in response.json
    assert browser.get("/me").json["username"] == "alice"


# -- sensitive actions: re-authentication and the password change ----------------------------


def reissue(client: Any, pair: dict[str, Any]) -> Any:
    return client.post(
        "/auth/reissue",
        headers=bearer(pair["access_token"]),
        json={"refresh_token": pair["refresh_token"]},
    )


def change_password(client: Any, pair: dict[str, Any], **body: Any) -> Any:
    return client.post("/account/password", headers=bearer(pair["access_token"]), json=body)


def test_a_password_change_needs_a_fresh_login_and_ends_every_other_session(
    example: Flask,
) -> None:
    client = example.test_client()
    with time_machine.travel(time.time(), tick=True) as clock:
        laptop = login(client, "alice", "alice-password")
        phone = login(client, "alice", "alice-password")
        bob = login(client, "bob", "bob-password")
        clock.shift(301)  # past DUALTOKEN_FRESH_MAX_AGE (and the 60 s access token)
        laptop, phone = reissue(client, laptop).json, reissue(client, phone).json
        refused = change_password(client, laptop, new_password="a-new-password")
        assert refused.status_code == 401
        assert refused.json["error"] == "insufficient_user_authentication"
        assert refused.headers["WWW-Authenticate"].endswith('max_age="300"')
        reauth = client.post(
            "/auth/reauth",
            headers=bearer(laptop["access_token"]),
            json={"username": "alice", "password": "alice-password"},
        )
        assert reauth.status_code == 200
        laptop = reauth.json
        me = client.get("/me", headers=bearer(laptop["access_token"])).json
        assert me["auth_time"] == claims(laptop["access_token"])["iat"]
        changed = change_password(client, laptop, new_password="a-new-password")
        assert changed.status_code == 200, changed.json
        assert changed.json["this_session_kept"] is True
        # The phone is signed out at once; the laptop carries on; bob is untouched.
        assert client.get("/me", headers=bearer(phone["access_token"])).json["error"] == (
            "session_revoked"
        )
        assert reissue(client, phone).json["error"] == "session_revoked"
        assert client.get("/me", headers=bearer(laptop["access_token"])).status_code == 200
        assert reissue(client, laptop).status_code == 200
        assert reissue(client, bob).status_code == 200
        old = {"username": "alice", "password": "alice-password"}
        assert client.post("/auth/login", json=old).status_code == 401
        login(client, "alice", "a-new-password")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"json": {}},
        {"json": {"new_password": "short"}},
        {"json": {"new_password": 12345678}},
        {"json": {"new_password": "x" * 1025}},
        {"json": {"new_password": "\ud800-long-enough"}},
        {"json": ["a-new-password"]},
        {"data": "new_password=a-new-password"},
        {"data": "[" * 5000 + "]" * 5000, "content_type": "application/json"},
    ],
)
def test_a_bad_new_password_is_a_json_400_and_changes_nothing(
    example: Flask, kwargs: dict[str, Any]
) -> None:
    client = example.test_client()
    pair = login(client, "bob", "bob-password")
    other = login(client, "bob", "bob-password")
    response = client.post("/account/password", headers=bearer(pair["access_token"]), **kwargs)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert reissue(client, other).status_code == 200
    login(client, "bob", "bob-password")


def test_a_browser_changing_its_password_must_send_the_csrf_header(example: Flask) -> None:
    browser = example.test_client()
    response = browser.post(
        "/auth/login",
        json={"username": "bob", "password": "bob-password"},
        headers={"X-Token-Transport": "cookies"},
    )
    assert response.status_code == 200
    body = {"new_password": "a-new-password"}
    refused = browser.post("/account/password", json=body)
    assert refused.status_code == 403
    assert refused.json["error"] == "csrf_failed"
    csrf = browser.get_cookie("__Host-dualtoken_csrf")
    assert csrf is not None
    done = browser.post("/account/password", json=body, headers={"X-CSRF-Token": csrf.value})
    assert done.status_code == 200
    assert browser.get("/me").status_code == 200


def test_a_password_changed_elsewhere_ends_sessions_at_their_next_reissue(
    example: Flask,
) -> None:
    """The security stamp: a change the library was not told of (another tool, a reset by
    hand) still ends the sessions started with the old password."""
    client = example.test_client()
    pair = login(client, "bob", "bob-password")
    with example.app_context():
        db.session.get(User, 2).set_password("set-by-an-admin")
        db.session.commit()
    response = reissue(client, pair)
    assert response.status_code == 401
    assert response.json["error"] == "session_revoked"


def test_the_example_serves_prometheus_metrics_with_the_extra_installed(example: Flask) -> None:
    client = example.test_client()
    login(client, "alice", "alice-password")
    client.post("/auth/login", json={"username": "alice", "password": "wrong"})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'dualtoken_logins_total{outcome="succeeded"}' in text
    assert 'dualtoken_logins_total{outcome="failed"}' in text
    assert "alice" not in text


def test_without_the_metrics_extra_the_example_runs_and_has_no_metrics_route(
    tmp_path: Path,
) -> None:
    """The README's install (`.[example]`) has no prometheus-client: as if not installed."""
    import subprocess
    import sys
    import textwrap

    code = f"""
        import sys
        sys.modules["prometheus_client"] = None  # importing it fails
        from example_app import create_app, db
        app = create_app({{"TESTING": True}}, {str(tmp_path / "instance")!r})
        client = app.test_client()
        body = {{"username": "alice", "password": "alice-password"}}
        print(client.post("/auth/login", json=body).status_code)
        print(client.get("/metrics").status_code)
        with app.app_context():
            db.engine.dispose()
    """
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split()[-2:] == ["200", "404"]
