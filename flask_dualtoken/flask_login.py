"""The Flask-Login adapter: views behind ``@login_required`` accept this app's access tokens.

Flask-Login asks its loaders in a fixed order (``LoginManager._load_user``): the session
cookie's user first, then the remember-me cookie's, and only then the request loader this
module installs. A request that carries a Flask-Login session is that session's user, and
its access token is not read. Without one, the access token is verified exactly as by
``@jwt_required(optional=True)`` (``verify_request``): no token is Flask-Login's anonymous
user, and so is a bad one, with its error kept for the request. Where Flask-Login then
refuses the anonymous user (``@login_required``: its ``user_unauthorized`` signal), the
kept error is raised instead of its login redirect: the JSON 401 of ``@jwt_required``.

A loader that raised would fail wherever ``current_user`` is first read: an
``after_request`` hook, a public page's template, ``POST /auth/logout`` itself (whose
access token has just been revoked), a 500 there. Hence the error waits for the signal.

Flask-Login is imported as a token is refused (Flask-Login, which asked, is loaded by then)
and for type checking; the import is absolute, so the name is the real package, never this
module. Importing this module, let alone flask_dualtoken, never imports Flask-Login.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Request, g

from .context import current_user, get_request_token
from .decorators import verify_request
from .errors import DualTokenError

if TYPE_CHECKING:
    from flask_login import LoginManager

#: What ``flask.g`` keeps once this request's access token was refused: the error.
REFUSAL_KEY = "_dualtoken_login_refusal"


def accept_access_tokens(login_manager: LoginManager) -> None:
    """Make ``login_manager`` accept this app's access tokens: install
    :func:`user_from_token` as its ``request_loader``.

    Views behind ``@login_required`` then take ``Authorization: Bearer <access token>``
    (or, in cookie mode, the access cookie, with the CSRF header on state-changing
    requests) as well as Flask-Login's own session cookie, which wins when both come.
    ``flask_login.current_user`` is then the very object ``flask_dualtoken.current_user``
    is: the user ``@dualtoken.user_loader`` returns, loaded once per request. It must be a
    Flask-Login user (``UserMixin``). A request without a token goes on to Flask-Login's
    unauthorized handling (its login view, or 401). A token that is bad, expired or of an
    ended session leaves ``current_user`` anonymous, and where Flask-Login refuses the
    anonymous user (``@login_required``) the answer is the JSON 401 of ``@jwt_required``.

    One ``LoginManager`` has one request loader: a manager that already has another raises
    ``RuntimeError`` (call :func:`user_from_token` from that loader instead). Needs
    flask-dualtoken initialised on every app the manager serves.
    """
    registered = login_manager.request_callback
    if registered is not None and registered is not user_from_token:
        raise RuntimeError(
            f"this LoginManager already has a request loader ({registered!r:.80}); "
            "call flask_dualtoken.flask_login.user_from_token(request) from it instead"
        )
    login_manager.request_loader(user_from_token)


def user_from_token(request: Request) -> Any:
    """Flask-Login request loader: the user of the request's access token; None when the
    request carries none, or one that does not pass (its error then kept for
    :func:`raise_refusal`).

    The token is verified by ``verify_request(optional=True)``, once per request: one a
    ``@jwt_required`` or ``verify_request`` already verified is taken as it is. The user
    is ``flask_dualtoken.current_user``; one the user loader no longer returns is refused
    as ``user_unavailable``. For an app with a request loader of its own (API keys, say),
    call this from it.
    """
    if g.get(REFUSAL_KEY) is not None:  # refused earlier in this request
        return None
    try:
        if get_request_token() is None:
            verify_request(optional=True)
        if get_request_token() is None:  # no token came: Flask-Login's anonymous user
            return None
        return current_user._get_current_object()
    except DualTokenError as refusal:
        setattr(g, REFUSAL_KEY, refusal)
        # Here rather than in accept_access_tokens, so that an app's own request loader
        # calling this gets the same answers. blinker keeps one connection per receiver.
        from flask_login import user_unauthorized

        user_unauthorized.connect(raise_refusal)
        return None


def raise_refusal(sender: Any, **extra: Any) -> None:
    """Receiver of Flask-Login's ``user_unauthorized``, sent as it refuses the anonymous
    user: raise the error of a token refused in this request, so that the answer is ours,
    before the app's ``unauthorized_handler`` or login view. Nothing otherwise (another
    app, a request without a refused token)."""
    refusal: DualTokenError | None = g.get(REFUSAL_KEY)
    if refusal is not None:
        raise refusal
