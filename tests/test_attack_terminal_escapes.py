"""Attack class: terminal and log escapes through client strings (user agent, address).

A client controls its User-Agent, and behind ProxyFix its address (X-Forwarded-For). Sent
with ESC, BEL, C1 or Unicode line/bidi controls, these must never reach an operator's
terminal (``flask dualtoken sessions``), a log line or a signal receiver raw, and must be
stored no longer than their bounds.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from flask import Flask
from helpers import Api, bearer, session_hash, sid_of
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_dualtoken import signals
from flask_dualtoken.context import request_client
from flask_dualtoken.errors import DualTokenError
from flask_dualtoken.flows import login
from flask_dualtoken.state import get_state
from flask_dualtoken.store import ClientInfo, SessionStore
from flask_dualtoken.tokens import new_id

#: What must never come out of a client string: C0, DEL, C1, line/paragraph separators
#: and Unicode's Bidi_Control characters.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
ALL_UNSAFE = "".join(
    chr(c)
    for c in [
        *range(0x00, 0x20),
        *range(0x7F, 0xA0),
        0x061C,
        0x200E,
        0x200F,
        *range(0x2028, 0x202F),
        *range(0x2066, 0x206A),
    ]
)
#: Set window title, bell, clear screen, colour, C1 CSI, NEL, line separator, right-to-left
#: override (Trojan Source), isolate, NUL, DEL: the user agent an attacker logs in with.
HOSTILE = (
    "Mozilla/5.0 \x1b]0;pwned\x07\x1b[2J\x1b[31mred\x9b1m\x85next\u2028line"
    "\u202egnp.exe\u2066x\u2069\x00\x7f end"
)
HOSTILE_ADDRESS = "203.0.113.9\x1b[2J\x07\x9b31m\u202e"
MAX_USER_AGENT_CHARS = 256
MAX_ADDRESS_CHARS = 64


def unsafe_in(text: str, allowed: str = "") -> list[str]:
    return [c for c in UNSAFE.findall(text) if c not in allowed]


def cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["dualtoken", *args])


def formatted(caplog: pytest.LogCaptureFixture) -> list[str]:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    return [fmt.format(r) for r in caplog.records]


def proxied(app: Flask) -> Api:
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    return Api(app)


def test_request_client_replaces_every_unsafe_character_and_keeps_the_rest(app: Flask) -> None:
    visible = "Mozilla/5.0 (X11; é; ü) \\x1b ? \ufffd"
    agent = visible + ALL_UNSAFE
    with app.test_request_context(environ_base={"HTTP_USER_AGENT": agent}):
        client = request_client()
    assert not unsafe_in(client.user_agent)
    assert client.user_agent.startswith(visible)
    assert len(client.user_agent) == len(agent), "one placeholder per character"
    with app.test_request_context(environ_base={"REMOTE_ADDR": "10.0.0.1\x1b\u2028\u202e"}):
        client = request_client()
    assert not unsafe_in(client.ip)
    assert client.ip.startswith("10.0.0.1")


def test_cli_sessions_prints_no_control_character_from_a_user_agent(app: Flask, api: Api) -> None:
    api.client.environ_base["HTTP_USER_AGENT"] = HOSTILE + "\r\n"
    pair = api.login()
    result = cli(app, "sessions", "1")
    assert result.exit_code == 0
    assert sid_of(pair) in result.output
    assert unsafe_in(result.output, allowed="\n") == []
    assert "Mozilla/5.0 " in result.output
    assert "pwned" in result.output, "the text around the controls is still shown"


def test_cli_sessions_escapes_control_characters_already_in_the_store(
    app: Flask, store: SessionStore
) -> None:
    # Written as a version before the fix (or another app) would: raw, unbounded.
    sid = new_id()
    client = ClientInfo(ip=HOSTILE_ADDRESS, user_agent=HOSTILE + "\r\n")
    store.create("1", sid, new_id(), "{}", "{}", client)
    result = cli(app, "sessions", "1")
    assert result.exit_code == 0
    assert sid in result.output
    assert unsafe_in(result.output, allowed="\n") == []
    assert result.output.count("\n") == 2, "one header line and one session line"
    assert "\\x1b]0;pwned\\x07" in result.output, "shown escaped, so the operator sees it"
    assert "\\x9b" in result.output
    assert "\\u202e" in result.output


def test_session_list_returns_agents_with_control_characters_replaced(api: Api) -> None:
    api.client.environ_base["HTTP_USER_AGENT"] = HOSTILE
    first = api.login()
    api.client.environ_base["HTTP_USER_AGENT"] = "\x1b]0;rotated\x07curl/8.5.0"
    other: dict[str, Any] = api.reissue(api.login()).json or {}  # a reissue's agent is stored
    listed = api.get_json("/auth/sessions", other)["sessions"]
    agents = {s["sid"]: s["user_agent"] for s in listed}
    assert set(agents) == {sid_of(first), sid_of(other)}
    for agent in agents.values():
        assert unsafe_in(agent) == []
    assert agents[sid_of(first)].startswith("Mozilla/5.0 ")
    assert "pwned" in agents[sid_of(first)]
    assert agents[sid_of(other)].endswith("rotated\ufffdcurl/8.5.0")


def test_a_forwarded_address_with_control_characters_is_stored_and_logged_without_them(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app: Flask = make_app()
    api = proxied(app)
    store = get_state(app).store
    seen: list[str] = []

    def receiver(sender: Flask, **kw: Any) -> None:
        seen.append(kw["ip"])  # an app's receiver may well log it with %s

    forwarded = {"X-Forwarded-For": HOSTILE_ADDRESS}
    with (
        caplog.at_level(logging.INFO, logger="flask_dualtoken"),
        signals.user_logged_in.connected_to(receiver, app),
        signals.login_failed.connected_to(receiver, app),
    ):
        bad = api.client.post(
            "/auth/login", json={"username": "alice", "password": "no"}, headers=forwarded
        )
        assert bad.status_code == 401
        response = api.client.post(
            "/auth/login",
            json={"username": "alice", "password": "correct horse"},
            headers=forwarded,
        )
        assert response.status_code == 200
        pair = response.json
        assert pair is not None
        again = api.client.post(
            "/auth/reissue",
            json={"refresh_token": pair["refresh_token"]},
            headers={**bearer(pair["access_token"]), **forwarded},
        )
        assert again.status_code == 200
    stored = session_hash(store, "1", sid_of(pair))["ip"]
    assert stored.startswith("203.0.113.9")
    assert unsafe_in(stored) == []
    assert len(seen) == 2
    assert all(unsafe_in(ip) == [] for ip in seen)
    lines = formatted(caplog)
    assert any("203.0.113.9" in line for line in lines)
    assert all(unsafe_in(line) == [] for line in lines)
    listed = api.get_json("/auth/sessions", again.json or {})["sessions"]
    assert all(unsafe_in(s["ip"]) == [] for s in listed)


def test_client_strings_are_stored_at_most_at_their_bounds(make_app: Any) -> None:
    app: Flask = make_app()
    api = proxied(app)
    store = get_state(app).store
    api.client.environ_base["HTTP_USER_AGENT"] = "A" * 10_240
    response = api.client.post(
        "/auth/login",
        json={"username": "alice", "password": "correct horse"},
        headers={"X-Forwarded-For": "1" * 10_240},
    )
    assert response.status_code == 200
    pair = response.json
    assert pair is not None
    listed = api.get_json("/auth/sessions", pair)["sessions"][0]
    assert 0 < len(listed["user_agent"]) <= MAX_USER_AGENT_CHARS
    assert 0 < len(listed["ip"]) <= MAX_ADDRESS_CHARS
    raw = session_hash(store, "1", sid_of(pair))
    assert len(raw["ip"]) <= MAX_ADDRESS_CHARS
    result = cli(app, "sessions", "1")
    assert max(len(line) for line in result.output.splitlines()) < 500


@pytest.mark.parametrize(
    "username",
    ["alice\u202e", "\u2028bob", "nobody\u2066\u200f", "x" * 20 + "\u061c", "eve\x1b[2J"],
)
def test_usernames_with_line_or_bidi_characters_are_refused_and_logged_nowhere(
    api: Api, caplog: pytest.LogCaptureFixture, username: str
) -> None:
    api.client.environ_base["HTTP_USER_AGENT"] = HOSTILE
    api.client.environ_base["REMOTE_ADDR"] = HOSTILE_ADDRESS
    with caplog.at_level(logging.INFO, logger="flask_dualtoken"):
        response = api.client.post("/auth/login", json={"username": username, "password": "x"})
        assert (response.status_code, response.json["error"]) == (400, "invalid_request")
        for _ in range(6):  # failed, then throttled
            api.client.post("/auth/login", json={"username": "mallory", "password": "x"})
        api.login()
    lines = formatted(caplog)
    assert any("login failed" in line for line in lines)
    assert any("login throttled" in line for line in lines)
    assert any("session started" in line for line in lines)
    assert all(unsafe_in(line) == [] for line in lines)


def test_log_lines_of_the_python_api_escape_what_they_are_given(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    # The Python API gets no request_client: its arguments reach the log only through %r.
    client = ClientInfo(ip=HOSTILE_ADDRESS, user_agent=HOSTILE)
    with app.app_context(), caplog.at_level(logging.INFO, logger="flask_dualtoken"):
        with pytest.raises(DualTokenError):
            login(get_state(), "\x1b]0;pwned\x07alice" + ALL_UNSAFE, "x", client)
        login(get_state(), "alice", "correct horse", client)
    lines = formatted(caplog)
    assert len(lines) == 2
    assert all(unsafe_in(line) == [] for line in lines)
    assert all("ip='203.0.113.9\\x1b[2J\\x07\\x9b31m\\u202e'" in line for line in lines)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer \x1b]0;pwned\x07",
        "Bearer a.b.c\x1b[2J",
        "\x1b[2JBasic x",
        "Bearer " + "\u202e" * 10,
        'Bearer x", error="forged',
    ],
)
def test_www_authenticate_never_echoes_the_request(api: Api, authorization: str) -> None:
    response = api.client.get("/me", headers={"Authorization": authorization})
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert unsafe_in(challenge) == []
    assert "pwned" not in challenge and "forged" not in challenge
    body = response.get_data(as_text=True)
    assert unsafe_in(body) == []


def _all_errors(cls: type[DualTokenError]) -> list[type[DualTokenError]]:
    return [cls, *(sub for c in cls.__subclasses__() for sub in _all_errors(c))]


def test_no_error_description_can_break_a_header() -> None:
    # Descriptions go into WWW-Authenticate: a fixed text per error, never client input.
    for error in _all_errors(DualTokenError):
        description = error.description or ""
        assert unsafe_in(description) == [], error
