"""flask-dualtoken: JWT authentication for Flask with server-tracked, rotating refresh tokens."""

from __future__ import annotations

from .config import ConfigError, Settings
from .context import current_user, get_jwt, get_jwt_identity
from .decorators import jwt_required, verify_request
from .errors import DualTokenError
from .extension import DualToken
from .keys import derive_key
from .store import SessionInfo
from .tokens import TokenPair

__all__ = [
    "ConfigError",
    "DualToken",
    "DualTokenError",
    "SessionInfo",
    "Settings",
    "TokenPair",
    "current_user",
    "derive_key",
    "get_jwt",
    "get_jwt_identity",
    "jwt_required",
    "verify_request",
]
__version__ = "0.1.0"
