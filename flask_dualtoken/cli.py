"""``flask dualtoken ...``: operator commands for secrets and sessions."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

import click
from flask.cli import AppGroup

from . import flows
from .errors import StoreUnavailable
from .state import AppState, get_state
from .store import EVICTION_WARNING, ClientInfo

cli = AppGroup("dualtoken", help="flask-dualtoken: secrets and sessions.")

#: What the audit log shows as the client address of an operator's command.
OPERATOR = ClientInfo(ip="cli", user_agent="flask dualtoken")


def _shown(text: str) -> str:
    """``text`` safe for a terminal: each non-printable character as its Python escape.

    Everything printed from the store goes through here, not only what ``request_client``
    cleaned: values written before that fix, by another app version or straight into
    Redis must not drive the operator's terminal. ``str.isprintable`` is broader than the
    input rule (it also catches zero-width and unassigned characters); the backslash is
    doubled so a literal ``\\x1b`` sent as text cannot pass for an escaped ESC.
    """
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(
        ch if ch.isprintable() and ch != "\\" else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def new_secret() -> str:
    """A new random secret for DUALTOKEN_SECRET_KEY: 64 characters, 384 bits."""
    return secrets.token_urlsafe(48)


# No app context: a secret is needed before the app can start, so this must work while
# it cannot (the group is also registered as a Flask plugin, see pyproject.toml).
@cli.command("gen-secret", with_appcontext=False)
def gen_secret() -> None:
    """Print a new random secret for DUALTOKEN_SECRET_KEY (64 characters, 384 bits)."""
    click.echo(new_secret())


def _state() -> AppState:
    """The app's state, after saying so plainly when the store is this process's own."""
    state = get_state()
    if state.settings.redis_client is None and state.settings.redis_url.startswith("memory:"):
        click.echo(
            "note: DUALTOKEN_REDIS_URL is memory://, so this command has its own empty "
            "in-process store: it cannot see or end the sessions of a running server. "
            "Point both at a real Redis to manage sessions from here.",
            err=True,
        )
    return state


@cli.command("sessions")
@click.argument("user_id")
def list_sessions(user_id: str) -> None:
    """List the live sessions of USER_ID; client strings are printed escaped."""
    try:
        found = flows.list_sessions(_state(), user_id)
    except StoreUnavailable:
        raise click.ClickException("the session store is unavailable") from None
    if not found:
        click.echo(f"no live sessions for user {user_id!r}")
        return
    click.echo(
        f"{'session id':<24} {'created':<21} {'last used':<21} {'expires':<21} "
        f"{'ip':<16} user agent"
    )
    for info in found:
        click.echo(
            f"{_shown(info.session_id):<24} {_when(info.created_at):<21} "
            f"{_when(info.last_used_at):<21} {_when(info.expires_at):<21} "
            f"{_shown(info.ip):<16} {_shown(info.user_agent)}"
        )


@cli.command("revoke")
@click.argument("user_id")
@click.option("--session", "session_id", help="End only this session (default: all).")
def revoke(user_id: str, session_id: str | None) -> None:
    """End the sessions of USER_ID: all of them, or one with --session."""
    state = _state()
    try:
        if session_id is None:
            flows.revoke_all(state, user_id, OPERATOR)
            click.echo(f"ended every session of user {user_id!r}")
        elif flows.revoke(state, user_id, session_id, "revoked", OPERATOR):
            click.echo(f"ended session {_shown(session_id)} of user {user_id!r}")
        else:
            raise click.ClickException(
                f"user {user_id!r} has no live session {_shown(session_id)}"
            )
    except StoreUnavailable:
        raise click.ClickException("the session store is unavailable") from None


@cli.command("stats")
def stats() -> None:
    """Store health and the number of live sessions (scans the keyspace: operators only)."""
    store = _state().store
    try:
        latency_ms = store.ping()
        live = store.count_live_sessions()
        policy = store.eviction_policy()
    except StoreUnavailable:
        raise click.ClickException("the session store is unavailable") from None
    click.echo(f"store: ok ({latency_ms:.2f} ms round trip)")
    click.echo(f"live sessions: {live}")
    click.echo(f"eviction policy: {policy or 'not reported by the server'}")
    if policy is not None and policy != "noeviction":
        click.echo("warning: " + EVICTION_WARNING % policy, err=True)
