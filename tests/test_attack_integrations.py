"""Attacks on the integrations (issue 15): Socket.IO (docs/socketio.md), the Flask-Login
adapter (docs/flask-login.md), metrics and traces (docs/operations-metrics.md). Each test
states the rule it holds the code to; ``xfail(strict=True)`` marks what the code gets
wrong today. Apps on fakeredis; Socket.IO served on 127.0.0.1 by tests/test_socketio.py's
helpers.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import fakeredis
import flask_login
import pytest
import requests
from flask import Flask
from flask_login import LoginManager, login_required
from helpers import Api, Users, build_app
from prometheus_client import CollectorRegistry
from test_flask_login import with_flask_login
from test_metrics import Moves
from test_socketio import PATIENCE, cookie_header, login_cookies, refusal_of, serve

from flask_dualtoken import current_user
from flask_dualtoken.flask_login import raise_refusal

EVIL = "http://evil.example"


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    """fakeredis only: nothing here depends on the server."""
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture(autouse=True)
def _forget_the_signal_receiver() -> Any:
    """The Flask-Login adapter connects to a process-wide signal: leave it as found."""
    yield
    flask_login.user_unauthorized.disconnect(raise_refusal)


# -- Socket.IO: the access cookie and the handshake's origin -------------------------------------


class Polling:
    """Engine.IO's polling transport spoken by hand, as a browser page's requests are:
    each request with ``origin`` as its Origin header (None: none), and no cookie."""

    def __init__(self, url: str, origin: str | None = EVIL) -> None:
        self.base = f"{url}/socket.io/?EIO=4&transport=polling"
        self.headers = {} if origin is None else {"Origin": origin}
        self.sid = ""

    def handshake(self) -> None:
        answer = requests.get(self.base, headers=self.headers, timeout=PATIENCE)
        assert answer.status_code == 200, answer.text
        self.sid = json.loads(answer.text[1:])["sid"]

    def handshake_as_a_script_tag(self, cookies: str) -> None:
        """``<script src=".../socket.io/?EIO=4&transport=polling&j=0">`` on a page of the
        same site: the browser sends the cookies (SameSite Lax and Strict alike: same
        site), no Origin header (a no-cors GET), and runs the answer, JSONP, in the page's
        own ``___eio[0]`` callback: the page reads the Engine.IO session id."""
        answer = requests.get(f"{self.base}&j=0", headers={"Cookie": cookies}, timeout=PATIENCE)
        assert answer.status_code == 200, answer.text
        found = re.fullmatch(r'___eio\[0\]\((".*")\);', answer.text, re.S)
        assert found, answer.text
        opened = json.loads(found[1])  # the JS string literal: '0{"sid": ...}'
        assert opened.startswith("0"), opened
        self.sid = json.loads(opened[1:])["sid"]

    def send(self, packet: str) -> None:
        """A POST of the page's own (a no-cors fetch, a text/plain body)."""
        answer = requests.post(
            f"{self.base}&sid={self.sid}",
            data=packet.encode(),
            headers={**self.headers, "Content-Type": "text/plain;charset=UTF-8"},
            timeout=PATIENCE,
        )
        assert answer.status_code == 200, answer.text

    def wait_for(self, *prefixes: str) -> str:
        """Poll until a packet that starts with one of ``prefixes`` comes."""
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            answer = requests.get(
                f"{self.base}&sid={self.sid}", headers=self.headers, timeout=PATIENCE
            )
            if answer.status_code != 200:
                return f"http {answer.status_code}: {answer.text}"
            for packet in answer.text.split("\x1e"):
                if packet.startswith(prefixes):
                    return packet
                if packet == "2":  # Engine.IO's ping: answer it, or the server closes
                    self.send("3")
        raise AssertionError(f"no packet starting with {prefixes} came")

    def close(self) -> None:
        if self.sid:
            with contextlib.suppress(requests.RequestException, AssertionError):
                self.send("1")  # Engine.IO's close


def test_a_jsonp_polling_handshake_cannot_lend_the_access_cookie_to_another_origin(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION="cookies")
    cookies = login_cookies(app)
    with serve(app, cors_allowed_origins="*") as site:
        page = Polling(site.url)
        try:
            page.handshake_as_a_script_tag(cookies)
            page.send("40")  # Socket.IO CONNECT to "/", no auth: the cookie decides
            answer = page.wait_for("40", "44")
            if answer.startswith("40"):  # connected: what can the page do with it?
                page.send('421["whoami"]')
                stolen = page.wait_for("431")
                assert "alice" not in stolen, f"another origin read alice's data: {stolen}"
            assert answer.startswith("44") and "csrf_failed" in answer, answer
            assert site.saw("connect") == []
        finally:
            page.close()


def test_with_engine_io_s_default_origins_the_jsonp_page_is_stopped_at_engine_io(
    make_app: Callable[..., Flask],
) -> None:
    """The same page against Engine.IO's default ``cors_allowed_origins`` (the site's own
    origin): it reads the session id, but its own requests carry its Origin, and Engine.IO
    answers them 400 before any Socket.IO packet is read."""
    app = make_app(DUALTOKEN_TOKEN_LOCATION="cookies")
    cookies = login_cookies(app)
    with serve(app) as site:
        page = Polling(site.url)
        try:
            page.handshake_as_a_script_tag(cookies)
            refused = requests.post(
                f"{page.base}&sid={page.sid}", data=b"40", headers=page.headers, timeout=PATIENCE
            )
            assert refused.status_code == 400, refused.text
            assert site.sockets.count == 0
        finally:
            page.headers = {}  # the close, as the site's own page would send it
            page.close()


def test_a_cookie_handshake_from_look_alike_origins_is_refused(make_app: Any) -> None:
    """Origin variants of the site's own: another port, another scheme, a longer host that
    starts with the site's, a trailing dot, "null", a path: each 403 csrf_failed."""
    app = make_app(DUALTOKEN_TOKEN_LOCATION="cookies")
    cookies = login_cookies(app)
    with serve(app, cors_allowed_origins="*") as site:
        host_port = site.url.removeprefix("http://")
        host, port = host_port.split(":")
        variants = [
            f"http://{host}:{int(port) + 1}",
            f"https://{host_port}",
            f"http://{host}",
            f"http://{host_port}.evil.example",
            f"http://{host}.:{port}",
            f"http://{host_port}@evil.example",
            f"ws://{host_port}",
            "null",
        ]
        for origin in variants:
            refusal = site.peer().refused(site.url, headers={"Cookie": cookies}, origin=origin)
            assert refusal_of("csrf_failed", 403)(refusal), (origin, refusal)
        assert site.sockets.count == 0
        assert site.saw("connect") == []


def test_a_token_of_another_app_s_keys_is_refused(make_app: Any, users: Users) -> None:
    other = build_app(fakeredis.FakeRedis(), users, DUALTOKEN_SECRET_KEY="o" * 48)
    foreign = Api(other).login()["access_token"]
    with serve(make_app()) as site:
        refusal = site.peer().refused(site.url, token=foreign)
        assert refusal_of("token_invalid")(refusal), refusal
        assert site.saw("connect") == []


@pytest.mark.parametrize(
    "token",
    ["\x00", "é.é.é", "a.b", "e30.e30.", "..", "x" * 16_384],
    ids=["nul", "non-ascii", "two-parts", "empty-signature", "dots", "at-the-limit"],
)
def test_odd_tokens_in_the_auth_payload_are_token_invalid_not_a_server_error(
    app: Flask, token: str
) -> None:
    with serve(app) as site:
        refusal = site.peer().refused(site.url, token=token)
        assert refusal_of("token_invalid")(refusal), refusal


# -- Socket.IO: the connection's life -------------------------------------------------------------


def connect_refusing_non_admins_slowly(site: Any) -> threading.Event:
    """The app's connect handler: a slow check (a database, a remote service), then
    ``False`` for anyone but an admin, as docs/socketio.md suggests."""
    deciding = threading.Event()

    @site.socketio.on("connect")
    def connect(auth: Any) -> bool:
        deciding.set()
        time.sleep(0.5)
        return bool(current_user.role == "admin")  # bob is refused

    return deciding


def test_no_event_runs_before_the_connect_handler_decided_on_a_websocket(
    app: Flask, api: Api
) -> None:
    """Under always_connect the client is told it is connected before the app's connect
    handler runs; an event sent at once on the WebSocket waits for the handler (Engine.IO
    reads one message at a time there), and is dropped with the refused connection."""
    with serve(app, always_connect=True) as site:
        deciding = connect_refusing_non_admins_slowly(site)
        bob = site.peer()
        bob.connect(site.url, token=api.login("bob")["access_token"])
        assert deciding.wait(PATIENCE)
        bob.client.emit("whoami")  # at once, while the connect handler decides
        bob.wait_gone()
        time.sleep(0.2)
        assert site.saw("whoami") == []


def test_no_event_runs_before_the_connect_handler_decided_on_polling(app: Flask, api: Api) -> None:
    with serve(app, always_connect=True) as site:
        deciding = connect_refusing_non_admins_slowly(site)
        token = api.login("bob")["access_token"]
        client = Polling(site.url, origin=None)
        try:
            client.handshake()
            connecting = threading.Thread(
                target=client.send, args=("40" + json.dumps({"token": token}),)
            )
            connecting.start()  # its POST is answered once the connect handler returns
            assert deciding.wait(PATIENCE)
            client.send('421["whoami"]')
            connecting.join(PATIENCE)
            time.sleep(0.2)
            assert site.saw("whoami") == [], "bob's event ran before his refusal"
        finally:
            client.close()


def test_concurrent_events_of_two_users_each_see_their_own_user(site_pair: Any) -> None:
    site, alice, bob = site_pair
    wrong: list[tuple[str, Any]] = []

    def ask(peer: Any, name: str) -> None:
        for _ in range(15):
            answer = peer.whoami()
            if answer["user"] != name:
                wrong.append((name, answer))

    threads = [
        threading.Thread(target=ask, args=(peer, name))
        for peer, name in ((alice, "alice"), (bob, "bob"), (alice, "alice"), (bob, "bob"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=PATIENCE * 3)
    assert wrong == []
    assert sorted(set(site.saw("whoami"))) == ["alice", "bob"]


@pytest.fixture
def site_pair(app: Flask, api: Api) -> Any:
    with serve(app) as site:
        alice, bob = site.peer(), site.peer()
        alice.connect(site.url, token=api.login("alice")["access_token"])
        bob.connect(site.url, token=api.login("bob")["access_token"])
        yield site, alice, bob


def test_many_connections_and_refusals_leave_the_index_bounded(
    make_app: Any, users: Users
) -> None:
    """Held state is bounded by the sockets held: 300 connects, disconnects and refused
    connects (of an ended session) leave no socket, no index entry, and a small heap."""
    from flask_socketio import SocketIO

    from flask_dualtoken.socketio import accept_access_tokens

    app = make_app()
    socketio = SocketIO(app, async_mode="threading")
    sockets = accept_access_tokens(socketio)
    api = Api(app)
    good = api.login("bob")
    ended = api.login("alice")
    assert api.logout(ended).status_code == 204
    try:
        for n in range(150):
            client = socketio.test_client(app, auth={"token": good["access_token"]})
            assert client.is_connected()
            client.disconnect()
            refused = socketio.test_client(app, auth={"token": ended["access_token"]})
            assert not refused.is_connected(), n
        assert sockets.count == 0
        assert sockets._sessions == {app: {}}
        assert sockets._ending == set()
        assert len(sockets._expiries) <= 66
    finally:
        socketio.server.shutdown()


# -- Flask-Login ---------------------------------------------------------------------------------


def test_an_unrelated_flask_login_app_of_the_process_keeps_its_own_answers(
    app: Flask, users: Users, api: Api
) -> None:
    """The adapter's receiver is connected to Flask-Login's process-wide signal: another
    app (no flask-dualtoken) that refuses a visitor answers as it always did, even after
    a refusal of a token in the first app, and a bearer header means nothing to it."""
    site = with_flask_login(app, users)
    assert api.get("/profile", "garbage").json["error"] == "token_invalid"  # connects it
    assert raise_refusal in [r for r in flask_login.user_unauthorized.receivers_for(site.app)]

    other = Flask("unrelated")
    other.secret_key = "another-app"
    manager = LoginManager(other)
    manager.user_loader(lambda user_id: None)
    manager.unauthorized_handler(lambda: ({"theirs": "please log in"}, 401))

    @other.get("/private")
    @login_required
    def private() -> str:
        return "secret"

    client = other.test_client()
    for headers in ({}, {"Authorization": "Bearer garbage"}):
        answer = client.get("/private", headers=headers)
        assert (answer.status_code, answer.json) == (401, {"theirs": "please log in"})


def test_in_cookie_mode_a_state_changing_view_refuses_a_cross_site_form_post(
    make_app: Any, users: Users
) -> None:
    """A cross-site form POST carries the access cookie (SameSite Lax sends none, but a
    same-site page's does) and no CSRF header: @login_required answers 403, and neither
    the session cookie of Flask-Login nor the view is touched."""
    site = with_flask_login(make_app(DUALTOKEN_TOKEN_LOCATION="cookies"), users)
    browser = site.app.test_client()
    login = browser.post("/auth/login", json={"username": "bob", "password": "correct horse"})
    cookies = cookie_header(login)
    attacker = site.app.test_client(use_cookies=False)  # sends the Cookie header as given
    for extra in ({}, {"Origin": EVIL}, {"Content-Type": "application/x-www-form-urlencoded"}):
        answer = attacker.post("/notes", headers={"Cookie": cookies, **extra}, data="a=b")
        assert answer.status_code == 403, (extra, answer.status_code)
        assert answer.json["error"] == "csrf_failed"
    assert site.saved == []


# -- metrics and traces ---------------------------------------------------------------------------


@pytest.mark.xfail(
    strict=True,
    reason=(
        "a documented limit (instruments.py, docs/operations-metrics.md): observers are "
        "kept per store client, so an app with DUALTOKEN_METRICS = False that shares the "
        "client object of a metered app has its round trips timed in that app's registry"
    ),
)
def test_an_app_with_metrics_off_is_not_timed_by_another_app_on_the_same_client(
    make_app: Callable[..., Flask],
) -> None:
    registry = CollectorRegistry()
    make_app(DUALTOKEN_METRICS=registry)  # metered, on this test's client
    quiet = make_app(DUALTOKEN_METRICS=False, DUALTOKEN_TRACING=False)
    moved = Moves(registry)
    Api(quiet).login()
    assert moved.store_calls() == {}
