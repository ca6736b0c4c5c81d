"""Prometheus metrics: each flow moves exactly its counters, the store's round trips are
timed by script, label values stay a fixed set whatever clients send, processes of one
gunicorn sum up, and nothing of it is imported, or run, without the extra or the setting.

Each test counts in a registry of its own (``DUALTOKEN_METRICS = registry``), so what one
test does never shows in another's numbers; the suite's other apps count in the default
registry.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from helpers import Api, Users, app_on_url, bearer, sid_of
from optional import run_python
from prometheus_client import REGISTRY, CollectorRegistry
from servers import RedisServer

from flask_dualtoken import signals
from flask_dualtoken.config import KNOWN_KEYS, ConfigError
from flask_dualtoken.metrics import (
    END_REASONS,
    LOGIN_OUTCOMES,
    REISSUE_OUTCOMES,
    for_registry,
    metrics_response,
)
from flask_dualtoken.state import get_state

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse"


def series(registry: CollectorRegistry) -> dict[str, float]:
    """Every sample of the library's metrics, as ``name{label="value"}``: value."""
    found: dict[str, float] = {}
    for metric in registry.collect():
        if not metric.name.startswith("dualtoken_"):
            continue
        for sample in metric.samples:
            if sample.name.endswith("_created"):
                continue
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


class Moves:
    """What the counters did since this was made: only those that moved, by how much."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.start = series(registry)

    def counters(self) -> dict[str, float]:
        now = series(self.registry)
        return {
            name: value - self.start.get(name, 0.0)
            for name, value in now.items()
            if name.partition("{")[0].endswith("_total") and value != self.start.get(name, 0.0)
        }

    def store_calls(self) -> dict[str, float]:
        """Round trips observed by the histogram, by operation."""
        now = series(self.registry)
        prefix = 'dualtoken_store_seconds_count{operation="'
        return {
            name[len(prefix) : -2]: value - self.start.get(name, 0.0)
            for name, value in now.items()
            if name.startswith(prefix) and value != self.start.get(name, 0.0)
        }


def login_ok(outcome: str = "succeeded") -> dict[str, float]:
    return {f'dualtoken_logins_total{{outcome="{outcome}"}}': 1}


def ended(reason: str, count: float = 1) -> dict[str, float]:
    return {f'dualtoken_sessions_ended_total{{reason="{reason}"}}': count}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metered(make_app: Callable[..., Flask], registry: CollectorRegistry) -> Callable[..., Flask]:
    """Apps counting in this test's own registry."""

    def factory(**config: Any) -> Flask:
        return make_app(DUALTOKEN_METRICS=registry, **config)

    return factory


@pytest.fixture
def api(metered: Callable[..., Flask]) -> Api:
    return Api(metered())


@pytest.fixture
def moves(registry: CollectorRegistry) -> Callable[[], Moves]:
    return lambda: Moves(registry)


def fail_login(api: Api, username: str = "alice") -> int:
    response = api.client.post("/auth/login", json={"username": username, "password": "wrong"})
    return response.status_code


# -- each flow moves exactly its counters -------------------------------------------------------


def test_every_label_value_is_exported_at_zero_before_anything_happens(
    metered: Callable[..., Flask], registry: CollectorRegistry
) -> None:
    metered()
    found = series(registry)
    for outcome in LOGIN_OUTCOMES:
        assert found[f'dualtoken_logins_total{{outcome="{outcome}"}}'] == 0
    for outcome in REISSUE_OUTCOMES:
        assert found[f'dualtoken_reissues_total{{outcome="{outcome}"}}'] == 0
    for reason in END_REASONS:
        assert found[f'dualtoken_sessions_ended_total{{reason="{reason}"}}'] == 0
    assert found["dualtoken_refresh_token_reuse_total"] == 0  # the alert's series exists
    assert found["dualtoken_store_errors_total"] == 0


def test_a_login_counts_one_success_and_nothing_else(api: Api, moves: Any) -> None:
    counted = moves()
    api.login()
    assert counted.counters() == login_ok()


def test_a_wrong_password_or_unknown_user_counts_one_failed_login(api: Api, moves: Any) -> None:
    counted = moves()
    assert fail_login(api) == 401
    assert fail_login(api, "nobody") == 401
    assert counted.counters() == {'dualtoken_logins_total{outcome="failed"}': 2}


def test_logins_over_the_attempt_limit_count_as_throttled(
    metered: Callable[..., Flask], moves: Any
) -> None:
    api = Api(metered(DUALTOKEN_LOGIN_MAX_ATTEMPTS=2))
    counted = moves()
    assert [fail_login(api) for _ in range(4)] == [401, 401, 429, 429]
    assert counted.counters() == {
        'dualtoken_logins_total{outcome="failed"}': 2,
        'dualtoken_logins_total{outcome="throttled"}': 2,
    }


def test_a_malformed_login_counts_nothing(api: Api, moves: Any) -> None:
    """Refused before any flow runs (400): not a login attempt at all."""
    counted = moves()
    assert api.client.post("/auth/login", json={"username": "x"}).status_code == 400
    assert counted.counters() == {}


def test_a_reissue_counts_rotated_and_its_repeat_in_grace_replayed(api: Api, moves: Any) -> None:
    pair = api.login()
    counted = moves()
    assert api.reissue(pair).status_code == 200
    assert api.reissue(pair).status_code == 200  # the same pair again, within grace
    assert counted.counters() == {
        'dualtoken_reissues_total{outcome="rotated"}': 1,
        'dualtoken_reissues_total{outcome="replayed"}': 1,
    }


def test_reuse_counts_the_theft_alarm_and_the_session_it_ends(
    metered: Callable[..., Flask], moves: Any
) -> None:
    api = Api(metered(DUALTOKEN_REUSE_GRACE=0))
    pair = api.login()
    assert api.reissue(pair).status_code == 200
    counted = moves()
    response = api.reissue(pair)  # the old pair, after its rotation: theft
    assert response.json["error"] == "refresh_token_reused"
    assert counted.counters() == {
        "dualtoken_refresh_token_reuse_total": 1,
        **ended("reuse"),
    }


def test_a_refused_reissue_counts_nothing(api: Api, moves: Any) -> None:
    pair = api.login()
    assert api.logout(pair).status_code == 204
    counted = moves()
    assert api.reissue(pair).json["error"] == "session_revoked"
    assert counted.counters() == {}


def test_logout_counts_one_session_ended_and_a_second_logout_nothing(api: Api, moves: Any) -> None:
    pair = api.login()
    counted = moves()
    assert api.logout(pair).status_code == 204
    assert api.logout(pair).status_code == 204  # already ended: no signal, no count
    assert counted.counters() == ended("logout")


def test_logout_all_counts_one_per_call(api: Api, moves: Any) -> None:
    pair = api.login()
    api.login()
    counted = moves()
    response = api.client.post("/auth/logout-all", headers=bearer(pair["access_token"]))
    assert response.status_code == 204
    assert counted.counters() == ended("logout_all")


def test_revoking_a_session_counts_it_as_revoked(
    metered: Callable[..., Flask], moves: Any
) -> None:
    app = metered()
    api = Api(app)
    mine, other, third = api.login(), api.login(), api.login()
    counted = moves()
    deleted = api.client.delete(
        f"/auth/sessions/{sid_of(other)}", headers=bearer(mine["access_token"])
    )
    assert deleted.status_code == 204
    with app.app_context():
        assert app.extensions["dualtoken_object"].revoke_session("1", sid_of(third))
    token = api.client.post("/auth/revoke", data={"token": mine["refresh_token"]})
    assert token.status_code == 200
    assert counted.counters() == ended("revoked", 3)


def test_credentials_changed_counts_each_session_it_ended(
    metered: Callable[..., Flask], users: Users, moves: Any
) -> None:
    app = metered()
    api = Api(app)
    kept = api.login()
    api.login()
    api.login()
    counted = moves()
    with app.app_context():
        dualtoken = app.extensions["dualtoken_object"]
        assert dualtoken.credentials_changed(users.by_id["1"], keep_session=sid_of(kept))
    assert counted.counters() == ended("credentials_changed", 2)


def test_the_session_cap_counts_the_session_it_ends_as_session_limit(
    metered: Callable[..., Flask], moves: Any
) -> None:
    api = Api(metered(DUALTOKEN_MAX_SESSIONS=1))
    api.login()
    counted = moves()
    api.login()
    assert counted.counters() == {**login_ok(), **ended("session_limit")}


def test_a_user_gone_at_reissue_counts_as_user_unavailable(
    api: Api, users: Users, moves: Any
) -> None:
    pair = api.login()
    users.by_id["1"].active = False
    counted = moves()
    assert api.reissue(pair).json["error"] == "user_unavailable"
    assert counted.counters() == ended("user_unavailable")


def test_reauthentication_counts_its_failures_as_failed_logins(api: Api, moves: Any) -> None:
    pair = api.login()
    counted = moves()
    assert api.reauth(pair).status_code == 200
    assert api.reauth(pair, password="wrong").status_code == 401
    assert counted.counters() == {'dualtoken_logins_total{outcome="failed"}': 1}


# -- the store --------------------------------------------------------------------------------


def test_each_round_trip_is_timed_under_its_script_s_name(
    metered: Callable[..., Flask], moves: Any
) -> None:
    # "expiry": no store read per protected request (push mode makes some at first, and
    # strict mode one each: the "check" script, timed like every other).
    api = Api(metered(DUALTOKEN_REVOCATION="expiry"))
    counted = moves()
    pair = api.login()
    # Login: the attempt reserved on two counters in one pipeline, then the session
    # stored with the reservation given back in one more.
    assert counted.store_calls() == {"reserve": 1, "create+release": 1}
    counted = moves()
    pair = api.reissue(pair).json
    assert counted.store_calls() == {"rotate": 1}
    counted = moves()
    api.get_json("/auth/sessions", pair)
    assert counted.store_calls() == {"sessions": 1}
    counted = moves()
    assert api.logout(pair).status_code == 204
    assert counted.store_calls() == {"revoke": 1}


def test_round_trip_times_land_in_sub_millisecond_to_second_buckets(
    api: Api, registry: CollectorRegistry
) -> None:
    api.login()
    bounds = [
        float(name.split('le="')[1].split('"')[0])
        for name in series(registry)
        if name.startswith("dualtoken_store_seconds_bucket") and 'operation="reserve"' in name
    ]
    assert min(bounds) == 0.0001
    assert max(b for b in bounds if b != float("inf")) == 2.5


@pytest.mark.real_redis
def test_store_errors_are_counted_while_redis_is_down(
    own_redis_server: RedisServer, users: Users, registry: CollectorRegistry
) -> None:
    with app_on_url(users, own_redis_server.url, DUALTOKEN_METRICS=registry) as app:
        api = Api(app)
        pair = api.login()
        own_redis_server.stop()
        counted = Moves(registry)
        assert (
            api.client.post(
                "/auth/login", json={"username": "alice", "password": PASSWORD}
            ).status_code
            == 503
        )
        assert api.reissue(pair).status_code == 503
        # One failed round trip each (the throttle's reservation; the rotation), each
        # timed too; no login or reissue counted.
        assert counted.counters() == {"dualtoken_store_errors_total": 2}
        assert counted.store_calls() == {"reserve": 1, "rotate": 1}


def test_two_apps_on_one_client_and_registry_time_each_round_trip_once(
    metered: Callable[..., Flask], moves: Any
) -> None:
    first, second = metered(), metered()  # the same store client, the same registry
    counted = moves()
    Api(first).login()
    Api(second).login()
    assert counted.store_calls() == {"reserve": 2, "create+release": 2}
    assert counted.counters() == {'dualtoken_logins_total{outcome="succeeded"}': 2}


def test_an_app_with_metrics_off_moves_nothing(
    make_app: Callable[..., Flask], registry: CollectorRegistry
) -> None:
    app = make_app(DUALTOKEN_METRICS=False)
    assert get_state(app).settings.metrics is None
    before = series(REGISTRY)
    api = Api(app)
    pair = api.login()
    api.reissue(pair)
    after = series(REGISTRY)
    assert {name: value for name, value in after.items() if before.get(name) != value} == {}


# -- label values stay a fixed set --------------------------------------------------------------


def odd_usernames() -> Iterator[str]:
    for n in range(1000):
        yield (
            f"bogus-{n}",
            f"ÜSER {n} ✓",
            f"{n}" * 60,
            f'x{n}"}} injected{{label="{n}',
            f"user{n}@example.com",
        )[n % 5]


@pytest.mark.parametrize("redis_client", ["fakeredis"], indirect=True)
def test_a_thousand_odd_usernames_make_no_new_label_value(
    metered: Callable[..., Flask], registry: CollectorRegistry
) -> None:
    app = metered(DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=0)
    client = app.test_client()
    assert client.post("/auth/login", json={"username": "x", "password": "x"}).status_code
    before = set(series(registry))
    statuses = {
        client.post("/auth/login", json={"username": name, "password": "x"}).status_code
        for name in odd_usernames()
    }
    assert statuses == {401}
    after = series(registry)
    assert set(after) == before  # no series more: the label values are the same
    assert after['dualtoken_logins_total{outcome="failed"}'] == 1001
    text = metrics_response(registry).get_data(as_text=True)  # no name shows in it either
    assert "bogus" not in text and "injected" not in text and "example.com" not in text


# -- the protected-route path -----------------------------------------------------------------


@pytest.mark.parametrize("revocation", ["push", "strict", "expiry"])
def test_a_protected_request_sends_no_signal(
    metered: Callable[..., Flask], revocation: str
) -> None:
    api = Api(metered(DUALTOKEN_REVOCATION=revocation))
    pair = api.login()
    sent: list[str] = []

    def receiver(sender: Any, **facts: Any) -> None:
        sent.append(str(facts))

    every = [value for value in vars(signals).values() if hasattr(value, "connect")]
    assert len(every) >= 10
    for signal in every:
        signal.connect(receiver)
    try:
        for _ in range(5):
            assert api.get("/me", pair["access_token"]).status_code == 200
    finally:
        for signal in every:
            signal.disconnect(receiver)
    assert sent == []


def test_a_protected_request_that_makes_no_store_call_moves_no_metric(
    metered: Callable[..., Flask], registry: CollectorRegistry
) -> None:
    api = Api(metered(DUALTOKEN_REVOCATION="expiry"))
    pair = api.login()
    before = series(registry)
    for _ in range(5):
        assert api.get("/me", pair["access_token"]).status_code == 200
    assert series(registry) == before


# -- exposition -------------------------------------------------------------------------------


def test_the_metrics_response_is_the_prometheus_text_format(
    api: Api, registry: CollectorRegistry
) -> None:
    api.login()
    response = metrics_response(registry)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data(as_text=True)
    assert 'dualtoken_logins_total{outcome="succeeded"} 1.0' in text
    assert "# TYPE dualtoken_store_seconds histogram" in text


MULTIPROCESS_WORKER = """
import sys
from flask import Flask
from flask_dualtoken import DualToken
from types import SimpleNamespace

app = Flask(__name__)
app.config.update(DUALTOKEN_SECRET_KEY="k" * 48, DUALTOKEN_REDIS_URL="memory://")
dualtoken = DualToken(app)
user = SimpleNamespace(id=1, role="user")
dualtoken.authenticate(lambda username, password: user if password == "right" else None)
dualtoken.user_loader(lambda user_id: user)
client = app.test_client()
successes, failures = map(int, sys.argv[1:3])
for password in ["right"] * successes + ["wrong"] * failures:
    client.post("/auth/login", json={"username": "u", "password": password})
"""

MULTIPROCESS_SCRAPE = """
from flask_dualtoken.metrics import metrics_response
print(metrics_response().get_data(as_text=True))
"""


def test_under_multiprocess_mode_the_processes_counts_are_summed(tmp_path: Path) -> None:
    """gunicorn's workers, each a process with PROMETHEUS_MULTIPROC_DIR: the route of any
    of them answers with the sum of all."""
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    run_python(MULTIPROCESS_WORKER, "2", "1", env=env)
    run_python(MULTIPROCESS_WORKER, "3", "0", env=env)
    text = run_python(MULTIPROCESS_SCRAPE, env=env)
    assert 'dualtoken_logins_total{outcome="succeeded"} 5.0' in text
    assert 'dualtoken_logins_total{outcome="failed"} 1.0' in text
    assert 'dualtoken_store_seconds_count{operation="create+release"} 5.0' in text
    assert list(tmp_path.glob("*.db"))  # the values went through the shared files
    # Without the directory, a process serves its own registry: this one counted nothing.
    alone = run_python(MULTIPROCESS_SCRAPE)
    assert 'dualtoken_logins_total{outcome="succeeded"}' not in alone


# -- the setting, and nothing imported without it ---------------------------------------------


@pytest.mark.parametrize("value", ["yes", 1, 0, CollectorRegistry])
def test_a_bad_metrics_setting_fails_at_start_up_naming_the_key(
    make_app: Callable[..., Flask], value: Any
) -> None:
    with pytest.raises(ConfigError, match="DUALTOKEN_METRICS must be True, False, None"):
        make_app(DUALTOKEN_METRICS=value)


def test_metrics_are_on_by_default_in_the_default_registry(app: Flask) -> None:
    metrics = get_state(app).settings.metrics
    assert metrics is not None
    assert metrics is get_state(app).settings.metrics  # one per registry
    before = REGISTRY.get_sample_value("dualtoken_logins_total", {"outcome": "succeeded"})
    Api(app).login()
    after = REGISTRY.get_sample_value("dualtoken_logins_total", {"outcome": "succeeded"})
    assert before is not None and after == before + 1


WITHOUT_PROMETHEUS = """
import importlib, pkgutil, sys
sys.modules["prometheus_client"] = None  # as if not installed: importing it fails
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
print(app.extensions["dualtoken"].settings.metrics)
print(app.test_client().post("/auth/login", json={"username": "u", "password": "p"}).status_code)
try:
    make(DUALTOKEN_METRICS=True)
except ConfigError as exc:
    print(exc)
"""


def test_without_prometheus_client_metrics_are_off_and_asking_for_them_says_what_to_install() -> (
    None
):
    lines = run_python(WITHOUT_PROMETHEUS).splitlines()
    assert lines[:2] == ["None", "200"]
    assert "pip install 'flask-dualtoken[metrics]'" in lines[2]
    assert lines[2].startswith("DUALTOKEN_METRICS = True")


def module_level_imports(path: Path) -> set[str]:
    """The top-level packages a module imports when it is imported (not inside functions,
    not for type checking)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_no_module_imports_prometheus_client_when_it_is_imported() -> None:
    for path in (ROOT / "flask_dualtoken").glob("*.py"):
        assert "prometheus_client" not in module_level_imports(path), path.name


# -- docs/operations-metrics.md ---------------------------------------------------------------

PAGE = ROOT / "docs" / "operations-metrics.md"


def page_block(marker: str) -> str:
    """The fenced block right after ``<!-- marker -->`` on the page."""
    found = re.search(
        rf"^<!-- {re.escape(marker)} -->\n```\w+\n(?P<code>.*?)^```$",
        PAGE.read_text(),
        re.M | re.S,
    )
    assert found, f"{PAGE.name} has no block marked <!-- {marker} -->"
    return found["code"]


def run_block(marker: str, namespace: dict[str, Any]) -> None:
    """Run a block of the page as a module of the app would (without this module's
    ``from __future__ import annotations``)."""
    code = compile(page_block(marker), f"{PAGE.name}:{marker}", "exec", dont_inherit=True)
    exec(code, namespace)  # noqa: S102


def test_the_page_s_metrics_route_serves_the_library_s_metrics(app: Flask) -> None:
    run_block("run: metrics-route", {"app": app})
    Api(app).login()
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'dualtoken_logins_total{outcome="succeeded"}' in text
    assert 'dualtoken_store_seconds_count{operation="create+release"}' in text


def test_the_page_s_metric_table_is_what_is_registered(registry: CollectorRegistry) -> None:
    for_registry(registry)
    registered = {
        metric.name + ("_total" if metric.type == "counter" else ""): metric.type
        for metric in registry.collect()
    }
    rows = re.findall(r"^\| `(dualtoken_\w+)` \| (\w+) \| (.*?) \|", PAGE.read_text(), re.M)
    assert {name: kind for name, kind, _ in rows} == registered
    labels = {name: re.findall(r"`(\w+)`", cell)[1:] for name, _, cell in rows}
    assert labels["dualtoken_logins_total"] == list(LOGIN_OUTCOMES)
    assert labels["dualtoken_reissues_total"] == list(REISSUE_OUTCOMES)
    assert labels["dualtoken_sessions_ended_total"] == list(END_REASONS)


def test_the_page_s_alert_rules_are_yaml_that_names_real_metrics() -> None:
    yaml = pytest.importorskip("yaml")  # promtool is not at hand: the syntax, and the names
    rules = yaml.safe_load(page_block("prometheus-rules"))["groups"][0]["rules"]
    known = {name for name in series(REGISTRY) if name.startswith("dualtoken_")}
    known = {name.partition("{")[0] for name in known}
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule
        for name in re.findall(r"\bdualtoken_\w+", rule["expr"]):
            assert name in known, name
    (reuse,) = [rule for rule in rules if rule["alert"] == "RefreshTokenReuse"]
    assert reuse["expr"] == "sum(increase(dualtoken_refresh_token_reuse_total[5m])) > 0"
    assert "for" not in reuse  # the first one pages


def test_the_page_names_only_settings_that_exist() -> None:
    keys = set(re.findall(r"\bDUALTOKEN_[A-Z_]+\b", PAGE.read_text()))
    assert {"DUALTOKEN_METRICS", "DUALTOKEN_TRACING"} <= keys <= KNOWN_KEYS
