"""Login throttling: attempts reserved per username and per client address in Redis.

Every login reserves its attempt atomically (lua/reserve.lua) before any password is
checked, so however many requests arrive at once, on however many processes, at most the
limit reach ``authenticate`` in a window. A failure keeps its reservation (it is the
failure count); a success gives back its own, in the round trip that stores the session
(lua/release.lua), and clears nothing else: a success under one spelling ("CAROL") must
not hand guesses at another ("carol") new attempts, and one in the middle of a burst must
not free the burst's. Usernames are counted in a folded form (``fold_username``), so
spellings an app's lookup may treat as one ("Alice", fullwidth letters, "alice ") share
one budget. Counter keys always carry their window's expiry.

An authenticated introspection client's requests are counted the same way (the same
script, never given back): at most ``DUALTOKEN_INTROSPECTION_MAX_REQUESTS`` per
``DUALTOKEN_INTROSPECTION_WINDOW``, on every process together. Failed client
authentications (wrong introspection secrets) have a counter per address of their own,
apart from the login counters, so that failed logins from an address never refuse a
client there with the right secret.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from .config import Settings
from .connection import RedisClient
from .redis_scripts import STORE_ERRORS, ScriptCall, StoreHealth, run_many
from .scripts import ReleaseArgs, ReserveArgs
from .store import hash_tag


def fold_username(username: str) -> str:
    """The form a username is counted under: compatibility-decomposed, without marks or
    invisible format characters, case-folded, recomposed, whitespace trimmed and runs of
    it made one space.

    Broader than any one app's matching on purpose: a database collation that ignores
    case, accents, trailing spaces or zero-width characters, or a username field that
    applies NFKC, must not give a guesser a fresh budget per spelling. Distinct accounts
    whose names fold alike ("jose" and "josé") share one budget.
    """
    text = unicodedata.normalize("NFKD", username)
    for _ in range(2):  # case folding can bring marks of its own ("İ" folds to "i" + dot)
        text = "".join(c for c in text if unicodedata.category(c) not in _IGNORED)
        text = unicodedata.normalize("NFKD", text.casefold())
    return " ".join(unicodedata.normalize("NFKC", text).split())


#: Combining marks (accents, variation selectors, the combining grapheme joiner) and
#: format characters (zero-width space and joiners, soft hyphen, word joiner, BOM).
_IGNORED = frozenset({"Mn", "Me", "Cf"})


@dataclass(frozen=True)
class Reservation:
    """The attempts one login holds; ``on_success`` gives them back."""

    on_success: tuple[ScriptCall, ...] = ()


@dataclass(frozen=True)
class _Counter:
    key: str
    limit: int


class LoginThrottle:
    """Attempt counters of one app: reserving them is one round trip (a pipeline)."""

    def __init__(self, client: RedisClient, settings: Settings, health: StoreHealth) -> None:
        self._client = client
        self._health = health
        self._prefix = settings.key_prefix
        self._user_limit = settings.login_max_attempts
        self._address_limit = settings.login_max_attempts_per_address
        self._window = settings.login_window
        self._client_limit = settings.introspection_max_requests
        self._client_window = settings.introspection_window

    def _counters(self, username: str | None, ip: str) -> list[_Counter]:
        counters = []
        if self._user_limit and username is not None:
            key = f"{self._prefix}:{hash_tag('l', fold_username(username))}:tries"
            counters.append(_Counter(key, self._user_limit))
        if self._address_limit and ip:
            key = f"{self._prefix}:{hash_tag('a', ip)}:tries"
            counters.append(_Counter(key, self._address_limit))
        return counters

    def reserve(self, username: str | None, ip: str) -> tuple[int, Reservation]:
        """Reserve an attempt on every counter: ``(0, reservation)``, or the seconds to
        wait when a counter is full (then nothing stays reserved). ``username`` None: the
        address's counter only."""
        counters = self._counters(username, ip)
        if not counters:
            return 0, Reservation()
        calls = [
            ReserveArgs(counter=c.key, limit=c.limit, window=self._window).call() for c in counters
        ]
        try:
            replies = run_many(self._client, calls)
            granted = [c for c, (ok, _) in zip(counters, replies, strict=True) if ok]
            if len(granted) < len(counters):
                # A full counter refuses the attempt: give back what the others reserved.
                if granted:
                    run_many(self._client, [ReleaseArgs(counter=c.key).call() for c in granted])
                wait_ms = max(int(ttl) for ok, ttl in replies if not ok)
                return max(1, -(-wait_ms // 1000)), Reservation()
        except STORE_ERRORS as exc:
            raise self._health.failed(exc) from None
        self._health.answered()
        return 0, Reservation(tuple(ReleaseArgs(counter=c.key).call() for c in counters))

    def count_client_request(self, client_id: str) -> int:
        """Count one request of an authenticated introspection client: 0, or the seconds
        to wait when the client is over its limit (then the request is not counted).

        Checking and counting are one script (lua/reserve.lua), so however many requests
        race, on however many processes, at most the limit pass in a window.
        """
        if not self._client_limit:
            return 0
        key = f"{self._prefix}:{hash_tag('i', client_id)}:requests"
        return self._count(key, self._client_limit, self._client_window)

    def count_client_failure(self, ip: str) -> int:
        """Count a failed client authentication (a wrong introspection secret) from ``ip``,
        on that address's own counter (not the login one): 0, or the seconds to wait when
        the address is over ``DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS`` failures in its
        ``DUALTOKEN_LOGIN_WINDOW`` (then it is not counted). Checked and counted in one
        atomic step (lua/reserve.lua); never given back."""
        if not self._address_limit or not ip:
            return 0
        key = f"{self._prefix}:{hash_tag('c', ip)}:client-failures"
        return self._count(key, self._address_limit, self._window)

    def _count(self, key: str, limit: int, window: int) -> int:
        """One more on ``key`` unless it is at ``limit``: 0, or the seconds to wait."""
        call = ReserveArgs(counter=key, limit=limit, window=window).call()
        try:
            ((ok, wait_ms),) = run_many(self._client, [call])
        except STORE_ERRORS as exc:
            raise self._health.failed(exc) from None
        self._health.answered()
        return 0 if ok else max(1, -(-int(wait_ms) // 1000))

    def release(self, reservation: Reservation) -> None:
        """Give a reservation back now, for a success that stores nothing of its own."""
        if not reservation.on_success:
            return
        try:
            run_many(self._client, list(reservation.on_success))
        except STORE_ERRORS as exc:
            raise self._health.failed(exc) from None
        self._health.answered()
