"""The store hook: each round trip of scripts timed (metrics) and traced, per store client.

``redis_scripts.instrument`` stays None, and costs one check per round trip, until an app
with metrics or traces on is initialised; from then on it looks up the observers of the
client a round trip goes to, so an app with both off (another app of the process, a test)
is not observed, unless it shares its client object (``DUALTOKEN_REDIS``) with an app
that has them on: observers belong to the client, whose round trips they see. They are
kept by client, weakly: a closed app's client goes with them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from . import redis_scripts

if TYPE_CHECKING:
    from .connection import RedisClient

#: ``observer(operation)``: a context manager around one round trip. Observers that
#: compare equal are one (two apps sharing a client and a registry count once).
Observer = Callable[[str], AbstractContextManager[object]]

_observers: WeakKeyDictionary[RedisClient, tuple[Observer, ...]] = WeakKeyDictionary()
_lock = threading.Lock()


def watch(client: RedisClient, observer: Observer) -> None:
    """Wrap ``observer`` around every round trip of scripts to ``client`` from now on."""
    with _lock:
        observers = _observers.get(client, ())
        if observer not in observers:
            _observers[client] = (*observers, observer)
        redis_scripts.instrument = _around


def _around(client: RedisClient, operation: str) -> AbstractContextManager[object]:
    observers = _observers.get(client, ())
    if len(observers) == 1:
        return observers[0](operation)
    if not observers:
        return nullcontext()
    return _each(observers, operation)


@contextmanager
def _each(observers: tuple[Observer, ...], operation: str) -> Iterator[None]:
    with ExitStack() as stack:
        for observer in observers:
            stack.enter_context(observer(operation))
        yield
