"""OpenTelemetry traces (the ``tracing`` extra): a span around each flow and each store
round trip, with its outcome; never a token, a password, a secret or a user id.

``opentelemetry`` is imported only when an app turns tracing on (``DUALTOKEN_TRACING``, on
by default when the API is installed), never by ``import flask_dualtoken``. With the API
alone, and no SDK configured, every span is the API's no-op one.

What a span carries: its name (``dualtoken.login``, ``dualtoken.store.rotate``...) and
``dualtoken.outcome``, "ok" or the error code the caller is answered with (one of a fixed
set); ``error.type`` for a failure that is the server's (store unavailable, a
misconfiguration). No user id, session id, username or address: a trace backend keeps
them with other rules than the audit log, and a receiver of the signals (sent inside the
flow's span) can add what an app decides to (docs/operations-metrics.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import wraps
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar
from weakref import WeakKeyDictionary

from .errors import DualTokenError, StoreUnavailable

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from .config import Settings

INSTALL_HINT = "pip install 'flask-dualtoken[tracing]'"
#: The instrumentation scope of every span.
TRACER_NAME = "flask_dualtoken"
#: The attribute that says how a flow or a round trip ended: "ok" or an error code.
OUTCOME = "dualtoken.outcome"


def available() -> bool:
    """Whether the OpenTelemetry API is installed (without importing it: only the empty
    ``opentelemetry`` namespace package is looked into)."""
    try:
        return find_spec("opentelemetry.trace") is not None
    except (ImportError, ValueError):  # no "opentelemetry" package at all
        return False


def is_provider(value: Any) -> bool:
    """Whether ``value`` is an OpenTelemetry ``TracerProvider`` (the SDK's, say)."""
    if not available():
        return False
    from opentelemetry.trace import TracerProvider

    return isinstance(value, TracerProvider)


_tracers: WeakKeyDictionary[TracerProvider, Tracing] = WeakKeyDictionary()
_global: list[Tracing] = []
_lock = threading.Lock()


def tracing_for(provider: TracerProvider | None = None) -> Tracing:
    """This library's tracing through ``provider``; None: the global provider, as it is
    when a span starts (so an SDK configured after ``init_app`` is used). One per provider,
    so that apps sharing a store client share its observer."""
    from opentelemetry import trace

    with _lock:
        if provider is None:
            if not _global:
                _global.append(Tracing(trace.get_tracer_provider().get_tracer(TRACER_NAME)))
            return _global[0]
        found = _tracers.get(provider)
        if found is None:
            found = _tracers[provider] = Tracing(provider.get_tracer(TRACER_NAME))
        return found


@dataclass(frozen=True)
class Tracing:
    """An app's spans (``Settings.tracing``); called, the store hook's observer
    (``instruments.watch``)."""

    tracer: Tracer

    def flow(self, name: str) -> AbstractContextManager[object]:
        """The span of a flow: ``dualtoken.login``, ``dualtoken.reissue``..."""
        return _span(self.tracer, name, store=False)

    def __call__(self, operation: str) -> AbstractContextManager[object]:
        """A client span ``dualtoken.store.<operation>`` around one round trip, made only
        under a current span (a flow's, or the request's of the app's own Flask
        instrumentation), so that a call outside any trace starts no trace of its own."""
        from opentelemetry import trace

        if not trace.get_current_span().get_span_context().is_valid:
            return nullcontext()
        return _span(self.tracer, f"dualtoken.store.{operation}", store=True)


class _Traced(Protocol):
    """What a flow takes first: the app's state."""

    @property
    def settings(self) -> Settings: ...


S = TypeVar("S", bound=_Traced)
P = ParamSpec("P")
R = TypeVar("R")


def traced(flow: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Run a flow (its first argument the app's state) in the span ``dualtoken.<name>``
    when the app traces; else it is called as it is, after one check."""
    name = f"dualtoken.{flow.__name__}"

    @wraps(flow)
    def run(state: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        tracing = state.settings.tracing
        if tracing is None:
            return flow(state, *args, **kwargs)
        with tracing.flow(name):
            return flow(state, *args, **kwargs)

    return run


@contextmanager
def _span(tracer: Tracer, name: str, *, store: bool) -> Iterator[None]:
    from opentelemetry.trace import SpanKind

    kind = SpanKind.CLIENT if store else SpanKind.INTERNAL
    # Exceptions are not recorded: their messages are not ours to vouch for.
    with tracer.start_as_current_span(
        name, kind=kind, record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            yield
        except BaseException as exc:
            _failed(span, exc, store=store)
            raise
        span.set_attribute(OUTCOME, "ok")


def _failed(span: Span, exc: BaseException, *, store: bool) -> None:
    """The outcome of a span whose work raised: the error code the caller is answered
    with; a failure of the server's own (store, misconfiguration, a bug) also sets the
    span's status and ``error.type``, the exception's class name (never its message)."""
    from opentelemetry.trace import Status, StatusCode

    if isinstance(exc, DualTokenError) and (exc.code or 500) < 500:
        span.set_attribute(OUTCOME, exc.error)
        return
    if isinstance(exc, DualTokenError):
        code = exc.error
    else:  # a round trip's failure is answered as the store's (fail closed)
        code = StoreUnavailable.error if store else "error"
    span.set_attribute(OUTCOME, code)
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR))
