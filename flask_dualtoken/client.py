"""Client helpers: HTTP auth for httpx and requests that knows the reissue dance.

Send the access token; on 401 ``token_expired`` reissue once with the access token and
the refresh token, keep the new pair (``on_refresh`` can persist it), and retry. Many
threads sharing one auth object share one reissue: the first to see the expiry
reissues, the others wait and use its pair (single flight). Each import is optional:
``pip install 'flask-dualtoken[httpx]'`` or ``'flask-dualtoken[requests]'``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
    import requests
    from httpx import Auth as _HttpxAuthBase
else:
    try:  # optional: HttpxAuth must subclass httpx.Auth when httpx is there
        from httpx import Auth as _HttpxAuthBase
    except ImportError:  # pragma: no cover - depends on the environment
        _HttpxAuthBase = object

#: Called with every new pair, to persist it (a keyring, a file...).
RefreshHook = Callable[["Pair"], None]


@dataclass(frozen=True)
class Pair:
    access_token: str
    refresh_token: str

    def __repr__(self) -> str:  # keep tokens out of logs
        return "Pair(access_token=<hidden>, refresh_token=<hidden>)"


class DualTokenAuthError(Exception):
    """Logging in or reissuing failed; ``status`` and ``error`` come from the server."""

    def __init__(self, status: int, error: str | None) -> None:
        super().__init__(f"{status} {error}")
        self.status = status
        self.error = error


def _error_code(status: int, body: bytes) -> str | None:
    if status == 200:
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload.get("error") if isinstance(payload, dict) else None


class _PairKeeper:
    """The pair, the credentials to get one, and the single-flight lock."""

    def __init__(
        self,
        *,
        pair: Pair | None,
        username: str | None,
        password: str | None,
        prefix: str,
        on_refresh: RefreshHook | None,
    ) -> None:
        if pair is None and (username is None or password is None):
            raise ValueError("give a pair, or a username and a password to log in with")
        self.pair = pair
        self._credentials = (username, password)
        self.prefix = prefix
        self._on_refresh = on_refresh
        self.lock = threading.Lock()

    def login_body(self) -> dict[str, Any]:
        username, password = self._credentials
        return {"username": username, "password": password}

    def reissue_body(self) -> dict[str, Any]:
        assert self.pair is not None
        return {"refresh_token": self.pair.refresh_token}

    def accept(self, status: int, body: bytes) -> Pair:
        """Take the pair from a login or reissue answer, or raise."""
        code = _error_code(status, body)
        if status != 200:
            raise DualTokenAuthError(status, code)
        payload = json.loads(body)
        self.pair = Pair(payload["access_token"], payload["refresh_token"])
        if self._on_refresh is not None:
            self._on_refresh(self.pair)
        return self.pair

    @staticmethod
    def expired(status: int, body: bytes) -> bool:
        return status == 401 and _error_code(status, body) == "token_expired"


class HttpxAuth(_HttpxAuthBase):
    """``httpx.Auth`` for flask-dualtoken: ``httpx.Client(auth=...)`` or
    ``httpx.AsyncClient(auth=...)`` (one auth object per kind of client)."""

    requires_response_body = True

    def __init__(
        self,
        *,
        pair: Pair | None = None,
        username: str | None = None,
        password: str | None = None,
        prefix: str = "/auth",
        on_refresh: RefreshHook | None = None,
    ) -> None:
        if _HttpxAuthBase is object:
            raise ImportError("HttpxAuth needs httpx: pip install 'flask-dualtoken[httpx]'")

        self._keeper = _PairKeeper(
            pair=pair,
            username=username,
            password=password,
            prefix=prefix,
            on_refresh=on_refresh,
        )
        self._async_lock = asyncio.Lock()

    @property
    def pair(self) -> Pair | None:
        return self._keeper.pair

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        keeper = self._keeper
        with keeper.lock:
            if keeper.pair is None:
                login = yield self._post(request, "login", keeper.login_body())
                keeper.accept(login.status_code, login.read())
            sent_with = keeper.pair
        assert sent_with is not None
        request.headers["Authorization"] = f"Bearer {sent_with.access_token}"
        response = yield request
        if not keeper.expired(response.status_code, response.read()):
            return
        with keeper.lock:
            if keeper.pair == sent_with:  # nobody reissued meanwhile: we do
                reissue = self._post(request, "reissue", keeper.reissue_body())
                reissue.headers["Authorization"] = f"Bearer {sent_with.access_token}"
                answer = yield reissue
                keeper.accept(answer.status_code, answer.read())
            fresh = keeper.pair
        assert fresh is not None
        request.headers["Authorization"] = f"Bearer {fresh.access_token}"
        yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        # The same dance for httpx.AsyncClient, single flight among the tasks of one loop.
        keeper = self._keeper
        async with self._async_lock:
            if keeper.pair is None:
                login = yield self._post(request, "login", keeper.login_body())
                keeper.accept(login.status_code, await login.aread())
            sent_with = keeper.pair
        assert sent_with is not None
        request.headers["Authorization"] = f"Bearer {sent_with.access_token}"
        response = yield request
        if not keeper.expired(response.status_code, await response.aread()):
            return
        async with self._async_lock:
            if keeper.pair == sent_with:
                reissue = self._post(request, "reissue", keeper.reissue_body())
                reissue.headers["Authorization"] = f"Bearer {sent_with.access_token}"
                answer = yield reissue
                keeper.accept(answer.status_code, await answer.aread())
            fresh = keeper.pair
        assert fresh is not None
        request.headers["Authorization"] = f"Bearer {fresh.access_token}"
        yield request

    def _post(self, request: httpx.Request, route: str, body: dict[str, Any]) -> httpx.Request:
        import httpx

        url = request.url.copy_with(path=f"{self._keeper.prefix}/{route}", query=None)
        return httpx.Request("POST", url, json=body)


class RequestsAuth:
    """``requests`` auth for flask-dualtoken: ``session.auth = RequestsAuth(...)``."""

    def __init__(
        self,
        *,
        base_url: str,
        pair: Pair | None = None,
        username: str | None = None,
        password: str | None = None,
        prefix: str = "/auth",
        on_refresh: RefreshHook | None = None,
    ) -> None:
        import requests

        self._keeper = _PairKeeper(
            pair=pair,
            username=username,
            password=password,
            prefix=prefix,
            on_refresh=on_refresh,
        )
        self._base = base_url.rstrip("/")
        self._http = requests.Session()  # for login and reissue only, without this auth

    @property
    def pair(self) -> Pair | None:
        return self._keeper.pair

    def _current(self) -> Pair:
        keeper = self._keeper
        with keeper.lock:
            if keeper.pair is None:
                answer = self._http.post(
                    f"{self._base}{keeper.prefix}/login", json=keeper.login_body(), timeout=30
                )
                keeper.accept(answer.status_code, answer.content)
            assert keeper.pair is not None
            return keeper.pair

    def _reissue(self, stale: Pair) -> Pair:
        keeper = self._keeper
        with keeper.lock:
            if keeper.pair == stale:  # nobody reissued meanwhile: we do
                answer = self._http.post(
                    f"{self._base}{keeper.prefix}/reissue",
                    json=keeper.reissue_body(),
                    headers={"Authorization": f"Bearer {stale.access_token}"},
                    timeout=30,
                )
                keeper.accept(answer.status_code, answer.content)
            assert keeper.pair is not None
            return keeper.pair

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        pair = self._current()
        request.headers["Authorization"] = f"Bearer {pair.access_token}"
        request.register_hook("response", self._retry_on_expiry(pair))
        return request

    def _retry_on_expiry(self, sent_with: Pair) -> Callable[..., Any]:
        def hook(response: requests.Response, **kwargs: Any) -> requests.Response:
            if not self._keeper.expired(response.status_code, response.content):
                return response
            fresh = self._reissue(sent_with)
            retry = response.request.copy()
            retry.headers["Authorization"] = f"Bearer {fresh.access_token}"
            retry.hooks = {"response": []}  # one retry, never a loop
            response.content  # noqa: B018 - release the connection before reusing it
            response.close()
            again: requests.Response = response.connection.send(retry, **kwargs)
            again.history.append(response)
            return again

        return hook
