"""Client helpers: HTTP auth for httpx and requests that knows the reissue dance.

Send the access token; on 401 ``token_expired`` reissue once with the access token and
the refresh token, keep the new pair (``on_refresh`` can persist it), and retry. Many
threads sharing one auth object share one reissue: the first to see the expiry
reissues, the others wait and use its pair (single flight). Each import is optional:
``pip install 'flask-dualtoken[httpx]'`` or ``'flask-dualtoken[requests]'``.

Both helpers serve one origin, ``base_url``'s (scheme, host, port, compared exactly): a
client also talks to other hosts, and those must never see the password or a token, nor
make the helper log in or reissue with their 401. Requests to any other origin pass
through untouched. Login and reissue never follow a redirect, which would carry the
password or the refresh token wherever the server points.
"""

from __future__ import annotations

import asyncio
import enum
import json
import threading
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterator,
    Mapping,
)
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urljoin, urlsplit, urlunsplit

if TYPE_CHECKING:
    import httpx
    import requests
    from httpx import AsyncByteStream as _AsyncBody
    from httpx import Auth as _HttpxAuthBase
    from httpx import SyncByteStream as _SyncBody
else:
    try:  # optional: HttpxAuth must subclass httpx.Auth when httpx is there
        from httpx import AsyncByteStream as _AsyncBody
        from httpx import Auth as _HttpxAuthBase
        from httpx import SyncByteStream as _SyncBody
    except ImportError:  # pragma: no cover - depends on the environment
        _HttpxAuthBase = object

        class _SyncBody:
            pass

        class _AsyncBody:
            pass


__all__ = ["DualTokenAuthError", "HttpxAuth", "Pair", "RefreshHook", "RequestsAuth"]

#: Called with every new pair, to persist it (a keyring, a file...).
RefreshHook = Callable[["Pair"], None]
Origin = tuple[str, str, int]

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Pair:
    access_token: str
    refresh_token: str

    def __repr__(self) -> str:  # keep tokens out of logs
        return "Pair(access_token=<hidden>, refresh_token=<hidden>)"

    def to_dict(self) -> dict[str, str]:
        """The two tokens, in the login answer's field names: what ``pair=`` accepts back,
        so a pair saved as JSON (``on_refresh``) starts a later client."""
        return {"access_token": self.access_token, "refresh_token": self.refresh_token}


class DualTokenAuthError(Exception):
    """Logging in or reissuing failed; ``status`` and ``error`` come from the server.

    A redirect in answer to a login or a reissue is refused, never followed: ``error`` is
    then ``"redirect_refused"``, and ``status`` the 3xx, or 0 when httpx, told to follow
    redirects, was stopped before it could resend the body elsewhere.
    """

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


def _origin(url: str) -> Origin | None:
    """``(scheme, host, port)`` of an http(s) URL, lowercased, the port explicit; None for
    anything else. The host is compared exactly: ``localhost`` is not ``127.0.0.1``."""
    try:
        parts = urlsplit(url)
        port = parts.port
        scheme = parts.scheme.lower()
        host = parts.hostname  # lowercased, IPv6 without brackets
        # A host not in ASCII is no origin of ours: base_url must be ASCII (below), and
        # httpx and requests put a request's host into its ASCII (IDNA) form themselves.
        if scheme not in _DEFAULT_PORTS or not host or not host.isascii():
            return None
    except ValueError:  # a bad port
        return None
    return scheme, host, _DEFAULT_PORTS[scheme] if port is None else port


def _base(base_url: str) -> tuple[str, Origin]:
    """Check ``base_url`` once: the URL to build login and reissue URLs on, and its origin.
    The messages leave the URL out: it might carry a password."""
    parts = urlsplit(base_url)
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        raise ValueError("base_url must be an http:// or https:// URL")
    if "@" in parts.netloc:
        raise ValueError("base_url must not carry credentials (user:password@)")
    if parts.query or parts.fragment:
        raise ValueError("base_url must not have a query or a fragment")
    if not parts.netloc.isascii():
        # Python's IDNA codec (IDNA 2003) and the HTTP libraries' (IDNA 2008, UTS 46)
        # spell some names differently (straße: strasse or xn--strae-oqa), so the origin
        # compared must be the one the libraries connect to: ask for it outright.
        raise ValueError("base_url must give its host in ASCII (an IDN in its xn-- form)")
    origin = _origin(base_url)
    if origin is None:
        raise ValueError("base_url needs a host, and a valid port if it gives one")
    return urlunsplit((origin[0], parts.netloc, parts.path.rstrip("/"), "", "")), origin


def _as_pair(pair: Pair | Mapping[str, Any] | None) -> Pair | None:
    """A ``Pair``, from a ``Pair`` or from a login or reissue answer's JSON (a dict), so a
    wrong argument fails here and not at the first request."""
    if pair is None or isinstance(pair, Pair):
        return pair
    if isinstance(pair, Mapping):
        access, refresh = pair.get("access_token"), pair.get("refresh_token")
        if isinstance(access, str) and isinstance(refresh, str):
            return Pair(access, refresh)
        raise ValueError("a pair given as a dict needs 'access_token' and 'refresh_token'")
    raise TypeError(
        f"pair must be a flask_dualtoken.client.Pair or a login answer's dict, "
        f"not {type(pair).__name__}"
    )


def _pair_of(status: int, body: bytes) -> Pair:
    if 300 <= status < 400:
        raise DualTokenAuthError(status, "redirect_refused")
    if status != 200:
        raise DualTokenAuthError(status, _error_code(status, body))
    try:
        payload = json.loads(body)
        access, refresh = payload["access_token"], payload["refresh_token"]
    except (ValueError, KeyError, TypeError):
        raise DualTokenAuthError(status, "invalid_response") from None
    if not (isinstance(access, str) and isinstance(refresh, str)):
        raise DualTokenAuthError(status, "invalid_response")
    return Pair(access, refresh)


class _PairKeeper:
    """The pair, the credentials to get one, the origin they belong to, and the
    single-flight lock."""

    def __init__(
        self,
        *,
        base_url: str,
        pair: Pair | Mapping[str, Any] | None,
        username: str | None,
        password: str | None,
        prefix: str,
        on_refresh: RefreshHook | None,
    ) -> None:
        if pair is None and (username is None or password is None):
            raise ValueError("give a pair, or a username and a password to log in with")
        pair = _as_pair(pair)
        self._base, self.origin = _base(base_url)
        self.prefix = prefix
        if _origin(self.url("login")) != self.origin:
            raise ValueError("prefix must be a path, starting with /")
        self.pair = pair
        self._credentials = (username, password)
        self._on_refresh = on_refresh
        self.lock = threading.Lock()
        # Login and reissue attempts made, and how the last one failed: those who waited
        # for an attempt share its failure too, rather than each repeating it (a stale
        # password tried by every waiting thread would use up the account's login limit).
        self.attempts = 0
        self._failure: DualTokenAuthError | None = None

    def share_failure(self, seen: int) -> None:
        """Raise the failure of an attempt made while the caller waited for the lock
        (``seen``: ``attempts`` before it waited). Call with the lock held."""
        failure = self._failure
        if self.attempts != seen and failure is not None:
            raise DualTokenAuthError(failure.status, failure.error)

    def url(self, route: str) -> str:
        """Login and reissue go to base_url, never to wherever a request was going."""
        return f"{self._base}{self.prefix}/{route}"

    def serves(self, url: str) -> bool:
        return _origin(url) == self.origin

    def login_body(self) -> dict[str, Any]:
        username, password = self._credentials
        return {"username": username, "password": password}

    def reissue_body(self) -> dict[str, Any]:
        assert self.pair is not None
        return {"refresh_token": self.pair.refresh_token}

    def accept(self, status: int, body: bytes) -> Pair:
        """Take the pair from a login or reissue answer, or raise. Call with the lock held."""
        self.attempts += 1
        try:
            self.pair = _pair_of(status, body)
        except DualTokenAuthError as exc:
            self._failure = exc
            raise
        self._failure = None
        if self._on_refresh is not None:
            self._on_refresh(self.pair)
        return self.pair

    @staticmethod
    def expired(status: int, body: bytes) -> bool:
        return status == 401 and _error_code(status, body) == "token_expired"


class _SendOnce(_SyncBody, _AsyncBody):
    """The JSON body of a login or a reissue, which can go out once. An httpx client told
    to follow redirects resends the body of a 307 or 308 to the new address: there this
    raises after the headers and before a byte of the body (the password, the refresh
    token) leaves."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def _take(self) -> bytes:
        data, self._data = self._data, None
        if data is None:
            raise DualTokenAuthError(0, "redirect_refused")
        return data

    def __iter__(self) -> Iterator[bytes]:
        yield self._take()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._take()


class _Step(enum.Enum):
    """What the shared flow asks of the client driving it, besides sending a request."""

    LOCK = "lock"
    UNLOCK = "unlock"


_LOCK, _UNLOCK = _Step.LOCK, _Step.UNLOCK


def _first_status(sent: httpx.Request, answer: httpx.Response) -> int:
    """The status that answered ``sent`` itself: the 3xx when httpx followed a redirect
    (301, 302, 303 drop the body) to reach ``answer``."""
    if answer.request is sent:
        return answer.status_code
    return next((r.status_code for r in answer.history if r.request is sent), 0)


class _Auth:
    """What both helpers hold: the pair, and how to get and renew it (``_PairKeeper``)."""

    def __init__(
        self,
        *,
        base_url: str,
        pair: Pair | Mapping[str, Any] | None = None,
        username: str | None = None,
        password: str | None = None,
        prefix: str = "/auth",
        on_refresh: RefreshHook | None = None,
    ) -> None:
        self._keeper = _PairKeeper(
            base_url=base_url,
            pair=pair,
            username=username,
            password=password,
            prefix=prefix,
            on_refresh=on_refresh,
        )
        self._ready()

    def _ready(self) -> None:
        """What a helper needs besides the pair (its HTTP library, its locks)."""

    @property
    def pair(self) -> Pair | None:
        return self._keeper.pair


class HttpxAuth(_Auth, _HttpxAuthBase):
    """``httpx.Auth`` for flask-dualtoken: ``httpx.Client(auth=...)`` or
    ``httpx.AsyncClient(auth=...)`` (one auth object per kind of client). Only requests to
    ``base_url``'s origin get the token; the app's prefix, if any, goes in ``base_url``."""

    def _ready(self) -> None:
        if _HttpxAuthBase is object:
            raise ImportError("HttpxAuth needs httpx: pip install 'flask-dualtoken[httpx]'")
        # One lock per event loop: an asyncio.Lock belongs to the loop that first used it.
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def _async_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._async_locks.get(loop)
        if lock is None:
            lock = self._async_locks[loop] = asyncio.Lock()
        return lock

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        flow, held = self._flow(request), False
        step: _Step | httpx.Request = next(flow)
        try:
            while True:
                if step is _LOCK:
                    self._keeper.lock.acquire()
                    held = True  # before the flow runs on: it may raise with the lock held
                    step = flow.send(None)
                elif step is _UNLOCK:
                    self._keeper.lock.release()
                    held = False
                    step = flow.send(None)
                else:
                    response = yield cast("httpx.Request", step)
                    response.read()
                    step = flow.send(response)
        except StopIteration:
            return
        finally:
            if held:
                self._keeper.lock.release()

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        # The same steps for httpx.AsyncClient, single flight among the tasks of one loop.
        flow, held = self._flow(request), False
        step: _Step | httpx.Request = next(flow)
        try:
            while True:
                if step is _LOCK:
                    await self._async_lock.acquire()
                    held = True  # before the flow runs on: it may raise with the lock held
                    step = flow.send(None)
                elif step is _UNLOCK:
                    self._async_lock.release()
                    held = False
                    step = flow.send(None)
                else:
                    response = yield cast("httpx.Request", step)
                    await response.aread()
                    step = flow.send(response)
        except StopIteration:
            return
        finally:
            if held:
                self._async_lock.release()

    def _flow(
        self, request: httpx.Request
    ) -> Generator[_Step | httpx.Request, httpx.Response | None, None]:
        """The dance, once for both kinds of client: it yields the requests to send (and
        gets their answers, bodies read) and asks for the single-flight lock with _LOCK and
        _UNLOCK, which each client takes in its own way."""
        keeper = self._keeper
        if not keeper.serves(str(request.url)):  # another origin: untouched
            yield request
            return
        seen = keeper.attempts
        yield _LOCK
        if keeper.pair is None:
            keeper.share_failure(seen)
            login = self._post(request, "login", keeper.login_body())
            answer = yield login
            assert answer is not None
            keeper.accept(_first_status(login, answer), answer.content)
        sent_with = keeper.pair
        yield _UNLOCK
        assert sent_with is not None
        request.headers["Authorization"] = f"Bearer {sent_with.access_token}"
        response = yield request
        assert response is not None
        if not self._unauthorized_here(response):
            return
        if not keeper.expired(response.status_code, response.content):
            return
        seen = keeper.attempts
        yield _LOCK
        if keeper.pair == sent_with:  # nobody reissued meanwhile: we do
            keeper.share_failure(seen)
            reissue = self._post(request, "reissue", keeper.reissue_body(), sent_with)
            answer = yield reissue
            assert answer is not None
            keeper.accept(_first_status(reissue, answer), answer.content)
        fresh = keeper.pair
        yield _UNLOCK
        assert fresh is not None
        request.headers["Authorization"] = f"Bearer {fresh.access_token}"
        yield request

    def _unauthorized_here(self, response: httpx.Response) -> bool:
        """A 401 from base_url's origin: a redirect httpx followed may have left it, and
        another origin's 401 is none of our business."""
        return response.status_code == 401 and self._keeper.serves(str(response.request.url))

    def _post(
        self,
        request: httpx.Request,
        route: str,
        body: dict[str, Any],
        bearer: Pair | None = None,
    ) -> httpx.Request:
        import httpx

        headers = {} if bearer is None else {"Authorization": f"Bearer {bearer.access_token}"}
        # The caller's timeout, which httpx sets on its own requests only.
        extensions = {k: v for k, v in request.extensions.items() if k == "timeout"}
        sent = httpx.Request(
            "POST", self._keeper.url(route), json=body, headers=headers, extensions=extensions
        )
        sent.stream = _SendOnce(sent.content)  # same headers, a body that goes out once
        return sent


class RequestsAuth(_Auth):
    """``requests`` auth for flask-dualtoken: ``session.auth = RequestsAuth(...)``. Only
    requests to ``base_url``'s origin get the token; the app's prefix, if any, goes in
    ``base_url``."""

    # The session for login and reissue only, without this auth; made at first use.
    _http: requests.Session | None = None

    def _post(self, route: str, body: dict[str, Any], bearer: Pair | None = None) -> Pair:
        headers = {} if bearer is None else {"Authorization": f"Bearer {bearer.access_token}"}
        if self._http is None:
            import requests

            self._http = requests.Session()
        answer = self._http.post(
            self._keeper.url(route),
            json=body,
            headers=headers,
            timeout=30,
            allow_redirects=False,  # a 307 would resend the body wherever it points
        )
        return self._keeper.accept(answer.status_code, answer.content)

    def _current(self) -> Pair:
        keeper = self._keeper
        seen = keeper.attempts
        with keeper.lock:
            if keeper.pair is None:
                keeper.share_failure(seen)
                self._post("login", keeper.login_body())
            assert keeper.pair is not None
            return keeper.pair

    def _reissue(self, stale: Pair) -> Pair:
        keeper = self._keeper
        seen = keeper.attempts
        with keeper.lock:
            if keeper.pair == stale:  # nobody reissued meanwhile: we do
                keeper.share_failure(seen)
                self._post("reissue", keeper.reissue_body(), stale)
            assert keeper.pair is not None
            return keeper.pair

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if request.url is None or not self._keeper.serves(request.url):
            return request  # another origin: untouched
        pair = self._current()
        request.headers["Authorization"] = f"Bearer {pair.access_token}"
        request.register_hook("response", self._retry_on_expiry(pair))
        return request

    def _retry_on_expiry(self, sent_with: Pair) -> Callable[..., Any]:
        # requests copies this hook onto the requests of a redirect it follows, to any
        # host: the answer's own URL decides, or a foreign 401 would get a fresh token.
        def hook(response: requests.Response, **kwargs: Any) -> requests.Response:
            keeper = self._keeper
            url = response.request.url
            if url is None or not keeper.serves(url):
                return response
            if response.is_redirect:
                # requests builds the next request from this one, and keeps Authorization
                # on an http -> https upgrade of the host: another origin all the same.
                if not keeper.serves(urljoin(url, response.headers["location"])):
                    response.request.headers.pop("Authorization", None)
                return response
            if response.status_code != 401 or not keeper.expired(401, response.content):
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
