"""The app the multi-server test runs under gunicorn: settings from the environment,
one in-memory user, and a protected route."""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from flask import Flask

from flask_dualtoken import DualToken, current_user, jwt_required


class User:
    id = 1
    role = "user"
    username = "alice"


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(
        DUALTOKEN_SECRET_KEY=os.environ["DUALTOKEN_TEST_SECRET"],
        DUALTOKEN_REDIS_URL=os.environ["DUALTOKEN_TEST_REDIS_URL"],
        DUALTOKEN_REUSE_GRACE=int(os.environ.get("DUALTOKEN_TEST_GRACE", "30")),
        DUALTOKEN_REVOCATION=os.environ.get("DUALTOKEN_TEST_REVOCATION", "push"),
    )
    dualtoken = DualToken(app)

    # Every authenticate call is counted in Redis, so a test can check a limit across
    # processes; each call takes as long as a quick password hash.
    counter = redis.Redis.from_url(os.environ["DUALTOKEN_TEST_REDIS_URL"])

    @dualtoken.authenticate
    def authenticate(username: str, password: str) -> User | None:
        counter.incr("test:authenticate_calls")
        time.sleep(0.02)
        return User() if (username, password) == ("alice", "correct horse") else None

    @dualtoken.user_loader
    def load_user(user_id: str) -> User | None:
        return User() if user_id == "1" else None

    @app.get("/me")
    @jwt_required
    def me() -> dict[str, Any]:
        return {
            "username": current_user.username,
            "server": os.environ["SERVER_NAME_FOR_TEST"],
            "pid": os.getpid(),
        }

    return app
