"""Socket.IO (``flask_dualtoken.socketio``): a connection authenticates with an access token
(the auth payload, the bearer header, or the access cookie from an allowed origin),
handlers see ``current_user`` and ``get_jwt()``, and a socket ends with its session (push:
within the HTTP bound) and at its token's expiry. python-socketio's client against
Flask-SocketIO served on 127.0.0.1 in this process; fakeredis, and a real redis-server for
the push bound. docs/socketio.md runs as written (its blocks marked ``<!-- run: NAME -->``).
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import pytest
import redis
import socketio as python_socketio
from flask import Flask, request
from flask_socketio import Namespace, SocketIO
from forge import ACCESS_HEADER, KEYS, forge, unverified
from helpers import Api, Users, bearer, build_app, sid_of, stop_revocation_listeners
from optional import DocPage, imported_with_every_module, works_without
from werkzeug.serving import WSGIRequestHandler, make_server

from flask_dualtoken import current_user, get_jwt
from flask_dualtoken.config import KNOWN_KEYS
from flask_dualtoken.errors import SessionRevoked, StoreUnavailable
from flask_dualtoken.openapi import ERROR_CODES
from flask_dualtoken.socketio import ERROR_EVENT, TokenSockets, accept_access_tokens
from flask_dualtoken.state import get_state

PAGE = DocPage("socketio.md")
#: How long a test waits for what should take milliseconds.
PATIENCE = 5.0
#: The push bound a socket must meet here (the HTTP one is 50 ms at p99).
BOUND = 1.0
#: Logouts measured for it.
ROUNDS = 100


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    """This module's apps on fakeredis; the push bound is measured on a real server."""
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


# -- a Socket.IO server of the suite's app, and clients of it -------------------------------------


@dataclass
class Site:
    """The app with Flask-SocketIO on it, served, and what its handlers saw."""

    app: Flask
    socketio: SocketIO
    sockets: TokenSockets
    url: str = ""
    #: (handler, the username current_user was there)
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    #: Its clients, closed before it stops (a long poll would wait out its interval).
    peers: list[Peer] = field(default_factory=list)

    def saw(self, handler: str) -> list[str | None]:
        return [user for name, user in self.seen if name == handler]

    def peer(self) -> Peer:
        made = Peer()
        self.peers.append(made)
        return made


def with_socketio(app: Flask, **options: Any) -> Site:
    # A ping each second: a polling client that ends as a long poll is sent (a race of
    # python-socketio's client, refused or not) waits for the next ping, not 25 s.
    socketio = SocketIO(app, async_mode="threading", ping_interval=1, **options)
    site = Site(app, socketio, accept_access_tokens(socketio))

    @socketio.on("connect")
    def connect(auth: Any) -> None:
        site.seen.append(("connect", current_user.username))

    @socketio.on("disconnect")
    def disconnect(reason: Any) -> None:
        site.seen.append(("disconnect", current_user.username if current_user else None))

    @socketio.on("whoami")
    def whoami() -> dict[str, Any]:
        site.seen.append(("whoami", current_user.username))
        claims = get_jwt()
        return {"user": current_user.username, "role": claims["role"], "sid": claims["sid"]}

    return site


class Handler(WSGIRequestHandler):
    """Werkzeug's, but a connection that was a WebSocket is closed when it ends, rather
    than read on for another request (the client's close frame, as a 400)."""

    def setup(self) -> None:
        super().setup()
        # Frames go out as written (gunicorn sets this on its sockets too), not held by
        # Nagle's algorithm for the client's delayed ACK (40 ms on Linux).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run_wsgi(self) -> None:
        super().run_wsgi()
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self.close_connection = True

    def log_request(self, *args: Any) -> None:
        pass


@contextmanager
def served(app: Any) -> Iterator[str]:
    """The app on a free port of 127.0.0.1, in a thread of this process."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def serve(app: Flask, **options: Any) -> Iterator[Site]:
    site = with_socketio(app, **options)
    try:
        with served(app) as url:
            site.url = url
            try:
                yield site
            finally:
                for peer in site.peers:
                    peer.close()
    finally:
        site.socketio.server.shutdown()


class Peer:
    """A python-socketio client, and what it was told."""

    def __init__(self) -> None:
        self.client = python_socketio.Client(reconnection=False)
        self.errors: list[dict[str, Any]] = []
        self.refusals: list[Any] = []
        self.gone = threading.Event()
        self.gone_at = 0.0
        self.client.on(ERROR_EVENT, self.errors.append)
        self.client.on("connect_error", self.refusals.append)
        self.client.on("disconnect", self._disconnected)

    def _disconnected(self, reason: Any = None) -> None:
        self.gone_at = time.monotonic()
        self.gone.set()

    def connect(
        self,
        url: str,
        *,
        token: str | None = None,
        auth: Any = None,
        headers: dict[str, str] | None = None,
        transport: str = "websocket",
        origin: str | None = None,
    ) -> None:
        if token is not None:
            auth = {"token": token}
        if origin is not None and transport == "websocket":  # websocket-client's default
            self.client.eio.websocket_extra_options = {"origin": origin}  # is the URL's
        elif origin is not None:
            headers = {**(headers or {}), "Origin": origin}
        self.client.connect(
            url,
            auth=auth,
            headers=headers or {},
            transports=[transport],
            wait_timeout=PATIENCE,
        )

    def refused(self, url: str, **kwargs: Any) -> dict[str, Any]:
        """Connect, expecting a refusal: the error the server gave."""
        with pytest.raises(python_socketio.exceptions.ConnectionError):
            self.connect(url, **kwargs)
        assert self.refusals, "refused without a connect_error"
        refusal: dict[str, Any] = self.refusals[-1]
        return refusal

    def whoami(self) -> Any:
        return self.client.call("whoami", timeout=PATIENCE)

    def wait_gone(self) -> None:
        assert self.gone.wait(PATIENCE), "the socket was not disconnected"

    def close(self) -> None:
        self.client.shutdown()


@pytest.fixture
def site(app: Flask) -> Iterator[Site]:
    with serve(app) as served_site:
        yield served_site


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def refusal_of(code: str, status: int = 401) -> Callable[[dict[str, Any]], bool]:
    def check(refusal: dict[str, Any]) -> bool:
        data = refusal.get("data", {})
        return (
            refusal["message"] == code
            and data["error"] == code
            and data["status"] == status
            and bool(data["message"])
        )

    return check


def cookie_header(response: Any) -> str:
    """The Cookie header a browser would send back after ``response``."""
    return "; ".join(c.split(";", 1)[0] for c in response.headers.getlist("Set-Cookie"))


# -- connecting -----------------------------------------------------------------------------------


def test_a_token_in_the_auth_payload_connects_and_handlers_see_its_user(
    site: Site, api: Api
) -> None:
    pair = api.login("alice")
    peer = site.peer()
    peer.connect(site.url, token=pair["access_token"])
    answer = peer.whoami()
    assert answer == {"user": "alice", "role": "admin", "sid": sid_of(pair)}
    assert site.saw("connect") == ["alice"]
    assert site.sockets.count == 1
    peer.client.disconnect()
    wait_until(lambda: site.sockets.count == 0, "the socket was not forgotten")
    assert site.saw("disconnect") == ["alice"]  # the user is there in the handler too


def test_each_event_is_its_own_socket_s_user(site: Site, api: Api) -> None:
    alice, bob = site.peer(), site.peer()
    alice.connect(site.url, token=api.login("alice")["access_token"])
    bob.connect(site.url, token=api.login("bob")["access_token"])
    for _ in range(3):  # Flask-SocketIO runs each event in a fresh request context
        assert alice.whoami()["user"] == "alice"
        assert bob.whoami()["user"] == "bob"


def test_the_polling_transport_and_the_handshake_s_bearer_header_work_too(
    site: Site, api: Api
) -> None:
    pair = api.login()
    polling = site.peer()
    polling.connect(site.url, token=pair["access_token"], transport="polling")
    assert polling.whoami()["user"] == "alice"
    header = site.peer()
    header.connect(site.url, headers=bearer(pair["access_token"]))
    assert header.whoami()["user"] == "alice"


def expired_token(api: Api, seconds_ago: int) -> str:
    claims = unverified(api.login()["access_token"])
    now = int(time.time())
    claims.update(iat=now - 900, exp=now - seconds_ago)
    return forge(ACCESS_HEADER, claims, KEYS.access)


@pytest.mark.parametrize(
    ("presented", "code"),
    [
        (lambda api: None, "token_missing"),
        (lambda api: {"token": "not-a-token"}, "token_invalid"),
        (lambda api: {"token": 42}, "token_invalid"),
        (lambda api: {"token": api.login()["refresh_token"]}, "token_invalid"),
        (lambda api: {"token": expired_token(api, 60)}, "token_expired"),
        (lambda api: {"token": "x" * 20_000}, "token_invalid"),
        (lambda api: {}, "token_missing"),
    ],
    ids=["none", "garbage", "not-a-string", "refresh-token", "expired", "huge", "empty"],
)
def test_a_connection_without_a_good_access_token_is_refused_with_its_error(
    site: Site,
    api: Api,
    presented: Callable[[Api], Any],
    code: str,
) -> None:
    refusal = site.peer().refused(site.url, auth=presented(api))
    assert refusal_of(code)(refusal), refusal
    assert site.sockets.count == 0
    assert site.saw("connect") == []  # the app's connect handler never ran


def test_an_auth_payload_that_is_not_an_object_is_invalid_request(site: Site) -> None:
    refusal = site.peer().refused(site.url, auth="a-token-not-in-an-object")
    assert refusal_of("invalid_request", 400)(refusal), refusal


def test_a_token_expired_but_within_the_leeway_is_refused_as_it_would_end_at_once(
    make_app: Any,
) -> None:
    app = make_app(DUALTOKEN_LEEWAY=30)
    api = Api(app)
    token = expired_token(api, 5)
    assert api.get("/me", token).status_code == 200  # HTTP takes it, within the leeway
    with serve(app) as site:
        refusal = site.peer().refused(site.url, token=token)
    assert refusal_of("token_expired")(refusal), refusal


def test_a_token_of_an_ended_session_is_refused(site: Site, api: Api) -> None:
    pair = api.login()
    assert api.logout(pair).status_code == 204
    refusal = site.peer().refused(site.url, token=pair["access_token"])
    assert refusal_of("session_revoked")(refusal), refusal


def test_the_app_s_connect_handler_may_refuse_and_nothing_is_kept(app: Flask, api: Api) -> None:
    with serve(app) as site:

        @site.socketio.on("connect")
        def connect(auth: Any) -> bool:
            return current_user.role == "admin"  # False refuses

        site.peer().refused(site.url, token=api.login("bob")["access_token"])
        assert site.sockets.count == 0
        admin = site.peer()
        admin.connect(site.url, token=api.login("alice")["access_token"])
        assert site.sockets.count == 1


def test_every_namespace_authenticates_with_a_connect_handler_or_without(
    app: Flask, api: Api
) -> None:
    class Rooms(Namespace):  # Flask-SocketIO's class-based handlers
        def on_connect(self, auth: Any) -> None:
            site.seen.append(("rooms-connect", current_user.username))

        def on_whoami(self) -> str:
            return str(current_user.username)

    with serve(app) as site:

        @site.socketio.on("whoami", namespace="/chat")  # and no connect handler there
        def chat_whoami() -> str:
            return str(current_user.username)

        site.socketio.on_namespace(Rooms("/rooms"))
        for namespace in ("/chat", "/rooms"):
            refused = site.peer()
            refused.client.on("connect_error", refused.refusals.append, namespace=namespace)
            with pytest.raises(python_socketio.exceptions.ConnectionError):
                refused.client.connect(
                    site.url, namespaces=[namespace], transports=["websocket"], wait_timeout=5
                )
            assert refusal_of("token_missing")(refused.refusals[-1]), refused.refusals
            peer = site.peer()
            peer.client.connect(
                site.url,
                namespaces=[namespace],
                auth={"token": api.login("bob")["access_token"]},
                transports=["websocket"],
                wait_timeout=5,
            )
            assert peer.client.call("whoami", namespace=namespace, timeout=5) == "bob"
        assert site.saw("rooms-connect") == ["bob"]
        assert site.saw("connect") == []  # "/" was never asked for


def test_with_always_connect_a_bad_token_is_disconnected_at_once(app: Flask, api: Api) -> None:
    with serve(app, always_connect=True) as site:
        bad = site.peer()
        with contextlib.suppress(python_socketio.exceptions.ConnectionError):
            bad.connect(site.url, token="forged")
        bad.wait_gone()
        assert site.sockets.count == 0
        assert site.saw("connect") == []
        good = site.peer()
        good.connect(site.url, token=api.login()["access_token"])
        assert good.whoami()["user"] == "alice"


def test_a_socket_whose_session_ends_while_it_connects_is_refused(app: Flask, api: Api) -> None:
    with serve(app) as site:

        @site.socketio.on("connect")
        def connect(auth: Any) -> None:
            # As if the guard told of the session's end now: after the check, before the
            # connection is answered.
            site.sockets._end((request.namespace, request.sid), SessionRevoked())

        refusal = site.peer().refused(site.url, token=api.login()["access_token"])
        assert refusal_of("session_revoked")(refusal), refusal
        assert site.sockets.count == 0


def test_accept_access_tokens_needs_the_server_and_twice_is_harmless(app: Flask) -> None:
    with pytest.raises(RuntimeError, match="after SocketIO"):
        accept_access_tokens(SocketIO())
    socketio = SocketIO(app, async_mode="threading")
    first = accept_access_tokens(socketio)
    assert accept_access_tokens(socketio) is first


# -- cookie mode: the access cookie, and the handshake's origin -----------------------------------


@pytest.fixture
def cookie_app(make_app: Any) -> Flask:
    return make_app(DUALTOKEN_TOKEN_LOCATION="cookies")


def login_cookies(app: Flask, username: str = "alice") -> str:
    response = app.test_client().post(
        "/auth/login", json={"username": username, "password": "correct horse"}
    )
    assert response.status_code == 200, response.json
    return cookie_header(response)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_in_cookie_mode_the_access_cookie_connects_from_the_site_itself(
    cookie_app: Flask, transport: str
) -> None:
    cookies = login_cookies(cookie_app)
    with serve(cookie_app) as site:
        same = site.peer()
        same.connect(site.url, headers={"Cookie": cookies}, transport=transport, origin=site.url)
        assert same.whoami()["user"] == "alice"
        refusal = site.peer().refused(site.url, transport=transport)  # no cookie
        assert refusal_of("token_missing")(refusal), refusal


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_cookie_handshake_from_another_origin_is_refused_even_with_cors_for_all(
    cookie_app: Flask, transport: str
) -> None:
    cookies = login_cookies(cookie_app)
    # "*": Engine.IO lets every origin through; the cookie is still refused.
    with serve(cookie_app, cors_allowed_origins="*") as site:
        for origin in ("http://evil.example", "null", site.url.replace("127.0.0.1", "localhost")):
            refusal = site.peer().refused(
                site.url, headers={"Cookie": cookies}, transport=transport, origin=origin
            )
            assert refusal_of("csrf_failed", 403)(refusal), (origin, refusal)
        assert site.sockets.count == 0
        assert site.saw("connect") == []
        same = site.peer()
        same.connect(site.url, headers={"Cookie": cookies}, transport=transport, origin=site.url)
        assert same.whoami()["user"] == "alice"


def test_a_handshake_without_an_origin_header_is_no_cross_site_request(cookie_app: Flask) -> None:
    cookies = login_cookies(cookie_app)
    with serve(cookie_app, cors_allowed_origins="*") as site:
        peer = site.peer()
        peer.client.eio.websocket_extra_options = {"suppress_origin": True}
        peer.connect(site.url, headers={"Cookie": cookies})
        assert peer.whoami()["user"] == "alice"


def test_an_origin_named_in_cors_allowed_origins_may_use_the_cookie(cookie_app: Flask) -> None:
    cookies = login_cookies(cookie_app)
    with serve(cookie_app, cors_allowed_origins=["https://app.example"]) as site:
        named = site.peer()
        named.connect(site.url, headers={"Cookie": cookies}, origin="https://app.example")
        assert named.whoami()["user"] == "alice"
        # Any other origin: Engine.IO itself answers 400 before any Socket.IO connect.
        with pytest.raises(python_socketio.exceptions.ConnectionError):
            site.peer().connect(
                site.url, headers={"Cookie": cookies}, origin="http://evil.example"
            )
        assert site.sockets.count == 1


def test_a_callable_cors_allowed_origins_decides_for_the_cookie_too(cookie_app: Flask) -> None:
    cookies = login_cookies(cookie_app)
    asked: list[str] = []

    def allowed(origin: str, environ: dict[str, Any]) -> bool:
        asked.append(origin)
        return origin == "https://partner.example"

    with serve(cookie_app, cors_allowed_origins=allowed) as site:
        partner = site.peer()
        partner.connect(site.url, headers={"Cookie": cookies}, origin="https://partner.example")
        assert partner.whoami()["user"] == "alice"
    assert "https://partner.example" in asked


def test_a_token_in_the_auth_payload_is_no_ambient_credential_any_origin_may_send_it(
    make_app: Any,
) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION="both")
    with serve(app, cors_allowed_origins="*") as site:
        peer = site.peer()
        peer.connect(
            site.url, token=Api(app).login()["access_token"], origin="http://other.example"
        )
        assert peer.whoami()["user"] == "alice"


def test_in_cookie_only_mode_the_auth_payload_is_not_read_as_a_bearer_header_is_not(
    cookie_app: Flask,
) -> None:
    cookies = login_cookies(cookie_app)
    with serve(cookie_app) as site:
        refusal = site.peer().refused(site.url, token="whatever-the-page-sends")
        assert refusal_of("token_missing")(refusal), refusal
        peer = site.peer()  # the cookie decides, whatever the payload says
        peer.connect(site.url, token="not-read", headers={"Cookie": cookies}, origin=site.url)
        assert peer.whoami()["user"] == "alice"


# -- a socket ends with its session (push revocation, the default) --------------------------------


def test_logout_over_http_disconnects_the_session_s_socket_at_once(site: Site, api: Api) -> None:
    pair = api.login()
    peer, other = site.peer(), site.peer()
    peer.connect(site.url, token=pair["access_token"])
    other.connect(site.url, token=api.login()["access_token"])  # another session of alice
    started = time.monotonic()
    assert api.logout(pair).status_code == 204
    peer.wait_gone()
    lag = peer.gone_at - started
    assert lag < BOUND, lag
    assert [e["error"] for e in peer.errors] == ["session_revoked"]
    assert peer.errors[0]["status"] == 401
    assert site.saw("disconnect") == ["alice"]
    assert other.whoami()["user"] == "alice"  # another session is another matter
    assert site.sockets.count == 1


def test_revoking_a_session_in_python_disconnects_its_sockets(site: Site, api: Api) -> None:
    pair = api.login("bob")
    first, second = site.peer(), site.peer()
    first.connect(site.url, token=pair["access_token"])
    second.connect(site.url, token=pair["access_token"], transport="polling")
    with site.app.app_context():
        assert site.app.extensions["dualtoken_object"].revoke_session("2", sid_of(pair))
    first.wait_gone()
    second.wait_gone()
    assert site.sockets.count == 0


def test_logout_all_disconnects_every_socket_of_the_user_and_no_one_else_s(
    site: Site, api: Api
) -> None:
    sessions = [api.login("alice") for _ in range(2)]
    alice = [site.peer() for _ in range(3)]
    for peer, pair in zip(alice, [*sessions, sessions[0]], strict=True):
        peer.connect(site.url, token=pair["access_token"])
    bob = site.peer()
    bob.connect(site.url, token=api.login("bob")["access_token"])
    response = api.client.post("/auth/logout-all", headers=bearer(sessions[1]["access_token"]))
    assert response.status_code == 204, response.json
    for peer in alice:
        peer.wait_gone()
        assert [e["error"] for e in peer.errors] == ["session_revoked"]
    assert bob.whoami()["user"] == "bob"
    assert not bob.gone.is_set()
    assert site.sockets.count == 1


def test_a_socket_of_a_session_started_after_logout_all_stays(site: Site, api: Api) -> None:
    old = api.login()
    peer = site.peer()
    peer.connect(site.url, token=old["access_token"])
    assert api.client.post("/auth/logout-all", headers=bearer(old["access_token"])).status_code
    peer.wait_gone()
    fresh = site.peer()
    fresh.connect(site.url, token=api.login()["access_token"])
    # the guard tells "every session of alice" again (as a listener that hears it late
    # would): the new session's socket is checked, and stays.
    site.sockets._heard(site.app, "1", None)
    time.sleep(0.2)
    assert fresh.whoami()["user"] == "alice"
    assert not fresh.gone.is_set()


def test_a_new_listening_period_rechecks_every_socket_held(
    site: Site, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept, ended = api.login("alice"), api.login("bob")
    keep, lose = site.peer(), site.peer()
    keep.connect(site.url, token=kept["access_token"])
    lose.connect(site.url, token=ended["access_token"])
    with monkeypatch.context() as deaf:  # the announcements are lost, as in a gap
        deaf.setattr(site.sockets, "_heard", lambda *told: None)
        assert api.logout(ended).status_code == 204
        assert not lose.gone.wait(0.3)  # (the listener's copy of it too, by now)
    # A new period: "check what you hold again".
    site.sockets._heard(site.app, None, None)
    lose.wait_gone()
    assert [e["error"] for e in lose.errors] == ["session_revoked"]
    assert keep.whoami()["user"] == "alice"
    assert not keep.gone.is_set()


def test_the_index_of_sessions_holds_only_the_sockets_held(site: Site, api: Api) -> None:
    made = [site.peer() for _ in range(5)]
    for peer in made:
        peer.connect(site.url, token=api.login("bob")["access_token"])
    assert site.sockets.count == 5
    for peer in made:
        peer.client.disconnect()
    wait_until(lambda: site.sockets.count == 0, "sockets were kept after they left")
    assert site.sockets._sessions == {site.app: {}}
    wait_until(lambda: not site.sockets._ticking, "the timer runs without sockets")


# -- strict and expiry modes: each event checks again; every socket ends at exp -------------------


def test_strict_mode_checks_the_session_at_each_event(make_app: Any) -> None:
    app = make_app(DUALTOKEN_REVOCATION="strict")
    api = Api(app)
    pair = api.login()
    with serve(app) as site:
        peer = site.peer()
        peer.connect(site.url, token=pair["access_token"])
        assert peer.whoami()["user"] == "alice"
        assert api.logout(pair).status_code == 204  # strict mode pushes nothing
        assert not peer.gone.wait(0.3)
        peer.client.emit("whoami")  # refused: no answer, the handler does not run
        peer.wait_gone()
        assert [e["error"] for e in peer.errors] == ["session_revoked"]
        assert site.saw("whoami") == ["alice"]


def test_an_event_while_the_store_cannot_answer_is_refused_and_the_socket_kept(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(DUALTOKEN_REVOCATION="strict")
    with serve(app) as site:
        peer = site.peer()
        peer.connect(site.url, token=Api(app).login()["access_token"])
        guard = get_state(app).revocation

        def unavailable(user_id: str, sid: str, exp: int) -> None:
            raise StoreUnavailable()

        monkeypatch.setattr(guard, "check", unavailable)
        assert peer.whoami() is None
        wait_until(lambda: bool(peer.errors), "the client was not told")
        assert peer.errors == [
            {"error": "store_unavailable", "message": StoreUnavailable.description, "status": 503}
        ]
        monkeypatch.undo()
        assert peer.whoami()["user"] == "alice"
        assert not peer.gone.is_set()


def test_expiry_mode_keeps_a_logged_out_socket_until_its_token_expires_then_ends_it(
    make_app: Any,
) -> None:
    app = make_app(DUALTOKEN_REVOCATION="expiry", DUALTOKEN_ACCESS_EXPIRES=2)
    api = Api(app)
    pair = api.login()
    exp = unverified(pair["access_token"])["exp"]
    with serve(app) as site:
        peer = site.peer()
        peer.connect(site.url, token=pair["access_token"])
        assert api.logout(pair).status_code == 204
        assert peer.whoami()["user"] == "alice"  # "expiry": good until it expires
        peer.wait_gone()  # no event needed: the timer
        late = time.time() - exp
        assert 0 <= late < BOUND, late
        assert [e["error"] for e in peer.errors] == ["token_expired"]
        wait_until(lambda: site.sockets.count == 0, "an expired socket was kept")


def test_every_mode_ends_a_socket_when_its_token_expires_without_any_event(make_app: Any) -> None:
    app = make_app(DUALTOKEN_ACCESS_EXPIRES=2)  # push
    pair = Api(app).login()
    exp = unverified(pair["access_token"])["exp"]
    with serve(app) as site:
        peer = site.peer()
        peer.connect(site.url, token=pair["access_token"])
        peer.wait_gone()
        assert 0 <= time.time() - exp < BOUND
        assert [e["error"] for e in peer.errors] == ["token_expired"]


def test_an_event_after_the_token_expired_is_refused_before_its_handler(
    make_app: Any, users: Users
) -> None:
    app = make_app(DUALTOKEN_ACCESS_EXPIRES=2)
    site = with_socketio(app)
    pair = Api(app).login()
    client = site.socketio.test_client(app, auth={"token": pair["access_token"]})
    assert client.emit("whoami", callback=True)["user"] == "alice"
    # Hold the timer off, so that this event is what meets the expiry.
    with site.sockets._lock:
        site.sockets._expiries.clear()
    time.sleep(max(0.0, unverified(pair["access_token"])["exp"] - time.time()) + 0.05)
    client.emit("whoami")
    assert not client.is_connected()
    assert site.saw("whoami") == ["alice"]
    assert site.sockets.count == 0


def test_a_user_gone_since_the_connection_ends_the_socket_as_user_unavailable(
    site: Site, api: Api, users: Users
) -> None:
    peer = site.peer()
    peer.connect(site.url, token=api.login("bob")["access_token"])
    users.by_id["2"].active = False
    peer.client.emit("whoami")  # its handler reads current_user: 401 user_unavailable
    peer.wait_gone()
    assert [e["error"] for e in peer.errors] == ["user_unavailable"]


# -- the push bound, on a real redis-server: the logout in one app, the socket in another ---------


@pytest.fixture
def two_apps(redis_server: Any, users: Users) -> Iterator[tuple[Flask, Flask]]:
    """Two apps on one real Redis, as two processes would be: each its own client, its own
    push listener."""
    clients: list[redis.Redis] = [redis_server.client() for _ in range(2)]
    clients[0].flushall()
    try:
        yield build_app(clients[0], users), build_app(clients[1], users)
    finally:
        stop_revocation_listeners()
        for client in clients:
            client.close()


@pytest.mark.real_redis
def test_a_logout_in_another_app_disconnects_the_socket_within_the_push_bound(
    two_apps: tuple[Flask, Flask],
) -> None:
    http_app, socket_app = two_apps
    api = Api(http_app)
    lags: list[float] = []
    with serve(socket_app) as site:
        warm = site.peer()  # the socket app's first check starts its listener
        warm.connect(site.url, token=api.login("bob")["access_token"])
        time.sleep(0.3)
        for _ in range(ROUNDS):
            pair = api.login()
            peer = site.peer()
            peer.connect(site.url, token=pair["access_token"])
            assert api.logout(pair).status_code == 204
            logged_out = time.monotonic()
            peer.wait_gone()
            lags.append(peer.gone_at - logged_out)
            assert [e["error"] for e in peer.errors] == ["session_revoked"]
            peer.close()
        assert not warm.gone.is_set()
    lags.sort()
    p99 = lags[max(0, round(0.99 * len(lags)) - 1)]
    print(
        f"socket disconnect after a logout in another app: median {statistics.median(lags):.4f}"
        f" s, p99 {p99:.4f} s, max {lags[-1]:.4f} s over {len(lags)}"
    )
    assert lags[-1] < BOUND, lags


@pytest.mark.real_redis
def test_a_logout_all_in_another_app_disconnects_every_socket_of_the_user(
    two_apps: tuple[Flask, Flask],
) -> None:
    http_app, socket_app = two_apps
    api = Api(http_app)
    with serve(socket_app) as site:
        bob = site.peer()
        bob.connect(site.url, token=api.login("bob")["access_token"])
        sessions = [api.login() for _ in range(3)]
        alice = [site.peer() for _ in sessions]
        for peer, pair in zip(alice, sessions, strict=True):
            peer.connect(site.url, token=pair["access_token"])
        time.sleep(0.3)
        response = api.client.post("/auth/logout-all", headers=bearer(sessions[0]["access_token"]))
        assert response.status_code == 204, response.json
        logged_out = time.monotonic()
        for peer in alice:
            peer.wait_gone()
        lag = max(peer.gone_at for peer in alice) - logged_out
        print(f"every socket of the user disconnected {lag:.4f} s after logout-all")
        assert lag < BOUND
        assert bob.whoami()["user"] == "bob"
        assert site.sockets.count == 1


# -- the extra costs nothing when not installed ---------------------------------------------------


def test_no_module_of_flask_dualtoken_imports_flask_socketio() -> None:
    imported = imported_with_every_module(
        "flask_socketio", "socketio", "engineio", "flask_dualtoken.socketio"
    )
    assert imported == [False, False, False, True]


def test_flask_dualtoken_works_without_flask_socketio_installed() -> None:
    assert works_without(("flask_socketio", "socketio"), "socketio")


# -- docs/socketio.md -----------------------------------------------------------------------------


def test_every_python_block_of_the_page_runs() -> None:
    python, marked = PAGE.python_blocks()
    assert python == marked == 3


@pytest.fixture
def page_app(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The page's app.py, run as written, on the memory:// store."""
    monkeypatch.setenv("FLASK_DUALTOKEN_SECRET_KEY", "d" * 48)
    monkeypatch.setenv("FLASK_DUALTOKEN_REDIS_URL", "memory://")
    namespace: dict[str, Any] = {"__name__": "app"}  # as if run as app.py
    PAGE.run("socketio-app", namespace)
    return namespace


def test_the_page_s_app_answers_its_demo_as_the_page_shows(
    page_app: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    PAGE.run("socketio-demo", page_app)
    printed = capsys.readouterr().out.splitlines()
    assert printed == PAGE.blocks("output", "socketio-demo").splitlines()


def test_the_page_s_client_talks_to_the_page_s_app_served_for_real(
    page_app: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    app: Flask = page_app["app"]
    login = app.test_client().post(
        "/auth/login", json={"username": "ada@example.com", "password": "correct horse"}
    )
    try:
        with served(app) as url:
            capsys.readouterr()
            PAGE.run("socketio-client", {"url": url, "access_token": login.json["access_token"]})
            printed = capsys.readouterr().out.splitlines()
    finally:
        page_app["socketio"].server.shutdown()
    assert printed == ["ada@example.com"]


def test_the_page_names_only_settings_and_error_codes_that_exist() -> None:
    keys, codes = PAGE.names()
    assert keys
    assert codes
    assert keys <= KNOWN_KEYS, keys - KNOWN_KEYS
    assert codes <= set(ERROR_CODES), codes - set(ERROR_CODES)
