"""Cookie mode: where a browser keeps the tokens, and the CSRF proof that must go with them.

Three cookies, each sent only where it is needed:

- the access cookie (``__Host-dualtoken_at``): the AT, ``HttpOnly``, path ``/``, living as
  long as the AT; left out when ``DUALTOKEN_ACCESS_COOKIE`` is False (the AT is then in
  the JSON body, for a SPA that keeps it in memory);
- the refresh cookie (``__Secure-dualtoken_rt``): ``AT~RT``, ``HttpOnly``, set once for
  the reissue path and once for the logout path and sent nowhere else, living as long as
  the RT. Reissue needs the expired AT as well as the RT (docs/design.md), and the access
  cookie is gone by then, so the refresh cookie carries its own copy;
- the CSRF cookie (``__Host-dualtoken_csrf``): readable by the page's JavaScript, which
  echoes it in the CSRF header. Its value is HMAC(key, session id) under a key derived from
  the secret like the signing keys, so it needs no storage, lasts the whole session and
  cannot be guessed or planted without the secret.

A cross-site page can make the browser send cookies but cannot read them or set a custom
header, so every state-changing request that authenticates with a cookie must carry that
header with the value of its own session.

These are the mechanics, on header strings and responses; which request reads or writes
cookies, and when a CSRF proof is required, is ``transport``'s to decide.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

import jwt
from werkzeug.http import dump_cookie
from werkzeug.wrappers import Response

from .config import Settings
from .errors import CsrfFailed, RefreshTokenInvalid, TokenInvalid
from .keys import derive_key
from .limits import MAX_TOKEN_BYTES
from .tokens import TokenPair

CSRF_LABEL = b"csrf"
#: Sent by a client of a DUALTOKEN_TOKEN_LOCATION="both" app to get a login in cookies
#: (read by ``transport.login_in_cookies``, named by ``openapi`` and ``browser_config``).
TRANSPORT_HEADER = "X-Token-Transport"
_SEPARATOR = "~"  # a cookie-safe character that never occurs in a JWT
#: Access or refresh cookies looked at in one request: bounds the work planted cookies
#: can cause.
MAX_REFRESH_COOKIES = 8


class CookieJar:
    """Names, attributes and CSRF keys of one app's cookies, fixed at ``init_app``."""

    def __init__(self, settings: Settings) -> None:
        secure = settings.cookie_secure
        # __Host- needs Secure, Path=/ and no Domain; __Secure- needs Secure only.
        host_prefix = "__Host-" if secure and settings.cookie_domain is None else ""
        secure_prefix = "__Secure-" if secure else ""
        self.access_name = (host_prefix or secure_prefix) + "dualtoken_at"
        self.refresh_name = secure_prefix + "dualtoken_rt"
        self.csrf_name = (host_prefix or secure_prefix) + "dualtoken_csrf"
        prefix = settings.url_prefix
        self.refresh_paths = (f"{prefix}/reissue", f"{prefix}/logout")
        self.csrf_header = settings.csrf_header
        self.access_in_cookie = settings.access_cookie
        self._secure = secure
        self._domain = settings.cookie_domain
        self._samesite = settings.cookie_samesite
        self._csrf_keys = tuple(
            derive_key(secret, CSRF_LABEL)
            for secret in (settings.secret, *settings.previous_secrets)
        )

    # -- CSRF -------------------------------------------------------------------------------

    def csrf_token(self, session_id: str) -> str:
        return _csrf_value(self._csrf_keys[0], session_id)

    def check_csrf(self, session_id: str, proof: str | None) -> None:
        """Raise 403 ``csrf_failed`` unless ``proof`` is this session's CSRF token.

        Every key is compared (the current secret's and the previous ones', since the token
        outlives a secret rotation until the next reissue), in constant time.
        """
        if not self._proves(session_id, proof):
            raise self._csrf_failed()

    def check_csrf_cookie(self, cookie_header: str, proof: str | None) -> None:
        """Raise 403 ``csrf_failed`` unless ``proof`` equals one of the request's CSRF
        cookies (the double-submit check, which needs no token: ``POST {prefix}/revoke``
        makes it before looking at the one it is sent). Compared in constant time."""
        given = (proof or "").encode("latin-1", "replace")
        matched = False
        for value in cookie_values(cookie_header, self.csrf_name, MAX_REFRESH_COOKIES):
            matched |= hmac.compare_digest(value.encode("latin-1", "replace"), given)
        if not (proof and matched):
            raise self._csrf_failed()

    def _proves(self, session_id: str, proof: str | None) -> bool:
        given = (proof or "").encode("latin-1", "replace")
        matched = False
        for key in self._csrf_keys:
            matched |= hmac.compare_digest(_csrf_value(key, session_id).encode(), given)
        return bool(proof) and matched

    def _csrf_failed(self) -> CsrfFailed:
        return CsrfFailed(
            f"This request authenticates with cookies, so it must carry the "
            f"'{self.csrf_header}' header with the value of the {self.csrf_name} cookie."
        )

    # -- reading ----------------------------------------------------------------------------

    def access_token(self, cookie_header: str, proof: str | None) -> str | None:
        """The access cookie's token, still to be verified.

        With several (planted by a sibling subdomain when ``DUALTOKEN_COOKIE_DOMAIN`` drops
        the ``__Host-`` prefix), the one whose session the CSRF header proves; without that
        proof none of them, rather than serving the request as someone else's account.
        """
        if not self.access_in_cookie:
            return None
        found = cookie_values(cookie_header, self.access_name, MAX_REFRESH_COOKIES)
        if len(found) <= 1:
            return found[0] if found else None
        for value in found:
            if self._proves(_unverified_sid(value), proof):
                return value
        raise TokenInvalid(
            "Several access cookies came: send the CSRF header to say which is this page's."
        )

    def has_cookie(self, cookie_header: str, name: str) -> bool:
        return bool(cookie_values(cookie_header, name, 1))

    def refresh_cookies(self, cookie_header: str) -> list[str]:
        """Every refresh cookie the browser sent, at most MAX_REFRESH_COOKIES of them.

        The refresh cookie cannot carry the ``__Host-`` prefix (its path is not ``/``), so
        a sibling subdomain can plant a second one beside ours (cookie tossing).
        """
        return cookie_values(cookie_header, self.refresh_name, MAX_REFRESH_COOKIES)

    def refresh_pair(self, values: list[str], proof: str | None) -> tuple[str, str]:
        """The (access, refresh) tokens of the refresh cookie to use; still to be verified.

        With one cookie, that one. With several, the one whose session the CSRF proof
        belongs to: a planted cookie's session is not the page's, and the proof is an HMAC
        of the session id that no one can make without the secret. None matching is 403.
        """
        if len(values) > 1:
            for value in values:
                access, refresh = _split(value)
                if access and self._proves(_unverified_sid(access), proof):
                    return access, refresh
            raise self._csrf_failed()
        access, refresh = _split(values[0])
        if not access or not refresh:
            raise RefreshTokenInvalid()
        return access, refresh

    # -- writing ----------------------------------------------------------------------------

    def body(self, pair: TokenPair) -> dict[str, object]:
        """The JSON body of a login or reissue answered in cookies: never the refresh token."""
        body: dict[str, object] = {
            "csrf_token": self.csrf_token(pair.session_id),
            "expires_in": pair.expires_in,
            "refresh_expires_in": pair.refresh_expires_in,
        }
        if not self.access_in_cookie:
            body.update(access_token=pair.access_token, token_type="Bearer")  # noqa: S106
        return body

    def set_headers(self, pair: TokenPair) -> list[tuple[str, str]]:
        """``Set-Cookie`` headers for a new pair; lifetimes are the tokens' own.

        werkzeug warns when a cookie outgrows what browsers keep (4 KiB): keep the claims
        of ``claims_loader`` small in cookie mode.
        """
        refresh = f"{pair.access_token}{_SEPARATOR}{pair.refresh_token}"
        headers = [
            self._cookie(self.refresh_name, refresh, path, pair.refresh_expires_in)
            for path in self.refresh_paths
        ]
        headers.append(
            self._cookie(
                self.csrf_name,
                self.csrf_token(pair.session_id),
                "/",
                pair.refresh_expires_in,
                httponly=False,
            )
        )
        if self.access_in_cookie:
            headers.append(self._cookie(self.access_name, pair.access_token, "/", pair.expires_in))
        return headers

    def write(self, response: Response, pair: TokenPair) -> None:
        """Add the pair's cookies to a response; tokens must never be cached."""
        for name, value in self.set_headers(pair):
            response.headers.add(name, value)
        response.headers["Cache-Control"] = "no-store"

    def clear_headers(self) -> list[tuple[str, str]]:
        """``Set-Cookie`` headers that delete every cookie, with the attributes that set it."""
        paths: Iterable[tuple[str, str, bool]] = [
            *((self.refresh_name, path, True) for path in self.refresh_paths),
            (self.csrf_name, "/", False),
            (self.access_name, "/", True),
        ]
        return [self._cookie(name, "", path, 0, httponly=http) for name, path, http in paths]

    def _cookie(
        self, name: str, value: str, path: str, max_age: int, *, httponly: bool = True
    ) -> tuple[str, str]:
        header = dump_cookie(
            name,
            value,
            max_age=max_age,
            expires=0 if max_age == 0 else None,
            path=path,
            domain=self._domain,
            secure=self._secure,
            httponly=httponly,
            samesite=self._samesite,
        )
        return "Set-Cookie", header


def cookie_values(header: str, name: str, limit: int) -> list[str]:
    """The values of the cookies called ``name`` in a Cookie header, split on ';' as
    browsers write it, at most ``limit``.

    Not werkzeug's parser: it reads a double-quoted value across ';', so a planted cookie
    whose value opens a quote would hide ours behind it (a cookie sandwich). Our values
    never hold a quote, ';' or space, so a plain split finds every one of them.
    """
    found = []
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and value and key == name:
            found.append(value)
            if len(found) == limit:
                break
    return found


def _split(value: str) -> tuple[str, str]:
    access, _, refresh = value.partition(_SEPARATOR)
    return access, refresh


def _unverified_sid(access_token: str) -> str:
    """The ``sid`` an access token claims, unverified: only to pick among cookies; the one
    picked is verified in full afterwards."""
    if len(access_token) > MAX_TOKEN_BYTES:
        return ""
    try:
        sid = jwt.decode(access_token, options={"verify_signature": False}).get("sid")
    except (jwt.InvalidTokenError, ValueError, TypeError):
        return ""
    return sid if isinstance(sid, str) else ""


def _csrf_value(key: bytes, session_id: str) -> str:
    digest = hmac.new(key, session_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
