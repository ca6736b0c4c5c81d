"""Prometheus metrics (the ``metrics`` extra): logins, reissues, reuse, ended sessions and
store round trips, counted from the signals and the store hook; never per request.

``prometheus_client`` is imported only when an app turns metrics on (``DUALTOKEN_METRICS``,
on by default when it is installed), never by ``import flask_dualtoken``. Every label value
is one of a small fixed set written here or a script's name: nothing a client sends (a
username, an address) and no user id becomes a label, since each new label value is a new
series kept in memory for good. Counters and histograms only, so gunicorn's multiprocess
mode (``PROMETHEUS_MULTIPROC_DIR``) sums them across workers as they are.
"""

from __future__ import annotations

import os
import threading
import time
from importlib.util import find_spec
from types import TracebackType
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from flask import Flask, Response

from . import signals

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

INSTALL_HINT = "pip install 'flask-dualtoken[metrics]'"

#: ``dualtoken_logins_total{outcome}``: a session started (a login, ``dualtoken.issue``),
#: credentials refused, or refused unchecked over the attempt limits. Re-authentication's
#: failures count here too, as they count against the same limits.
LOGIN_OUTCOMES = ("succeeded", "failed", "throttled")
#: ``dualtoken_reissues_total{outcome}``: a new pair, or the same pair again within grace.
REISSUE_OUTCOMES = ("rotated", "replayed")
#: ``dualtoken_sessions_ended_total{reason}``: how sessions end. ``revoked``: by id (the
#: API, ``DELETE /sessions/<sid>``, ``POST /revoke``, the CLI); ``reuse``: an old refresh
#: token came back; ``credentials_changed``: a changed security stamp; ``session_limit``:
#: the cap made room for a login; ``user_unavailable``: the user is gone or disabled;
#: ``other``: a reason this list does not know (none today).
END_REASONS = (
    "logout",
    "logout_all",
    "revoked",
    "reuse",
    "credentials_changed",
    "session_limit",
    "user_unavailable",
    "other",
)
#: ``dualtoken_store_seconds`` buckets: a loopback round trip takes about 0.1 ms, a LAN's
#: under a millisecond; the top ones catch the URL client's 0.5 s timeout and its retry.
STORE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


def available() -> bool:
    """Whether ``prometheus_client`` is installed (without importing it)."""
    return find_spec("prometheus_client") is not None


def default_registry() -> CollectorRegistry:
    """prometheus_client's default registry, which its own exposition functions serve."""
    from prometheus_client import REGISTRY

    return REGISTRY


def is_registry(value: Any) -> bool:
    """Whether ``value`` is a prometheus_client ``CollectorRegistry``."""
    if not available():
        return False
    from prometheus_client import CollectorRegistry

    return isinstance(value, CollectorRegistry)


class Metrics:
    """The metrics of one registry; ``for_registry`` makes them once per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Histogram

        self.logins = Counter(
            "dualtoken_logins",
            "Logins by outcome: succeeded, failed (credentials refused), throttled.",
            ["outcome"],
            registry=registry,
        )
        self.reissues = Counter(
            "dualtoken_reissues",
            "Reissues by outcome: rotated (a new pair), replayed (the same pair, in grace).",
            ["outcome"],
            registry=registry,
        )
        self.reuse = Counter(
            "dualtoken_refresh_token_reuse",
            "Old refresh tokens presented again, each ending its session: alert on any.",
            registry=registry,
        )
        self.sessions_ended = Counter(
            "dualtoken_sessions_ended",
            "Sessions ended, by reason (logout_all: one per call, however many it ended).",
            ["reason"],
            registry=registry,
        )
        self.store_errors = Counter(
            "dualtoken_store_errors",
            "Round trips of scripts to the store that failed (outage or error reply).",
            registry=registry,
        )
        self.store_seconds = Histogram(
            "dualtoken_store_seconds",
            "Round-trip time of the store's scripts, by operation (script name).",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        # Every label value exported from the start, at 0: an alert on increase() needs a
        # series that existed before its first event.
        self._login = {outcome: self.logins.labels(outcome) for outcome in LOGIN_OUTCOMES}
        self._reissue = {outcome: self.reissues.labels(outcome) for outcome in REISSUE_OUTCOMES}
        self._ended = {reason: self.sessions_ended.labels(reason) for reason in END_REASONS}

    def watch(self, app: Flask) -> None:
        """Count ``app``'s signals from now on; twice is once."""
        receivers = (
            (signals.user_logged_in, self._logged_in),
            (signals.login_failed, self._login_failed),
            (signals.login_throttled, self._login_throttled),
            (signals.token_reissued, self._reissued),
            (signals.refresh_token_reused, self._reused),
            (signals.session_logged_out, self._logged_out),
            (signals.session_revoked, self._revoked),
            (signals.all_sessions_revoked, self._all_revoked),
            (signals.credentials_changed, self._credentials_changed),
        )
        for signal, receiver in receivers:
            # Weakly: they go when these metrics do (a test's own registry).
            signal.connect(receiver, sender=app)

    def time_store(self, operation: str) -> StoreTimer:
        """The store hook's observer (``instruments.watch``): one round trip, timed."""
        return StoreTimer(self, operation)

    # Receivers: sender the app, the signal's facts as keyword arguments.

    def _logged_in(self, sender: Any, **facts: Any) -> None:
        self._login["succeeded"].inc()

    def _login_failed(self, sender: Any, **facts: Any) -> None:
        self._login["failed"].inc()

    def _login_throttled(self, sender: Any, **facts: Any) -> None:
        self._login["throttled"].inc()

    def _reissued(self, sender: Any, *, replayed: bool = False, **facts: Any) -> None:
        self._reissue["replayed" if replayed else "rotated"].inc()

    def _reused(self, sender: Any, **facts: Any) -> None:
        self.reuse.inc()
        self._ended["reuse"].inc()

    def _logged_out(self, sender: Any, **facts: Any) -> None:
        self._ended["logout"].inc()

    def _revoked(self, sender: Any, *, reason: str = "", **facts: Any) -> None:
        self._ended.get(reason, self._ended["other"]).inc()

    def _all_revoked(self, sender: Any, **facts: Any) -> None:
        self._ended["logout_all"].inc()

    def _credentials_changed(self, sender: Any, *, ended: int = 0, **facts: Any) -> None:
        if ended > 0:
            self._ended["credentials_changed"].inc(ended)


class StoreTimer:
    """One round trip to the store: its time observed, its failure counted."""

    __slots__ = ("_metrics", "_operation", "_start")

    def __init__(self, metrics: Metrics, operation: str) -> None:
        self._metrics = metrics
        self._operation = operation
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        elapsed = time.perf_counter() - self._start
        self._metrics.store_seconds.labels(self._operation).observe(elapsed)
        if exc_type is not None:
            self._metrics.store_errors.inc()


_made: WeakKeyDictionary[CollectorRegistry, Metrics] = WeakKeyDictionary()
_lock = threading.Lock()


def for_registry(registry: CollectorRegistry) -> Metrics:
    """The metrics of ``registry``, registered there on first use (a registry refuses the
    same name twice, so every app of a process shares them)."""
    with _lock:
        made = _made.get(registry)
        if made is None:
            made = _made[registry] = Metrics(registry)
        return made


def metrics_response(registry: CollectorRegistry | None = None) -> Response:
    """The answer of an app's own ``/metrics`` route: the Prometheus text format.

    ``registry``: the one to serve; by default every process's metrics summed through
    ``MultiProcessCollector`` when ``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn with
    several workers), else prometheus_client's default registry (which holds this
    library's metrics unless ``DUALTOKEN_METRICS`` names another). Needs the ``metrics``
    extra.
    """
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if registry is None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import CollectorRegistry
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = default_registry()
    response = Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response
