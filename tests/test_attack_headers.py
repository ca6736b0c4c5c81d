"""Attack class: header tricks (typ, kid injection, jku/x5u/jwk/x5c key hints, crit)."""

from __future__ import annotations

from typing import Any

import pytest
from forge import ACCESS_HEADER, KEYS, assert_access_refused, forge, login_claims
from helpers import Api


@pytest.mark.parametrize(
    "change",
    [
        {"kid": None},
        {"typ": None},
        {"typ": "JWT"},
        {"typ": "rt+jwt"},
        {"typ": "AT+JWT"},
        {"typ": ["at+jwt"]},
        {"kid": "1"},
        {"kid": 7},
        {"kid": ""},
        {"kid": "../../../../dev/null"},
        {"kid": "/etc/passwd"},
        {"kid": "' OR '1'='1"},
        {"kid": "x' UNION SELECT 'secret'--"},
        {"kid": KEYS.kid + "x"},
        {"jku": "http://127.0.0.1:1/jwks.json"},
        {"x5u": "http://127.0.0.1:1/cert.pem"},
        {"jwk": {"kty": "oct", "k": "AAAA"}},
        {"x5c": ["MIIB"]},
        {"x5t": "abc"},
        {"crit": ["exp"]},
        {"crit": ["x-unknown"], "x-unknown": 1},
        {"cty": "JWT"},
        {"zip": "DEF"},
    ],
)
def test_any_header_but_exactly_ours_is_refused(api: Api, change: dict[str, Any]) -> None:
    # Correctly signed with the access key: only the header is wrong.
    access, _ = login_claims(api)
    header = {k: v for k, v in {**ACCESS_HEADER, **change}.items() if v is not None}
    assert_access_refused(api, forge(header, access, KEYS.access))


def test_a_key_hint_is_never_fetched(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    fetched: list[Any] = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: fetched.append(a))
    access, _ = login_claims(api)
    header = {**ACCESS_HEADER, "jku": "http://127.0.0.1:9/jwks.json"}
    assert_access_refused(api, forge(header, access, KEYS.access))
    assert fetched == []


def test_garbage_headers_are_refused(api: Api) -> None:
    access, _ = login_claims(api)
    body = forge(ACCESS_HEADER, access, KEYS.access).split(".", 1)[1]
    for head in ("", "e30", "bnVsbA", "WzFd", "!!!!", "eyJhbGciOiJIUzI1NiJ9" * 50):
        assert_access_refused(api, f"{head}.{body}")
