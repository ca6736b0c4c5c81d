"""What tests share besides fixtures: the test users, app builders, an HTTP client of the
blueprint, token helpers, a clock that moves the app's and the store's time, and a WSGI
app served on a loopback port in a thread."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
import redis
from flask import Flask, Response
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.serving import make_server

from flask_dualtoken import DualToken, current_user, get_jwt, jwt_required, revocation
from flask_dualtoken.store import SessionStore

SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


FAST_HASH = "pbkdf2:sha256:1000"  # tests only: real apps keep werkzeug's default


@dataclass
class User:
    id: int
    username: str
    password_hash: str
    role: str = "user"
    active: bool = True


@dataclass
class Users:
    """An in-memory user table with call counters, wired to the extension's callbacks."""

    by_id: dict[str, User] = field(default_factory=dict)
    loads: int = 0
    dummy_hash: str = field(default_factory=lambda: generate_password_hash("x", FAST_HASH))

    def add(self, username: str, password: str = "correct horse", role: str = "user") -> User:
        user = User(
            len(self.by_id) + 1, username, generate_password_hash(password, FAST_HASH), role
        )
        self.by_id[str(user.id)] = user
        return user

    def authenticate(self, username: str, password: str) -> User | None:
        user = next((u for u in self.by_id.values() if u.username == username), None)
        if user is None:
            check_password_hash(self.dummy_hash, password)
            return None
        ok = check_password_hash(user.password_hash, password) and user.active
        return user if ok else None

    def load(self, user_id: str) -> User | None:
        self.loads += 1
        user = self.by_id.get(user_id)
        return user if user is not None and user.active else None


def add_test_routes(app: Flask) -> None:
    @app.get("/me")
    @jwt_required
    def me() -> dict[str, Any]:
        return {"id": current_user.id, "role": get_jwt()["role"]}

    @app.route("/admin", methods=["GET", "OPTIONS"])
    @jwt_required(roles=["admin"])
    def admin() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/optional")
    @jwt_required(optional=True)
    def optional() -> dict[str, Any]:
        return {"user": current_user.username if current_user else None}

    @app.get("/async")
    @jwt_required
    async def async_view() -> dict[str, Any]:
        return {"id": current_user.id}


def build_app(redis_client: redis.Redis | None, users: Users, **config: Any) -> Flask:
    app = Flask("dualtoken_tests")
    app.config.update(DUALTOKEN_SECRET_KEY=SECRET, DUALTOKEN_REDIS=redis_client)
    app.config.update(config)
    dualtoken = DualToken(app)
    dualtoken.authenticate(users.authenticate)
    dualtoken.user_loader(users.load)
    app.extensions["dualtoken_object"] = dualtoken
    add_test_routes(app)
    return app


def verifier_app(users: Users, **config: Any) -> Flask:
    """A second app that only verifies (DUALTOKEN_JWKS_URL or DUALTOKEN_PUBLIC_KEYS in
    ``config``): its own user table, no secret, no Redis; the test routes and ``/fresh``."""
    app = Flask("dualtoken_verifier")
    app.config.update({"DUALTOKEN_ACCESS_ALGORITHM": "EdDSA", **config})
    dualtoken = DualToken(app)
    dualtoken.user_loader(users.load)
    app.extensions["dualtoken_object"] = dualtoken
    add_test_routes(app)

    @app.get("/fresh")
    @jwt_required(fresh=60)
    def fresh() -> dict[str, Any]:
        return {"ok": True}

    return app


@contextmanager
def app_on_url(users: Users, url: str, **config: Any) -> Iterator[Flask]:
    """An app whose Redis client the library builds from a URL, with its own timeouts and
    retry policy, closed afterwards."""
    app = build_app(None, users, DUALTOKEN_REDIS=None, DUALTOKEN_REDIS_URL=url, **config)
    try:
        yield app
    finally:
        app.extensions["dualtoken"].revocation.stop()  # before the client it uses is closed
        app.extensions["dualtoken"].store.client.close()


class Api:
    """The HTTP calls a client of the blueprint makes."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client()

    def login(self, username: str = "alice", password: str = "correct horse") -> dict[str, Any]:
        response = self.client.post(
            "/auth/login", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.json
        body: dict[str, Any] = response.json  # type: ignore[assignment]
        return body

    def reissue(self, pair: dict[str, Any]) -> Response:
        return self.client.post(
            "/auth/reissue",
            headers=bearer(pair["access_token"]),
            json={"refresh_token": pair["refresh_token"]},
        )

    def reauth(
        self, pair: dict[str, Any], username: str = "alice", password: str = "correct horse"
    ) -> Response:
        return self.client.post(
            "/auth/reauth",
            headers=bearer(pair["access_token"]),
            json={"username": username, "password": password},
        )

    def logout(self, pair: dict[str, Any]) -> Response:
        return self.client.post(
            "/auth/logout",
            headers=bearer(pair["access_token"]),
            json={"refresh_token": pair["refresh_token"]},
        )

    def get_json(self, path: str, pair: dict[str, Any]) -> dict[str, Any]:
        response = self.get(path, pair["access_token"])
        assert response.status_code == 200, response.json
        body: dict[str, Any] = response.json  # type: ignore[assignment]
        return body

    def get(self, path: str, access_token: str | None = None) -> Response:
        headers = bearer(access_token) if access_token is not None else {}
        return self.client.get(path, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def session_hash(store: SessionStore, user_id: str, sid: str) -> dict[str, str]:
    """A session's raw hash in Redis, to check what the store keeps (no token in it)."""
    raw = store.client.hgetall(store.session_key(user_id, sid))
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def sid_of(pair: dict[str, Any]) -> str:
    """The session id of a login or reissue answer, read from its access token."""
    return str(jwt.decode(pair["access_token"], options={"verify_signature": False})["sid"])


class Clock:
    """Moves time forward for both the app (PyJWT) and the store (Redis TIME).

    On fakeredis both read the patched system clock; a real redis-server has its own
    clock, so there the test really waits: keep the steps short.
    """

    def __init__(self, traveller: Any | None) -> None:
        self._traveller = traveller

    @property
    def real(self) -> bool:
        return self._traveller is None

    def align(self) -> None:
        """Move to just past a whole second: token times are whole seconds, so a test that
        counts in seconds must not start a hair before a second boundary."""
        now = time.time()
        target = math.floor(now) + 1.05
        if self._traveller is None:
            time.sleep(target - now)
        else:
            self._traveller.move_to(target)

    def advance(self, seconds: float) -> None:
        if self._traveller is None:
            time.sleep(seconds)
        else:
            self._traveller.shift(seconds)


def stop_revocation_listeners() -> None:
    """Stop the listener threads of every app's push revocation."""
    for guard in list(revocation._GUARDS):
        guard.stop()


class Counting:
    """WSGI middleware counting the requests for each path."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.hits: dict[str, int] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ["PATH_INFO"]
        self.hits[path] = self.hits.get(path, 0) + 1
        return self.app(environ, start_response)


def wsgi(
    status: str,
    body: bytes,
    headers: tuple[tuple[str, str], ...] = (),
    content_type: str = "application/json",
) -> Any:
    """A WSGI app answering every request the same way."""

    def answer(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, [("Content-Type", content_type), *headers])
        return [body]

    return answer


@contextmanager
def served(app: Any) -> Iterator[tuple[str, Counting]]:
    """The app on a free port of 127.0.0.1, in a thread of this process."""
    counting = Counting(app)
    server = make_server("127.0.0.1", 0, counting, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", counting
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
