"""blinker signals, so an app can audit sessions without subclassing anything.

Each is sent with the Flask app as sender and keyword arguments ``user_id`` and
``session_id`` (plus those named below). None carries a token.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A login succeeded and a session was created.
user_logged_in = _signals.signal("user-logged-in")
#: A login was refused; sent with ``username`` only.
login_failed = _signals.signal("login-failed")
#: A pair was reissued; ``replayed`` is True for a grace-window repeat.
token_reissued = _signals.signal("token-reissued")
#: An old refresh token came back: the session was revoked in the same step.
refresh_token_reused = _signals.signal("refresh-token-reused")
#: A session was ended by logout.
session_logged_out = _signals.signal("session-logged-out")
