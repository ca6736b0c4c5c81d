"""Example app: flask-dualtoken on Flask-SQLAlchemy users.

Run it with ``flask --app example_app run``. With no settings it uses the in-memory
store and a secret kept in the instance folder; ``FLASK_DUALTOKEN_REDIS_URL`` and
``FLASK_DUALTOKEN_SECRET_KEY`` in the environment switch to real ones.
With prometheus-client installed (the ``metrics`` extra) it serves ``/metrics``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from flask import Flask, Response, make_response, render_template, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from flask_dualtoken import DualToken, current_user, get_jwt, jwt_required

#: Demo accounts created on first start with an empty database (see docs/quickstart.md).
DEMO_USERS = (("alice", "alice-password", "admin"), ("bob", "bob-password", "user"))
SECRET_FILE = "dualtoken-secret"
#: The bounds a new password must keep (the library bounds a login's password at 1024).
PASSWORD_LENGTH = (8, 1024)
#: No inline script, no other origin, no framing: the page's own XSS and clickjacking
#: defences, since a script injected into it could still use the cookies.
DEMO_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
dualtoken = DualToken()


class User(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(unique=True)
    password_hash: Mapped[str]
    role: Mapped[str] = mapped_column(default="user")
    active: Mapped[bool] = mapped_column(default=True)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)


_dummy_hash: str | None = None


def _dummy_password_hash() -> str:
    # Checked against for unknown usernames, so they cost as much time as a wrong password.
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = generate_password_hash(secrets.token_urlsafe(16))
    return _dummy_hash


@dualtoken.authenticate
def authenticate(username: str, password: str) -> User | None:
    user = db.session.execute(select(User).filter_by(username=username)).scalar_one_or_none()
    if user is None:
        check_password_hash(_dummy_password_hash(), password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.active:
        return None
    return user


@dualtoken.user_loader
def load_user(user_id: str) -> User | None:
    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.active else None


@dualtoken.security_stamp_loader
def security_stamp(user: User) -> str:
    # A new password is a new hash: every session started with the old one ends at its
    # next reissue, unless change_password below ended it already or kept it.
    return user.password_hash


def instance_secret(instance_path: str) -> str:
    """One secret for every process of this instance, created once, never per process.

    The file is written under a temporary name and linked into place: ``os.link`` fails if
    another worker got there first, and then both read that worker's secret.
    """
    path = Path(instance_path) / SECRET_FILE
    if not path.exists():
        tmp = path.with_name(f"{SECRET_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def create_app(config: Mapping[str, Any] | None = None, instance_path: str | None = None) -> Flask:
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI="sqlite:///example.db",
        DUALTOKEN_REDIS_URL="memory://",
        # Header clients (curl, the client helpers) and the browser demo (cookies) side by
        # side; a short access token so the demo shows a reissue every minute.
        DUALTOKEN_TOKEN_LOCATION="both",
        DUALTOKEN_ACCESS_EXPIRES=60,
    )
    app.config.from_prefixed_env()
    if config:
        app.config.update(config)
    os.makedirs(app.instance_path, exist_ok=True)
    if not app.config.get("DUALTOKEN_SECRET_KEY") and not app.config.get("SECRET_KEY"):
        app.config["DUALTOKEN_SECRET_KEY"] = instance_secret(app.instance_path)

    db.init_app(app)
    dualtoken.init_app(app)

    @app.get("/")
    def index() -> Response:
        """The browser demo: plain JavaScript on the cookie mode, no build step."""
        response = make_response(render_template("index.html", **dualtoken.browser_config()))
        response.headers.update(DEMO_SECURITY_HEADERS)
        return response

    @app.get("/me")
    @jwt_required
    def me() -> dict[str, Any]:
        return {
            "id": current_user.id,
            "username": current_user.username,
            "role": current_user.role,
            # When this user last proved who they are (login or POST /auth/reauth).
            "auth_time": get_jwt().get("auth_time"),
        }

    @app.post("/account/password")
    @jwt_required(fresh=True)  # a login (or re-authentication) of the last 5 minutes
    def change_password() -> tuple[dict[str, Any], int]:
        new_password = _new_password()
        if new_password is None:
            low, high = PASSWORD_LENGTH
            message = f'Send JSON {{"new_password": ...}}: text of {low} to {high} characters.'
            return {"error": "invalid_request", "message": message}, 400
        current_user.set_password(new_password)
        # Every other session of this user ends now, this one takes the new stamp; before
        # the commit, so that a reissue of this session at this very moment survives.
        kept = dualtoken.credentials_changed(current_user, keep_session=get_jwt()["sid"])
        db.session.commit()
        message = "Password changed; every other session has ended."
        return {"message": message, "this_session_kept": kept}, 200

    @app.get("/admin")
    @jwt_required(roles=["admin"])
    def admin() -> dict[str, Any]:
        return {"message": f"Hello, {current_user.username}: you are an admin."}

    if app.extensions["dualtoken"].settings.metrics is not None:
        # With the metrics extra installed (pip install 'flask-dualtoken[metrics]'):
        # Prometheus scrapes this. A real app serves it to Prometheus only, not to the
        # internet (docs/operations-metrics.md).
        from flask_dualtoken.metrics import metrics_response

        @app.get("/metrics")
        def metrics() -> Response:
            return metrics_response()

    @app.cli.command("create-user")
    @click.argument("name")
    @click.option("--role", default="user", show_default=True)
    @click.password_option("--password", help="Prompted for when not given.")
    def create_user(name: str, role: str, password: str) -> None:
        """Create a user who can log in."""
        if db.session.execute(select(User).filter_by(username=name)).scalar_one_or_none():
            raise click.ClickException(f"user {name!r} already exists")
        user = User(username=name, role=role)
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
        click.echo(f"Created user {name!r} with role {role!r} (id {user.id}).")

    with app.app_context():
        db.create_all()
        _create_demo_users()
    return app


def _new_password() -> str | None:
    """The request's ``new_password``, or None when it is missing or unusable: not JSON
    (deep nesting included), not a string, out of bounds, or not encodable text."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        return None
    password = body.get("new_password") if isinstance(body, dict) else None
    low, high = PASSWORD_LENGTH
    if not isinstance(password, str) or not low <= len(password) <= high:
        return None
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate such as "\ud800" is valid JSON
        return None
    return password


def _create_demo_users() -> None:
    if db.session.execute(select(User.id).limit(1)).first() is not None:
        return
    for name, password, role in DEMO_USERS:
        user = User(username=name, role=role)
        user.set_password(password)
        db.session.add(user)
    db.session.commit()
    click.echo(
        "Created demo users: "
        + ", ".join(f"{n} (role {r}, password {p!r})" for n, p, r in DEMO_USERS)
    )
