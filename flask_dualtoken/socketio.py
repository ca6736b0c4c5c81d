"""The Socket.IO integration: connections authenticate with an access token, handlers see
``current_user``, and a socket ends with its session or at its token's expiry.

``accept_access_tokens(socketio)`` hooks two places of a Flask-SocketIO server, the only
ones every connection and every event pass through (neither library has a public hook):

- python-socketio's ``Server._trigger_event``, for ``connect`` and ``disconnect`` of every
  namespace, whether or not the app has a handler for them. A connection presents its
  access token in the ``auth`` payload (``{"token": ...}``), or the way an HTTP request
  does (the bearer header of the handshake, or in cookie mode the access cookie, then
  only from an allowed origin). The token is checked by the same parts as
  ``@jwt_required``: ``codec.decode_access``, the revocation guard, and a verify-only
  app's introspection; a refusal is python-socketio's ``ConnectionRefusedError``, its
  message the error code and its data the HTTP error's JSON and status.
- Flask-SocketIO's ``SocketIO._handle_event``, which runs each handler in a request
  context of its own: there the socket's token is made the request's
  (``set_request_auth``), so ``current_user`` and ``get_jwt()`` work, after the token's
  expiry and its session are checked again. A socket that fails is sent
  ``ERROR_EVENT`` and disconnected; the handler does not run.

The verified token is kept per socket, server-side, in this process. A socket ends with
its session: under ``DUALTOKEN_REVOCATION = "push"`` the guard tells this module of every
ending (``SessionGuard.watch``) and the socket is disconnected by a background task within
milliseconds; otherwise at its next event. Whatever the mode it ends at its token's
``exp``, by a timer: a client reissues and connects again. Flask-SocketIO and
python-socketio are imported only by the calls that need them, never by importing this
module or the package.
"""

from __future__ import annotations

import functools
import heapq
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from . import transport
from .context import set_request_auth
from .errors import (
    CsrfFailed,
    DualTokenError,
    InvalidRequest,
    SessionRevoked,
    TokenExpired,
    TokenInvalid,
    TokenMissing,
)
from .limits import MAX_TOKEN_BYTES
from .state import AppState, get_state

if TYPE_CHECKING:
    from flask_socketio import SocketIO

    from .revocation import SessionGuard
    from .tokens import AccessToken

logger = logging.getLogger("flask_dualtoken")

#: The field of the Socket.IO ``auth`` payload that carries the access token.
AUTH_FIELD = "token"
#: What a socket is sent just before it is disconnected: ``{"error", "message", "status"}``,
#: the HTTP error's JSON and its status (``token_expired``: reissue, then connect again).
ERROR_EVENT = "auth_error"
#: The longest the expiry timer sleeps, in seconds: it wakes at the next expiry, or this.
TICK = 1.0

#: A socket: its namespace and its Socket.IO session id.
Key = tuple[str, str]


@dataclass(eq=False)
class _Socket:
    """A connection and the access token it authenticated with."""

    app: Flask
    key: Key
    #: The token as presented: a verify-only app's introspection is asked about it.
    raw: str
    token: AccessToken
    #: Until python-socketio has finished connecting it: an ending then refuses it.
    connecting: bool = True
    #: Why it ends, once it does; it is dropped when its disconnect comes.
    ended: DualTokenError | None = None
    #: Whether the client was sent ERROR_EVENT.
    told: bool = False


def accept_access_tokens(socketio: SocketIO) -> TokenSockets:
    """Make every Socket.IO connection of ``socketio`` authenticate with an access token,
    and keep it authenticated; returns the :class:`TokenSockets` that does it.

    A client connects with ``auth={"token": "<access token>"}``; without one, the
    handshake's ``Authorization: Bearer`` header, or in cookie mode the access cookie,
    each where the app's ``DUALTOKEN_TOKEN_LOCATION`` reads it. A cookie is taken only from
    the site's own origin or an origin listed by name in ``cors_allowed_origins`` (not
    ``"*"``): a page of another site cannot open a socket with the user's cookie. A
    missing, bad, expired or revoked token refuses the connection: python-socketio's
    ``ConnectionRefusedError``, its message the error code (``token_missing``,
    ``token_invalid``, ``token_expired``, ``session_revoked``, ``csrf_failed``...), its
    data ``{"error", "message", "status"}``, the JSON and status of the HTTP answer.

    In every handler (``connect`` and ``disconnect`` too), ``current_user`` and
    ``get_jwt()`` are the socket's. Before each event the token's expiry and its session
    are checked again (``DUALTOKEN_REVOCATION``); a socket that fails is sent
    :data:`ERROR_EVENT` and disconnected, and the handler does not run. With push
    revocation, a socket whose session ends (logout, logout-all, reuse, a revoked
    session) is disconnected within milliseconds, by a background task. Every socket is
    disconnected when its access token expires: reissue and connect again.

    Call it after ``SocketIO(app)`` or ``socketio.init_app(app)``; twice is harmless.
    Needs flask-dualtoken initialised on the app. Hooks Flask-SocketIO's
    ``_handle_event`` and python-socketio's ``Server._trigger_event``.
    """
    server = getattr(socketio, "server", None)
    if server is None:
        raise RuntimeError(
            "accept_access_tokens(socketio) needs the Socket.IO server: call it after "
            "SocketIO(app) or socketio.init_app(app)"
        )
    if not callable(getattr(server, "_trigger_event", None)) or not callable(
        getattr(socketio, "_handle_event", None)
    ):
        raise RuntimeError(
            "this Flask-SocketIO has no _handle_event or _trigger_event to hook: "
            "install the socketio extra's versions (flask-dualtoken[socketio])"
        )
    installed = getattr(server._trigger_event, "__self__", None)
    if isinstance(installed, TokenSockets):
        return installed
    return TokenSockets(socketio)


class TokenSockets:
    """The sockets of one Flask-SocketIO server, each with the access token it connected
    with; built by :func:`accept_access_tokens`."""

    def __init__(self, socketio: SocketIO) -> None:
        self._socketio = socketio
        self._server: Any = socketio.server
        self._lock = threading.Lock()
        self._sockets: dict[Key, _Socket] = {}
        #: Per app, user id -> session id -> its sockets: what an ending names.
        self._sessions: dict[Flask, dict[str, dict[str, set[Key]]]] = {}
        #: (exp, socket), a heap; entries of sockets gone or ended are skipped when due.
        self._expiries: list[tuple[int, Key]] = []
        #: Sockets ended but not yet disconnected (still connecting when told to end).
        self._ending: set[Key] = set()
        self._watching: set[Flask] = set()
        self._ticking = False
        self._rechecking = False
        self._recheck_again = False
        self._trigger_event = self._server._trigger_event
        self._handle_event = socketio._handle_event
        self._server._trigger_event = self._trigger
        socketio._handle_event = self._handle

    @property
    def count(self) -> int:
        """How many sockets this process holds a token for."""
        return len(self._sockets)

    # -- connect and disconnect: python-socketio's dispatch ------------------------------

    def _trigger(self, event: str, namespace: str, *args: Any) -> Any:
        if event == "connect":
            return self._connect(namespace, *args)
        if event == "disconnect":
            try:
                return self._trigger_event(event, namespace, *args)
            finally:
                self._drop((namespace, args[0]))
        return self._trigger_event(event, namespace, *args)

    def _connect(self, namespace: str, sid: str, environ: dict[str, Any], *rest: Any) -> Any:
        key = (namespace, sid)
        app = environ.get("flask.app")
        if not isinstance(app, Flask):  # a server not mounted by Flask-SocketIO
            raise _refusal(TokenMissing("This Socket.IO server has no Flask app."))
        auth = rest[0] if rest else None
        with app.request_context(environ):
            try:
                socket = self._authenticate(app, key, auth)
            except DualTokenError as exc:
                raise _refusal(exc) from None
            except HTTPException as exc:  # werkzeug's own: an untrusted Host, say
                raise _refusal(InvalidRequest(exc.description)) from None
        try:
            accepted = self._trigger_event("connect", namespace, sid, environ, *rest)
        except BaseException:
            self._drop(key)
            raise
        with self._lock:
            socket.connecting = False
            ended = socket.ended
        if accepted is False or ended is not None:
            self._drop(key)
        if ended is not None:  # its session ended while it connected
            raise _refusal(ended)
        return accepted

    def _authenticate(self, app: Flask, key: Key, auth: Any) -> _Socket:
        """Verify the connection's token and hold the socket (before its session is
        checked, so that an ending announced from then on finds it)."""
        state = get_state(app)
        raw = self._presented(state, auth)
        token = state.codec.decode_access(raw)
        if time.time() >= token.exp:  # within the leeway: it would end at once
            raise TokenExpired()
        socket = _Socket(app, key, raw, token)
        self._hold(socket, state.revocation)
        try:
            _check_session(state, socket)
        except BaseException:
            self._drop(key)
            raise
        return socket

    def _presented(self, state: AppState, auth: Any) -> str:
        """The connection's access token: the ``auth`` payload's, else the handshake's
        bearer header or access cookie (``transport.presented_access``)."""
        if auth is not None and not isinstance(auth, dict):
            raise InvalidRequest(
                f'The Socket.IO auth payload must be an object: {{"{AUTH_FIELD}": ...}}.'
            )
        settings = state.settings
        given = auth.get(AUTH_FIELD) if auth is not None else None
        if given is not None and settings.access_from_header:  # where a bearer header is
            if not isinstance(given, str) or not given or len(given) > MAX_TOKEN_BYTES:
                raise TokenInvalid(f"The auth payload's '{AUTH_FIELD}' must be an access token.")
            return given
        presented = transport.presented_access(required=True)
        assert presented is not None  # required: None raises
        if not settings.access_from_header or transport.bearer_token() is None:
            self._check_origin()  # the access cookie: sent whichever page opens the socket
        return presented.token

    def _check_origin(self) -> None:
        """A cookie-authenticated handshake must come from an origin allowed by name.

        No Origin header: a browser leaves it out of same-origin GETs and of requests a
        page makes without CORS (``<script src>``), so such a handshake passes only when
        it cannot be one of those: no JSONP (``j=``: a ``<script>`` would read the session
        id from its callback; Engine.IO 4 clients never ask for it) and no Fetch Metadata
        saying another site or a no-cors request. The site's own origin, as the app sees it
        (behind a proxy: with ``ProxyFix``), is allowed, and so is each origin
        ``cors_allowed_origins`` names, or its callable accepts; ``"*"`` is not a name.
        """
        origin = request.headers.get("Origin")
        if origin is None:
            site = request.headers.get("Sec-Fetch-Site", "none")
            mode = request.headers.get("Sec-Fetch-Mode", "")
            if "j" not in request.args and site in ("same-origin", "none") and mode != "no-cors":
                return
            ok = False
        elif _same_origin(origin, f"{request.scheme}://{request.host}"):
            return
        else:
            ok = self._origin_allowed(origin)
        if not ok:
            raise CsrfFailed(
                "A connection that authenticates with the access cookie must come from "
                "this site, or an origin its cors_allowed_origins names."
            )

    def _origin_allowed(self, origin: str) -> bool:
        allowed = self._server.eio.cors_allowed_origins
        if not callable(allowed):
            names = [allowed] if isinstance(allowed, str) else list(allowed or ())
            return any(_same_origin(origin, name) for name in names if name != "*")
        try:
            try:
                return bool(allowed(origin, request.environ))
            except TypeError:  # Engine.IO's older form: the origin alone
                return bool(allowed(origin))
        except Exception:  # the app's callable failed: not an origin it accepts
            logger.exception("cors_allowed_origins raised; the origin is refused")
            return False

    # -- every handler: Flask-SocketIO's dispatch, in the event's request context ---------

    def _handle(
        self, handler: Callable[..., Any], message: str, namespace: str, sid: str, *args: Any
    ) -> Any:
        guarded = self._guarded(handler, message, (namespace, sid))
        return self._handle_event(guarded, message, namespace, sid, *args)

    def _guarded(self, handler: Callable[..., Any], message: str, key: Key) -> Callable[..., Any]:
        @functools.wraps(handler)
        def guarded(*args: Any) -> Any:
            socket = self._sockets.get(key)
            if message == "connect":  # verified just now, in _connect
                if socket is None:
                    raise _refusal(TokenMissing())
                set_request_auth(socket.token)
                try:
                    return handler(*args)
                except DualTokenError as exc:  # user_unavailable, as current_user is read
                    raise _refusal(exc) from None
            if message == "disconnect":
                if socket is not None:
                    set_request_auth(socket.token)
                return handler(*args)
            if socket is not None and socket.connecting:
                return None  # on polling, an event may come before connect has decided
            refusal = self._event_refusal(socket)
            if refusal is not None:
                self._refuse(key, refusal)
                return None
            assert socket is not None
            set_request_auth(socket.token)
            try:
                return handler(*args)
            except DualTokenError as exc:
                if exc.code != 401:
                    raise
                self._end(key, exc)
                return None

        return guarded

    def _event_refusal(self, socket: _Socket | None) -> DualTokenError | None:
        if socket is None:  # connected before accept_access_tokens, or being dropped
            return TokenMissing("This connection did not authenticate: connect again.")
        if socket.ended is not None:
            return socket.ended
        if time.time() >= socket.token.exp:
            return TokenExpired()
        try:
            _check_session(get_state(socket.app), socket)
        except DualTokenError as exc:
            return exc
        return None

    def _refuse(self, key: Key, error: DualTokenError) -> None:
        """An event refused: the socket ends, unless only the store could not answer."""
        if error.code == 503:  # the session may be fine: this event only
            self._emit(key, error)
            return
        if key in self._sockets:
            self._end(key, error)
            return
        self._emit(key, error)
        self._server.disconnect(key[1], namespace=key[0], ignore_queue=True)

    # -- the sockets held ---------------------------------------------------------------

    def _hold(self, socket: _Socket, guard: SessionGuard) -> None:
        token = socket.token
        with self._lock:
            self._sockets[socket.key] = socket
            by_user = self._sessions.setdefault(socket.app, {})
            by_user.setdefault(token.sub, {}).setdefault(token.sid, set()).add(socket.key)
            heapq.heappush(self._expiries, (token.exp, socket.key))
            if len(self._expiries) > 2 * len(self._sockets) + 64:  # mostly sockets gone
                self._expiries = [(s.token.exp, k) for k, s in self._sockets.items()]
                heapq.heapify(self._expiries)
            if guard.pushes and socket.app not in self._watching:
                # Under our lock, so that no socket is checked before the watch is on:
                # the guard calls back without its own lock held.
                self._watching.add(socket.app)
                guard.watch(_watcher(self, socket.app))
            start = not self._ticking
            self._ticking = True
        if start:
            self._socketio.start_background_task(self._tick)

    def _unindex(self, socket: _Socket) -> None:
        """Forget which session the socket is of (our lock held)."""
        by_user = self._sessions.get(socket.app, {})
        sessions = by_user.get(socket.token.sub)
        if sessions is None:
            return
        keys = sessions.get(socket.token.sid)
        if keys is not None:
            keys.discard(socket.key)
            if not keys:
                del sessions[socket.token.sid]
        if not sessions:
            del by_user[socket.token.sub]

    def _drop(self, key: Key) -> None:
        with self._lock:
            socket = self._sockets.pop(key, None)
            self._ending.discard(key)
            if socket is not None and socket.ended is None:
                self._unindex(socket)

    def _end(self, key: Key, error: DualTokenError) -> None:
        """End a socket: tell the client why, and disconnect it (or, while it is still
        connecting, have its connection refused)."""
        with self._lock:
            socket = self._sockets.get(key)
            if socket is None:
                return
            if socket.ended is None:
                socket.ended = error
                self._unindex(socket)
            if socket.connecting:
                return
            self._ending.add(key)
        self._disconnect(socket)

    def _disconnect(self, socket: _Socket) -> None:
        namespace, sid = socket.key
        try:
            if self._server.manager.is_connected(sid, namespace):
                if not socket.told and socket.ended is not None:
                    socket.told = True
                    self._emit(socket.key, socket.ended)
                # Its disconnect handler runs in this call, then _trigger drops it.
                self._server.disconnect(sid, namespace=namespace, ignore_queue=True)
            elif self._server.manager.eio_sid_from_sid(sid, namespace) is None:
                self._drop(socket.key)  # gone already
            # else: between its connect handler and python-socketio's bookkeeping, or
            # disconnecting: the timer tries again.
        except Exception:
            logger.exception("flask-dualtoken could not disconnect a Socket.IO client")

    def _emit(self, key: Key, error: DualTokenError) -> None:
        try:
            self._server.emit(
                ERROR_EVENT, error_body(error), to=key[1], namespace=key[0], ignore_queue=True
            )
        except Exception:
            logger.exception("flask-dualtoken could not tell a Socket.IO client why it ends")

    def _tick(self) -> None:
        """The timer: disconnects each socket when its token expires, and retries those
        ended while they connected. Runs while this process holds sockets."""
        while True:
            with self._lock:
                if not self._sockets:
                    self._ticking = False
                    return
                now = time.time()
                due: list[Key] = []
                while self._expiries and self._expiries[0][0] <= now:
                    exp, key = heapq.heappop(self._expiries)
                    socket = self._sockets.get(key)
                    if socket is not None and socket.token.exp == exp:
                        due.append(key)
                ending = [self._sockets[k] for k in self._ending if k in self._sockets]
                nap = TICK
                if self._expiries:
                    nap = min(TICK, max(0.0, self._expiries[0][0] - now))
            for key in due:
                self._end(key, TokenExpired())
            for socket in ending:
                self._disconnect(socket)
            self._socketio.sleep(max(nap, 0.01))

    # -- what the revocation guard tells (push mode) ------------------------------------

    def _heard(self, app: Flask, user_id: str | None, sids: Sequence[str] | None) -> None:
        """On the guard's thread: pick the sockets, and leave the work to a background task."""
        if user_id is None:  # a new listening period: anything may have ended meanwhile
            with self._lock:
                if self._rechecking:
                    self._recheck_again = True
                    return
                self._rechecking = True
            self._socketio.start_background_task(self._recheck_all)
            return
        with self._lock:
            sessions = self._sessions.get(app, {}).get(user_id)
            if not sessions:
                return
            named = sessions.keys() if sids is None else [s for s in sids if s in sessions]
            sockets = [self._sockets[k] for sid in named for k in sessions[sid]]
        if not sockets:
            return
        if sids is None:  # logout-all: those of a session started since stay
            self._socketio.start_background_task(self._recheck, sockets)
        else:  # a named session never comes back
            self._socketio.start_background_task(self._end_all, sockets, SessionRevoked())

    def _end_all(self, sockets: list[_Socket], error: DualTokenError) -> None:
        for socket in sockets:
            self._end(socket.key, error)

    def _recheck(self, sockets: list[_Socket]) -> None:
        for socket in sockets:
            if socket.ended is not None:
                continue
            token = socket.token
            try:
                get_state(socket.app).revocation.check(token.sub, token.sid, token.exp)
            except SessionRevoked as exc:
                self._end(socket.key, exc)
            except DualTokenError:
                pass  # the store did not answer: its next event, or exp, decides
            except Exception:
                logger.exception("flask-dualtoken could not check a Socket.IO session")

    def _recheck_all(self) -> None:
        while True:
            with self._lock:
                self._recheck_again = False
                sockets = [s for s in self._sockets.values() if s.ended is None]
            self._recheck(sockets)
            with self._lock:
                if not self._recheck_again:
                    self._rechecking = False
                    return


def _watcher(
    sockets: TokenSockets, app: Flask
) -> Callable[[str | None, Sequence[str] | None], None]:
    """The guard's callback, holding the sockets and the app weakly: the guard keeps its
    callbacks for good, and must not keep a dropped server alive."""
    sockets_ref, app_ref = weakref.ref(sockets), weakref.ref(app)

    def heard(user_id: str | None, sids: Sequence[str] | None) -> None:
        held, held_app = sockets_ref(), app_ref()
        if held is not None and held_app is not None:
            held._heard(held_app, user_id, sids)

    return heard


def _check_session(state: AppState, socket: _Socket) -> None:
    """What ``@jwt_required`` asks of a verified token's session: the revocation guard,
    and a verify-only app's introspection."""
    token = socket.token
    state.revocation.check(token.sub, token.sid, token.exp)
    if state.remote_introspection is not None:
        state.remote_introspection.check(socket.raw, token.sub, token.sid, token.exp)


def _same_origin(origin: str, other: str) -> bool:
    return origin.strip().lower() == other.strip().lower()


def error_body(error: DualTokenError) -> dict[str, Any]:
    """An error as a socket is told it: the HTTP answer's JSON, and its status."""
    return {"error": error.error, "message": error.description, "status": error.code}


def _refusal(error: DualTokenError) -> Exception:
    """python-socketio's refusal of a connection: the error code, then the body."""
    from socketio.exceptions import ConnectionRefusedError as Refused

    refused: Exception = Refused(error.error, error_body(error))
    return refused
