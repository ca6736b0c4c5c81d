"""Attack class: the client helpers handing credentials or tokens to another origin.

A client built for the app also talks to other hosts: those must never see the password,
the refresh token or the access token, never receive a login or a reissue, and their
``401 token_expired`` must come back untouched. The app (a real flask-dualtoken app, with
two-second access tokens) and a recording "foreign" server both listen on loopback ports.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import requests
from flask import Flask, redirect, request
from helpers import Users, build_app
from servers import free_port
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from flask_dualtoken.client import DualTokenAuthError, HttpxAuth, Pair, RequestsAuth

PASSWORD = "alice-password"
ACCESS = "access.token.given"
REFRESH = "refresh.token.given"
KINDS = ["httpx", "httpx-async", "requests"]


# -- servers ------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        return f"{self.method} {self.path}\n{self.headers}\n{self.body.decode(errors='replace')}"


class Recorder:
    """A foreign server that keeps everything it receives. It answers ``.../ok`` with 200,
    redirects ``POST .../auth/login`` and ``.../auth/reissue`` to ``redirect_to`` (307,
    which keeps the body) when set, and answers anything else ``401 token_expired``."""

    def __init__(self, redirect_to: str | None = None) -> None:
        self.seen: list[Seen] = []
        self.redirect_to = redirect_to
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.answer()

            def do_POST(self) -> None:
                self.answer()

            def answer(self) -> None:
                try:
                    size = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(size) if size else b""
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    recorder.seen.append(Seen(self.command, self.path, headers, body))
                    recorder.respond(self)
                except OSError:  # the client gave up mid-request
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        if self.redirect_to and path.endswith(("/auth/login", "/auth/reissue")):
            status, headers, body = 307, {"Location": self.redirect_to + path}, b""
        elif path.endswith("/ok"):
            status, headers, body = 200, {}, b'{"ok": true}'
        else:
            status, headers, body = 401, {}, b'{"error": "token_expired"}'
        handler.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def paths(self) -> list[str]:
        return [f"{s.method} {s.path}" for s in self.seen]

    def assert_got_nothing_of(self, *secrets: str) -> None:
        for seen in self.seen:
            assert "authorization" not in seen.headers, f"Authorization sent:\n{seen.text()}"
            for secret in secrets:
                assert secret not in seen.text(), f"leaked {secret!r}:\n{seen.text()}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(wsgi_app: Any) -> tuple[str, Callable[[], None]]:
    """Serve a WSGI app on a loopback port from a thread; returns its URL and a stopper."""
    server = make_server("127.0.0.1", free_port(), wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_port}", stop


def make_app() -> Flask:
    users = Users()
    users.add("alice", PASSWORD)
    app = build_app(
        None,
        users,
        DUALTOKEN_REDIS=None,
        DUALTOKEN_REDIS_URL="memory://",
        DUALTOKEN_ACCESS_EXPIRES=2,
    )

    @app.get("/go")
    def go() -> Response:
        """An open redirect on the app's own origin, to lead a client elsewhere."""
        return redirect(request.args["to"], code=int(request.args["code"]))

    return app


@pytest.fixture(scope="module")
def app() -> Iterator[str]:
    url, stop = serve(make_app())
    yield url
    stop()


@pytest.fixture(scope="module")
def api_app() -> Iterator[str]:
    """The app mounted under ``/api`` only: its routes are ``/api/auth/login``, ``/api/me``."""
    url, stop = serve(DispatcherMiddleware(NotFound(), {"/api": make_app()}))
    yield url
    stop()


@pytest.fixture
def foreign() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.close()


@pytest.fixture
def redirector(foreign: Recorder) -> Iterator[Recorder]:
    """An auth server that sends its login and reissue on to the foreign one."""
    recorder = Recorder(redirect_to=foreign.url)
    yield recorder
    recorder.close()


# -- clients ------------------------------------------------------------------------------


class Client:
    """One of the three ways to use the helpers, behind one blocking ``get``."""

    def __init__(self, kind: str, *, follow: bool, **auth_options: Any) -> None:
        self.kind = kind
        self.follow = follow
        self.auth: Any
        if kind == "requests":
            self.auth = RequestsAuth(**auth_options)
            self.session = requests.Session()
            self.session.auth = self.auth
        else:
            self.auth = HttpxAuth(**auth_options)
            self.httpx = httpx.Client(auth=self.auth, follow_redirects=follow, timeout=10)

    def get(self, url: str) -> tuple[int, Any]:
        if self.kind == "requests":
            answer = self.session.get(url, allow_redirects=self.follow, timeout=10)
            return answer.status_code, answer.json()
        if self.kind == "httpx":
            response = self.httpx.get(url)
            return response.status_code, response.json()

        async def get_async() -> tuple[int, Any]:
            async with httpx.AsyncClient(
                auth=self.auth, follow_redirects=self.follow, timeout=10
            ) as client:
                response = await client.get(url)
                return response.status_code, response.json()

        return asyncio.run(get_async())

    def close(self) -> None:
        if self.kind == "requests":
            self.session.close()
        else:
            self.httpx.close()


@pytest.fixture(params=KINDS)
def make_client(request: pytest.FixtureRequest) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def factory(*, follow: bool = False, **auth_options: Any) -> Client:
        made.append(Client(request.param, follow=follow, **auth_options))
        return made[-1]

    yield factory
    for client in made:
        client.close()


def secrets_of(client: Client, *pairs: Pair) -> list[str]:
    known = [p for p in (*pairs, client.auth.pair) if p is not None]
    return [
        PASSWORD,
        ACCESS,
        REFRESH,
        *(t for p in known for t in (p.access_token, p.refresh_token)),
    ]


EXPIRED = (401, {"error": "token_expired"})


def wait_out_the_access_token() -> None:
    time.sleep(2.1)


# -- requests to another origin -----------------------------------------------------------


def test_a_request_to_another_origin_gets_no_token_and_logs_in_nowhere(
    make_client: Callable[..., Client], app: str, foreign: Recorder
) -> None:
    client = make_client(base_url=app, username="alice", password=PASSWORD)
    first = client.get(f"{foreign.url}/data")
    foreign.assert_got_nothing_of(*secrets_of(client))
    assert first == EXPIRED, "its 401 comes back untouched"
    assert client.auth.pair is None, "no login for another origin's request"
    assert client.get(f"{app}/me")[0] == 200
    assert client.get(f"{foreign.url}/data") == EXPIRED
    foreign.assert_got_nothing_of(*secrets_of(client))
    assert foreign.paths() == ["GET /data", "GET /data"]


def test_after_expiry_only_the_apps_origin_reissues(
    make_client: Callable[..., Client], app: str, foreign: Recorder
) -> None:
    saved: list[Pair] = []
    client = make_client(
        base_url=app, username="alice", password=PASSWORD, on_refresh=saved.append
    )
    assert client.get(f"{app}/me")[0] == 200
    wait_out_the_access_token()
    answer = client.get(f"{foreign.url}/data")
    foreign.assert_got_nothing_of(*secrets_of(client, *saved))
    assert answer == EXPIRED, "no reissue, no retry"
    assert len(saved) == 1
    assert client.get(f"{app}/me")[0] == 200, "the app's own expiry is still handled"
    assert len(saved) == 2, "one login and one reissue, both at the app"
    assert foreign.paths() == ["GET /data"]
    foreign.assert_got_nothing_of(*secrets_of(client, *saved))


@pytest.mark.parametrize("code", [302, 307])
def test_a_redirect_to_another_origin_carries_no_token(
    make_client: Callable[..., Client], app: str, foreign: Recorder, code: int
) -> None:
    saved: list[Pair] = []
    client = make_client(
        follow=True, base_url=app, username="alice", password=PASSWORD, on_refresh=saved.append
    )
    assert client.get(f"{app}/me")[0] == 200
    query = urlencode({"code": code, "to": f"{foreign.url}/landing"})
    answer = client.get(f"{app}/go?{query}")
    foreign.assert_got_nothing_of(*secrets_of(client, *saved))
    assert answer == EXPIRED, "the foreign 401 comes back untouched"
    assert len(saved) == 1, "and caused no reissue"
    assert foreign.paths() == ["GET /landing"]


# -- login and reissue never follow a redirect --------------------------------------------


@pytest.mark.parametrize("follow", [False, True], ids=["redirects-off", "redirects-on"])
def test_a_login_is_never_redirected(
    make_client: Callable[..., Client], redirector: Recorder, foreign: Recorder, follow: bool
) -> None:
    client = make_client(follow=follow, base_url=redirector.url, username="a", password=PASSWORD)
    with pytest.raises(DualTokenAuthError) as refused:
        client.get(f"{redirector.url}/me")
    foreign.assert_got_nothing_of(PASSWORD)
    assert all(seen.body == b"" for seen in foreign.seen), "the body never went there"
    assert refused.value.error == "redirect_refused"
    assert redirector.paths() == ["POST /auth/login"]


@pytest.mark.parametrize("follow", [False, True], ids=["redirects-off", "redirects-on"])
def test_a_reissue_is_never_redirected(
    make_client: Callable[..., Client], redirector: Recorder, foreign: Recorder, follow: bool
) -> None:
    client = make_client(follow=follow, base_url=redirector.url, pair=Pair(ACCESS, REFRESH))
    with pytest.raises(DualTokenAuthError) as refused:
        client.get(f"{redirector.url}/me")
    foreign.assert_got_nothing_of(ACCESS, REFRESH)
    assert all(seen.body == b"" for seen in foreign.seen), "the body never went there"
    assert refused.value.error == "redirect_refused"
    assert redirector.paths() == ["GET /me", "POST /auth/reissue"]


# -- what counts as the same origin -------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        lambda port: f"http://127.0.0.1:{free_port()}",
        lambda port: f"https://127.0.0.1:{port}",
        lambda port: f"http://localhost:{port}",
    ],
    ids=["same-host-another-port", "https-not-http", "localhost-not-127.0.0.1"],
)
def test_another_port_scheme_or_host_spelling_is_another_origin(
    make_client: Callable[..., Client], foreign: Recorder, base_url: Callable[[int], str]
) -> None:
    client = make_client(base_url=base_url(foreign.port), pair=Pair(ACCESS, REFRESH))
    answer = client.get(f"{foreign.url}/data")
    foreign.assert_got_nothing_of(ACCESS, REFRESH)
    assert answer == EXPIRED
    assert foreign.paths() == ["GET /data"]


@pytest.mark.parametrize(
    ("base_url", "host"),
    [
        ("HTTP://127.0.0.1:{port}/", "127.0.0.1"),
        ("http://127.0.0.1:{port}/api", "127.0.0.1"),
        ("http://127.0.0.1:{port}/api/", "127.0.0.1"),
        ("http://LocalHost:{port}", "localhost"),
    ],
    ids=["case-and-slash", "path-prefix", "path-prefix-slash", "localhost"],
)
def test_the_same_origin_gets_the_token_on_any_path(
    make_client: Callable[..., Client], foreign: Recorder, base_url: str, host: str
) -> None:
    client = make_client(base_url=base_url.format(port=foreign.port), pair=Pair(ACCESS, REFRESH))
    assert client.get(f"http://{host}:{foreign.port}/elsewhere/ok") == (200, {"ok": True})
    assert [s.headers.get("authorization") for s in foreign.seen] == [f"Bearer {ACCESS}"]


def test_an_app_under_a_path_prefix_logs_in_and_reissues_under_it(
    make_client: Callable[..., Client], api_app: str, foreign: Recorder
) -> None:
    saved: list[Pair] = []
    client = make_client(
        base_url=f"{api_app}/api", username="alice", password=PASSWORD, on_refresh=saved.append
    )
    assert client.get(f"{api_app}/api/me")[0] == 200
    assert client.get(f"{foreign.url}/api/me") == EXPIRED
    foreign.assert_got_nothing_of(*secrets_of(client, *saved))
    wait_out_the_access_token()
    assert client.get(f"{api_app}/api/me")[0] == 200
    assert len(saved) == 2, "one login and one reissue, both under /api"
    assert foreign.paths() == ["GET /api/me"]


class FakeHosts(requests.adapters.BaseAdapter):
    """requests' transport replaced: ``http://example.test`` redirects up to ``https``."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(request.copy())
        response = requests.Response()
        response.request, response.url, response.connection = request, request.url, self
        if request.url == "http://example.test/me":
            response.status_code = 301
            response.headers["Location"] = "https://example.test/me"
        else:
            response.status_code, response._content = 401, b'{"error": "token_expired"}'
        return response

    def close(self) -> None:
        pass


def test_requests_drops_the_token_on_a_redirect_up_to_https() -> None:
    # requests keeps Authorization when http://host redirects to https://host (default
    # ports): another origin, so the helper takes its token off. Faked: it needs 80 and 443.
    hosts = FakeHosts()
    with requests.Session() as session:
        session.mount("http://", hosts)
        session.mount("https://", hosts)
        session.auth = RequestsAuth(base_url="http://example.test", pair=Pair(ACCESS, REFRESH))
        answer = session.get("http://example.test/me", timeout=10)
    assert (answer.status_code, answer.json()) == EXPIRED, "the https 401 is not ours either"
    assert [(r.url, r.headers.get("Authorization")) for r in hosts.sent] == [
        ("http://example.test/me", f"Bearer {ACCESS}"),
        ("https://example.test/me", None),
    ]
