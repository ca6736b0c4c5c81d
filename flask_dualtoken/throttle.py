"""Login throttling: failed logins counted per username and per client address in Redis.

Counters are fixed windows opened by the first failure. A username over its limit, or an
address over its (looser) one, gets 429 before any password is checked, so a guesser
learns nothing more and costs the server no hashing. Usernames are counted case-folded,
so "Alice" and "alice" share one budget.
"""

from __future__ import annotations

import redis

from .config import Settings
from .errors import StoreUnavailable
from .store import RedisClient, hash_tag


class LoginThrottle:
    """Failed-login counters of one app; each method is one round trip (a pipeline)."""

    def __init__(self, client: RedisClient, settings: Settings) -> None:
        self._client = client
        self._prefix = settings.key_prefix
        self._user_limit = settings.login_max_attempts
        self._address_limit = settings.login_max_attempts_per_address
        self._window = settings.login_window

    def _user_key(self, username: str) -> str:
        return f"{self._prefix}:{hash_tag('l', username.casefold())}:fails"

    def _address_key(self, ip: str) -> str:
        return f"{self._prefix}:{hash_tag('a', ip)}:fails"

    def _counters(self, username: str, ip: str) -> list[tuple[str, int]]:
        counters = []
        if self._user_limit:
            counters.append((self._user_key(username), self._user_limit))
        if self._address_limit and ip:
            counters.append((self._address_key(ip), self._address_limit))
        return counters

    def check(self, username: str, ip: str) -> tuple[int, bool]:
        """Seconds until this login may be tried again (0: now), and whether the username
        has failures counted (only then does a success need to clear them)."""
        counters = self._counters(username, ip)
        if not counters:
            return 0, False
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for key, _ in counters:
                    pipe.get(key)
                    pipe.ttl(key)
                replies = pipe.execute()
        except redis.RedisError:
            raise StoreUnavailable() from None
        wait = 0
        for i, (_, limit) in enumerate(counters):
            count, ttl = replies[2 * i], replies[2 * i + 1]
            if count is not None and int(count) >= limit:
                wait = max(wait, ttl if ttl > 0 else self._window)
        user_failures = bool(self._user_limit) and replies[0] is not None
        return wait, user_failures

    def record_failure(self, username: str, ip: str) -> None:
        counters = self._counters(username, ip)
        if not counters:
            return
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for key, _ in counters:
                    # The first failure opens the window: SET NX gives the key its TTL
                    # only when it does not exist yet; INCR then keeps that TTL. Plain
                    # commands, so the pipeline also works across cluster slots.
                    pipe.set(key, 0, ex=self._window, nx=True)
                    pipe.incr(key)
                pipe.execute()
        except redis.RedisError:
            raise StoreUnavailable() from None

    def clear(self, username: str) -> None:
        """A successful login clears the username's counter (not the address's)."""
        if not self._user_limit:
            return
        try:
            self._client.delete(self._user_key(username))
        except redis.RedisError:
            raise StoreUnavailable() from None
