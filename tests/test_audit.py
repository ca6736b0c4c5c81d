"""The audit trail: security events are logged with user, session and client address,
and no token or password ever reaches a log line."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from helpers import Api, bearer


def test_a_full_run_logs_events_but_never_a_token_or_password(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    secrets_seen: list[str] = ["correct horse", "wrong-password-123"]
    with caplog.at_level(logging.DEBUG):
        pair = api.login()
        api.client.post("/auth/login", json={"username": "alice", "password": secrets_seen[1]})
        new = api.reissue(pair).json
        api.reissue(pair)  # grace replay
        other = api.login()
        listed = api.get_json("/auth/sessions", other)["sessions"]
        own = next(s["sid"] for s in listed if s["current"])
        api.client.delete(f"/auth/sessions/{own}", headers=bearer(other["access_token"]))
        api.logout(new)
        third = api.login()
        api.client.post("/auth/logout-all", headers=bearer(third["access_token"]))
        for p in (pair, new, other, third):
            secrets_seen += [p["access_token"], p["refresh_token"]]
            secrets_seen += [p["access_token"].split(".")[2], p["refresh_token"].split(".")[2]]
    text = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    for secret in secrets_seen:
        assert secret not in text
    events = [r.getMessage() for r in caplog.records if r.name == "flask_dualtoken"]
    for expected in (
        "session started",
        "login failed",
        "tokens reissued",
        "session revoked",
        "logged out",
        "all sessions revoked",
    ):
        assert any(m.startswith(expected) for m in events), expected
    started = next(m for m in events if m.startswith("session started"))
    assert "user_id='1'" in started
    assert "session_id=" in started
    assert "ip='127.0.0.1'" in started


def test_reuse_and_throttling_are_warnings(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="flask_dualtoken"):
        pair = api.login()
        api.reissue(pair)
        api.reissue(api.reissue(pair).json)
        api.reissue(pair)  # generation 0 after generation 2 exists: reuse
        for _ in range(6):
            api.client.post("/auth/login", json={"username": "bob", "password": "x"})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("refresh token reuse detected") for m in warnings)
    assert any(m.startswith("login throttled: username='bob'") for m in warnings)


def test_signals_carry_no_tokens(app: Any, api: Api) -> None:
    from flask_dualtoken import signals

    payloads: list[dict[str, Any]] = []

    def receiver(sender: Any, **kw: Any) -> None:
        payloads.append(kw)

    names = [
        "user_logged_in",
        "login_failed",
        "login_throttled",
        "token_reissued",
        "refresh_token_reused",
        "session_logged_out",
        "session_revoked",
        "all_sessions_revoked",
    ]
    for name in names:
        getattr(signals, name).connect(receiver, app)
    try:
        pair = api.login()
        new = api.reissue(pair).json
        api.logout(new)
    finally:
        for name in names:
            getattr(signals, name).disconnect(receiver, app)
    assert len(payloads) == 3
    flat = repr(payloads)
    assert pair["access_token"] not in flat
    assert new["refresh_token"] not in flat
