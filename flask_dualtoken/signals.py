"""blinker signals, so an app can audit sessions without subclassing anything.

Each is sent with the Flask app as sender and keyword arguments ``user_id``,
``session_id`` and ``ip`` (the client address), plus those named below. None carries a
token or a password. The Prometheus metrics (``metrics``) are counted from them.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A login succeeded and a session was created.
user_logged_in = _signals.signal("user-logged-in")
#: A login was refused; sent with ``username`` and ``ip`` only.
login_failed = _signals.signal("login-failed")
#: A login was refused unchecked, over the failure limit; ``username``, ``ip``,
#: ``retry_after``.
login_throttled = _signals.signal("login-throttled")
#: A pair was reissued; ``replayed`` is True for a grace-window repeat.
token_reissued = _signals.signal("token-reissued")
#: An old refresh token came back: the session was revoked in the same step.
refresh_token_reused = _signals.signal("refresh-token-reused")
#: A session was ended by logout.
session_logged_out = _signals.signal("session-logged-out")
#: One session was ended by id (API, DELETE /sessions/<sid>, user gone); ``reason``.
session_revoked = _signals.signal("session-revoked")
#: Every session of a user was ended (logout-all, password change); no ``session_id``.
all_sessions_revoked = _signals.signal("all-sessions-revoked")
#: A user proved who they are again in a live session (``POST /reauth``); its access
#: tokens carry the new ``auth_time`` from then on.
user_reauthenticated = _signals.signal("user-reauthenticated")
#: ``DualToken.credentials_changed`` ended the user's other sessions; ``session_id`` is the
#: one kept (None when none was), ``ended`` how many ended.
credentials_changed = _signals.signal("credentials-changed")
