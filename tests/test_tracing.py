"""OpenTelemetry traces: a span per flow, a child span per store round trip, each with its
outcome; never a token, a password, a secret or a user id in any of them; no-op without an
SDK, nothing imported without the API.

Each test hands the app a TracerProvider of its own (``DUALTOKEN_TRACING = provider``)
that exports to memory; the global provider is never set.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from helpers import SECRET, Api, Clock, Users, app_on_url, bearer, sid_of
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from optional import run_python
from servers import RedisServer

from flask_dualtoken import flows
from flask_dualtoken.config import ConfigError
from flask_dualtoken.openapi import ERROR_CODES
from flask_dualtoken.state import get_state
from flask_dualtoken.tracing import OUTCOME, Tracing

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse"
WRONG_PASSWORD = "not-the-password-9f3b"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def traced(make_app: Callable[..., Flask], provider: TracerProvider) -> Callable[..., Flask]:
    """Apps whose spans go to this test's exporter."""

    def factory(**config: Any) -> Flask:
        return make_app(DUALTOKEN_TRACING=provider, **config)

    return factory


@pytest.fixture
def api(traced: Callable[..., Flask]) -> Api:
    return Api(traced())


def outcome(span: ReadableSpan) -> Any:
    return (span.attributes or {}).get(OUTCOME)


def shape(exporter: InMemorySpanExporter) -> list[tuple[str, str | None, Any]]:
    """Each span as (name, its parent's name, outcome), in the order they ended; then
    forgotten, so the next call shows what came after."""
    spans = exporter.get_finished_spans()
    names = {span.context.span_id: span.name for span in spans if span.context}
    exporter.clear()
    return [
        (span.name, names.get(span.parent.span_id) if span.parent else None, outcome(span))
        for span in spans
    ]


def by_name(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [span for span in exporter.get_finished_spans() if span.name == name]
    return span


# -- what the spans are -----------------------------------------------------------------------


def test_a_login_is_a_span_with_its_store_round_trips_inside(
    api: Api, exporter: InMemorySpanExporter
) -> None:
    api.login()
    assert shape(exporter) == [
        ("dualtoken.store.reserve", "dualtoken.login", "ok"),
        ("dualtoken.store.create+release", "dualtoken.issue", "ok"),
        ("dualtoken.issue", "dualtoken.login", "ok"),
        ("dualtoken.login", None, "ok"),
    ]


def test_flow_spans_are_internal_and_store_spans_client_spans(
    api: Api, exporter: InMemorySpanExporter
) -> None:
    api.login()
    kinds = {span.name: span.kind for span in exporter.get_finished_spans()}
    assert kinds["dualtoken.login"] == SpanKind.INTERNAL
    assert kinds["dualtoken.store.reserve"] == SpanKind.CLIENT
    assert {span.instrumentation_scope.name for span in exporter.get_finished_spans()} == {
        "flask_dualtoken"
    }


def test_a_refused_login_says_why_and_is_no_error_of_the_server(
    traced: Callable[..., Flask], exporter: InMemorySpanExporter
) -> None:
    api = Api(traced(DUALTOKEN_LOGIN_MAX_ATTEMPTS=1))
    for _ in range(2):
        api.client.post("/auth/login", json={"username": "alice", "password": WRONG_PASSWORD})
    logins = [s for s in exporter.get_finished_spans() if s.name == "dualtoken.login"]
    assert [outcome(span) for span in logins] == ["invalid_credentials", "too_many_attempts"]
    assert {span.status.status_code for span in logins} == {StatusCode.UNSET}
    assert all("error.type" not in (span.attributes or {}) for span in logins)


def test_a_reissue_its_replay_and_the_reuse_of_its_old_pair(
    traced: Callable[..., Flask], exporter: InMemorySpanExporter
) -> None:
    api = Api(traced(DUALTOKEN_REUSE_GRACE=0))
    pair = api.login()
    exporter.clear()
    new = api.reissue(pair).json
    assert shape(exporter) == [
        ("dualtoken.store.rotate", "dualtoken.reissue", "ok"),
        ("dualtoken.reissue", None, "ok"),
    ]
    assert api.reissue(pair).json["error"] == "refresh_token_reused"
    assert shape(exporter) == [
        ("dualtoken.store.rotate", "dualtoken.reissue", "ok"),  # the script answered
        ("dualtoken.reissue", None, "refresh_token_reused"),
    ]
    assert api.reissue(new).json["error"] == "session_revoked"
    assert shape(exporter)[-1] == ("dualtoken.reissue", None, "session_revoked")


def test_logout_logout_all_reauth_and_revocation_are_spans_of_their_own(
    traced: Callable[..., Flask], exporter: InMemorySpanExporter
) -> None:
    app = traced()
    api = Api(app)
    pair, other, third = api.login(), api.login(), api.login()
    exporter.clear()
    assert api.reauth(pair).status_code == 200
    assert shape(exporter)[-2:] == [
        ("dualtoken.store.reauth+release", "dualtoken.reauthenticate", "ok"),
        ("dualtoken.reauthenticate", None, "ok"),
    ]
    headers = bearer(pair["access_token"])
    deleted = api.client.delete(f"/auth/sessions/{sid_of(other)}", headers=headers)
    assert deleted.status_code == 204
    assert ("dualtoken.revoke", None, "ok") in shape(exporter)
    revoked = api.client.post("/auth/revoke", data={"token": third["refresh_token"]})
    assert revoked.status_code == 200
    assert shape(exporter)[-2:] == [
        ("dualtoken.revoke", "dualtoken.revoke_token", "ok"),
        ("dualtoken.revoke_token", None, "ok"),
    ]
    api.get_json("/auth/sessions", pair)
    assert ("dualtoken.list_sessions", None, "ok") in shape(exporter)
    assert api.client.post("/auth/logout-all", headers=headers).status_code == 204
    assert ("dualtoken.store.revoke_all", "dualtoken.revoke_all", "ok") in shape(exporter)
    fresh = api.login()
    exporter.clear()
    assert api.logout(fresh).status_code == 204
    assert shape(exporter) == [
        ("dualtoken.store.revoke", "dualtoken.logout", "ok"),
        ("dualtoken.logout", None, "ok"),
    ]


@pytest.mark.real_redis
def test_a_store_outage_is_an_error_span_with_the_failure_s_class_only(
    own_redis_server: RedisServer, users: Users, provider: TracerProvider, exporter: Any
) -> None:
    with app_on_url(users, own_redis_server.url, DUALTOKEN_TRACING=provider) as app:
        api = Api(app)
        own_redis_server.stop()
        response = api.client.post("/auth/login", json={"username": "alice", "password": "x"})
        assert response.status_code == 503
    store, login = exporter.get_finished_spans()
    assert (store.name, login.name) == ("dualtoken.store.reserve", "dualtoken.login")
    for span in (store, login):
        assert outcome(span) == "store_unavailable"
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description is None
        assert span.events == ()  # no exception event: its message is not ours
    assert store.attributes is not None and store.attributes["error.type"] == "ConnectionError"
    assert login.attributes is not None and login.attributes["error.type"] == "StoreUnavailable"


def test_a_store_call_outside_any_span_starts_no_trace(
    traced: Callable[..., Flask], exporter: InMemorySpanExporter
) -> None:
    app = traced()
    pair = Api(app).login()
    exporter.clear()
    with app.app_context():
        assert get_state(app).store.is_live("1", sid_of(pair))
    assert exporter.get_finished_spans() == ()


# -- never a token, a password, a secret or a user id -----------------------------------------


def pieces(token: str) -> set[str]:
    """A token, its three parts, and every claim value in it that is an id."""
    claims = jwt.decode(token, options={"verify_signature": False})
    ids = {str(claims[name]) for name in ("sid", "jti", "rti") if name in claims}
    return {token, *token.split("."), *ids}


@pytest.mark.parametrize("redis_client", ["fakeredis"], indirect=True)
def test_no_span_of_any_flow_carries_a_token_a_password_a_secret_or_a_user(
    traced: Callable[..., Flask], exporter: InMemorySpanExporter, users: Users, clock: Clock
) -> None:
    app = traced(DUALTOKEN_LOGIN_MAX_ATTEMPTS=2)
    dualtoken = app.extensions["dualtoken_object"]
    api = Api(app)
    tokens: list[str] = []

    def keep(body: dict[str, Any]) -> dict[str, Any]:
        tokens.extend([body["access_token"], body["refresh_token"]])
        return body

    pair = keep(api.login())
    other = keep(api.login())
    bob = keep(api.login("bob"))
    api.client.post("/auth/login", json={"username": "bob", "password": WRONG_PASSWORD})
    api.client.post("/auth/login", json={"username": "bob", "password": WRONG_PASSWORD})
    api.client.post("/auth/login", json={"username": "bob", "password": WRONG_PASSWORD})  # 429
    pair = keep(api.reauth(pair).json)
    api.reauth(pair, password=WRONG_PASSWORD)
    new = keep(api.reissue(pair).json)
    keep(api.reissue(pair).json)  # replayed within grace
    api.get_json("/auth/sessions", new)
    api.client.delete(f"/auth/sessions/{sid_of(other)}", headers=bearer(new["access_token"]))
    api.client.post("/auth/revoke", data={"token": bob["access_token"]})
    clock.advance(31)
    api.reissue(pair)  # reuse: the session ends
    with app.test_request_context():
        issued = dualtoken.issue(users.by_id["1"], amr=["pwd", "otp"])
        tokens.extend([issued.access_token, issued.refresh_token])
        dualtoken.list_sessions("1")
        dualtoken.credentials_changed(users.by_id["1"], keep_session=None)
        dualtoken.revoke_all_sessions("2")
    last = keep(api.login())
    api.client.post("/auth/logout-all", headers=bearer(last["access_token"]))
    api.logout(keep(api.login()))

    spans = exporter.get_finished_spans()
    assert {span.name for span in spans} >= {
        "dualtoken.login",
        "dualtoken.issue",
        "dualtoken.reauthenticate",
        "dualtoken.reissue",
        "dualtoken.list_sessions",
        "dualtoken.revoke",
        "dualtoken.revoke_token",
        "dualtoken.revoke_all",
        "dualtoken.credentials_changed",
        "dualtoken.logout",
    }
    secrets = {SECRET, PASSWORD, WRONG_PASSWORD, "alice", "bob"}
    for token in tokens:
        secrets |= pieces(token)
    outcomes = {outcome(span) for span in spans}
    assert outcomes <= {"ok", *ERROR_CODES}
    assert {"invalid_credentials", "too_many_attempts", "refresh_token_reused"} <= outcomes
    for span in spans:
        attributes = dict(span.attributes or {})
        assert set(attributes) <= {OUTCOME, "error.type"}, span.name  # no user id either
        shown = [span.name, span.status.description or "", *map(str, attributes.values())]
        shown += [str(value) for event in span.events for value in event.attributes.values()]
        for text in shown:
            for secret in secrets:
                assert secret not in text, (span.name, secret)


# -- on, off, no SDK, no API --------------------------------------------------------------------


def test_without_an_sdk_spans_are_the_api_s_no_op_ones(app: Flask) -> None:
    """The suite never sets a global provider: tracing is on (the API is installed) and
    every span is a non-recording one."""
    tracing = get_state(app).settings.tracing
    assert isinstance(tracing, Tracing)
    with tracing.flow("dualtoken.test"):
        assert not trace.get_current_span().is_recording()
    pair = Api(app).login()
    assert Api(app).reissue(pair).status_code == 200


def test_an_app_with_tracing_off_makes_no_span_even_inside_another_s_trace(
    make_app: Callable[..., Flask], provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = make_app(DUALTOKEN_TRACING=False)
    assert get_state(app).settings.tracing is None
    with provider.get_tracer("the-app").start_as_current_span("request"):
        Api(app).login()
    assert [span.name for span in exporter.get_finished_spans()] == ["request"]


def test_one_provider_is_one_tracing_shared_by_apps(
    traced: Callable[..., Flask], exporter: InMemorySpanExporter
) -> None:
    first, second = traced(), traced()  # the same store client
    assert get_state(first).settings.tracing is get_state(second).settings.tracing
    Api(first).login()
    names = [span.name for span in exporter.get_finished_spans()]
    assert names.count("dualtoken.store.reserve") == 1  # not one per app


@pytest.mark.parametrize("value", ["yes", 1, 0, TracerProvider])
def test_a_bad_tracing_setting_fails_at_start_up_naming_the_key(
    make_app: Callable[..., Flask], value: Any
) -> None:
    with pytest.raises(ConfigError, match="DUALTOKEN_TRACING must be True, False, None"):
        make_app(DUALTOKEN_TRACING=value)


WITHOUT_OPENTELEMETRY = """
import importlib, pkgutil, sys
sys.modules["opentelemetry"] = None  # as if not installed: importing it fails
from types import SimpleNamespace
from flask import Flask
import flask_dualtoken
from flask_dualtoken import ConfigError, DualToken

for module in pkgutil.iter_modules(flask_dualtoken.__path__):
    importlib.import_module(f"flask_dualtoken.{module.name}")

def make(**config):
    app = Flask(__name__)
    app.config.update(DUALTOKEN_SECRET_KEY="k" * 48, DUALTOKEN_REDIS_URL="memory://", **config)
    dualtoken = DualToken(app)
    user = SimpleNamespace(id=1, role="user")
    dualtoken.authenticate(lambda username, password: user)
    dualtoken.user_loader(lambda user_id: user)
    return app

app = make()
print(app.extensions["dualtoken"].settings.tracing)
client = app.test_client()
pair = client.post("/auth/login", json={"username": "u", "password": "p"}).json
print(client.post("/auth/reissue", headers={"Authorization": "Bearer " + pair["access_token"]},
                  json={"refresh_token": pair["refresh_token"]}).status_code)
try:
    make(DUALTOKEN_TRACING=True)
except ConfigError as exc:
    print(exc)
print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
"""


def test_without_the_api_tracing_is_off_and_asking_for_it_says_what_to_install() -> None:
    lines = run_python(WITHOUT_OPENTELEMETRY).splitlines()
    assert lines[:2] == ["None", "200"]
    assert lines[2].startswith("DUALTOKEN_TRACING = True")
    assert "pip install 'flask-dualtoken[tracing]'" in lines[2]
    assert lines[3] == "['opentelemetry']"  # the blocked entry, and nothing under it


def test_no_module_imports_opentelemetry_when_it_is_imported() -> None:
    for path in (ROOT / "flask_dualtoken").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(name.startswith("opentelemetry") for name in names), path.name


# -- docs/operations-metrics.md ---------------------------------------------------------------

PAGE = ROOT / "docs" / "operations-metrics.md"


def test_the_page_s_recipe_puts_the_user_id_on_the_span_of_its_choice(
    traced: Callable[..., Flask], exporter: InMemorySpanExporter
) -> None:
    app = traced()
    found = re.search(
        r"^<!-- run: span-user-id -->\n```python\n(?P<code>.*?)^```$",
        PAGE.read_text(),
        re.M | re.S,
    )
    assert found
    code = compile(found["code"], f"{PAGE.name}:span-user-id", "exec", dont_inherit=True)
    exec(code, {"app": app})  # noqa: S102
    Api(app).login()
    tagged = [
        s.name for s in exporter.get_finished_spans() if "enduser.id" in (s.attributes or {})
    ]
    assert tagged == ["dualtoken.issue"]  # where user_logged_in is sent
    assert by_name(exporter, "dualtoken.issue").attributes == {"enduser.id": "1", OUTCOME: "ok"}


def test_the_page_s_span_table_is_every_traced_flow() -> None:
    listed = set(re.findall(r"^\| `(dualtoken\.[a-z_]+)` \|", PAGE.read_text(), re.M))
    traced_flows = {
        f"dualtoken.{name}"
        for name, value in vars(flows).items()
        if callable(value) and hasattr(value, "__wrapped__") and value.__module__ == flows.__name__
    }
    assert listed == traced_flows
