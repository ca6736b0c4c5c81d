"""Property-based fuzzing of the token parser and of every route's body.

Properties: nothing an attacker sends produces a 500 or an unexpected exception, and no
forged or mutated token is ever accepted.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import fakeredis
import jwt
import pytest
from flask import Flask
from helpers import Users, bearer, build_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_dualtoken.errors import DualTokenError, TokenInvalid
from flask_dualtoken.state import get_state

FUZZ = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
field_values = st.none() | st.text(max_size=40) | st.integers() | st.lists(st.text(), max_size=2)


@pytest.fixture(scope="module")
def fuzz_app() -> Flask:
    users = Users()
    users.add("alice")
    return build_app(
        fakeredis.FakeRedis(),
        users,
        DUALTOKEN_LOGIN_MAX_ATTEMPTS=0,
        DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=0,
    )


@pytest.fixture(scope="module")
def valid_pair(fuzz_app: Flask) -> dict[str, Any]:
    response = fuzz_app.test_client().post(
        "/auth/login", json={"username": "alice", "password": "correct horse"}
    )
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    return body


def assert_clean_error(response: Any, allowed: set[int]) -> None:
    assert response.status_code in allowed, (response.status_code, response.data[:300])
    body = response.json
    assert set(body) == {"error", "message"}
    assert "Traceback" not in body["message"]


# -- the parser -----------------------------------------------------------------------------


@FUZZ
@given(
    token=st.text(max_size=300)
    | st.from_regex(r"[A-Za-z0-9_\-]{0,80}(\.[A-Za-z0-9_\-=]{0,80}){0,4}")
)
def test_the_parser_only_ever_raises_token_errors(fuzz_app: Flask, token: str) -> None:
    codec = get_state(fuzz_app).codec
    for decode in (codec.decode_access, codec.decode_refresh):
        with pytest.raises(TokenInvalid):
            decode(token)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@FUZZ
@given(
    header=st.dictionaries(
        st.sampled_from(["alg", "typ", "kid", "jku", "crit", "x5c", "zip"]),
        json_values,
        max_size=4,
    ),
    claims=st.dictionaries(st.text(max_size=6), json_values, max_size=8),
    key=st.binary(min_size=0, max_size=48),
)
def test_tokens_signed_with_any_other_key_are_never_accepted(
    fuzz_app: Flask, header: dict[str, Any], claims: dict[str, Any], key: bytes
) -> None:
    import hashlib
    import hmac

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(signature)}"
    codec = get_state(fuzz_app).codec
    for decode in (codec.decode_access, codec.decode_refresh):
        with pytest.raises(TokenInvalid):
            decode(token)


@FUZZ
@given(data=st.data())
def test_a_mutated_token_is_refused_unless_it_decodes_to_the_same_bytes(
    fuzz_app: Flask, valid_pair: dict[str, Any], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(["access_token", "refresh_token"]))
    original = valid_pair[name]
    position = data.draw(st.integers(0, len(original) - 1))
    replacement = data.draw(
        st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ")
    )
    mutated = original[:position] + replacement + original[position + 1 :]
    codec = get_state(fuzz_app).codec
    decode = codec.decode_access if name == "access_token" else codec.decode_refresh
    try:
        decode(mutated)
    except DualTokenError:
        return

    # Accepted: then it must be the same token in another base64url spelling (the unused
    # low bits of a last character), which is why the store never keys on token text.
    def segments(token: str) -> list[bytes]:
        return [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in token.split(".")]

    assert segments(mutated) == segments(original)


# -- the routes -----------------------------------------------------------------------------


@FUZZ
@given(body=json_values)
def test_any_json_body_gets_a_json_error_never_a_500(fuzz_app: Flask, body: Any) -> None:
    client = fuzz_app.test_client()
    for path in ("/auth/login", "/auth/reissue", "/auth/logout"):
        response = client.post(path, json=body, headers=bearer("x.y.z"))
        assert_clean_error(response, {400, 401})


@FUZZ
@given(username=field_values, password=field_values)
def test_any_login_fields_get_a_clean_answer(
    fuzz_app: Flask, username: Any, password: Any
) -> None:
    response = fuzz_app.test_client().post(
        "/auth/login", json={"username": username, "password": password}
    )
    if username == "alice" and password == "correct horse":
        assert response.status_code == 200
    else:
        assert_clean_error(response, {400, 401})


@FUZZ
@given(
    raw=st.binary(max_size=200),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
    ),
)
def test_any_raw_body_gets_a_clean_answer(fuzz_app: Flask, raw: bytes, content_type: str) -> None:
    client = fuzz_app.test_client()
    for path in ("/auth/login", "/auth/reissue", "/auth/logout"):
        response = client.post(path, data=raw, content_type=content_type)
        assert_clean_error(response, {400, 401})


@FUZZ
@given(
    access=st.text(max_size=60),
    refresh=field_values,
    header=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=60),
)
def test_any_token_fields_get_a_clean_answer(
    fuzz_app: Flask, valid_pair: dict[str, Any], access: str, refresh: Any, header: str
) -> None:
    client = fuzz_app.test_client()
    for path in ("/auth/reissue", "/auth/logout"):
        response = client.post(
            path,
            headers={"Authorization": header},
            json={"access_token": access, "refresh_token": refresh},
        )
        assert_clean_error(response, {400, 401})
    response = client.get("/me", headers={"Authorization": header})
    assert_clean_error(response, {401})


def test_the_valid_pair_fixture_is_valid(fuzz_app: Flask, valid_pair: dict[str, Any]) -> None:
    # The mutation test above is only meaningful if the unmutated tokens pass.
    codec = get_state(fuzz_app).codec
    assert codec.decode_access(valid_pair["access_token"]).sub == "1"
    assert codec.decode_refresh(valid_pair["refresh_token"]).sub == "1"
    assert jwt.get_unverified_header(valid_pair["refresh_token"])["typ"] == "rt+jwt"


# -- cookie mode ----------------------------------------------------------------------------

cookie_text = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=';,"\\'),
    max_size=120,
)


@pytest.fixture(scope="module")
def cookie_fuzz_app() -> Flask:
    users = Users()
    users.add("alice")
    return build_app(fakeredis.FakeRedis(), users, DUALTOKEN_TOKEN_LOCATION="both")


@FUZZ
@given(
    access_cookie=cookie_text,
    refresh_cookie=cookie_text,
    csrf=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=60),
    splice=st.booleans(),
)
def test_any_cookies_and_csrf_header_get_a_clean_answer(
    cookie_fuzz_app: Flask, access_cookie: str, refresh_cookie: str, csrf: str, splice: bool
) -> None:
    client = cookie_fuzz_app.test_client()
    if splice:  # a real token on one side of the separator, noise on the other
        login = client.post(
            "/auth/login",
            json={"username": "alice", "password": "correct horse"},
            headers={"X-Token-Transport": "cookies"},
        )
        assert login.status_code == 200
        real = client.get_cookie("__Secure-dualtoken_rt", path="/auth/reissue")
        assert real is not None
        refresh_cookie = real.value.split("~")[0] + "~" + refresh_cookie
    cookie = f"__Host-dualtoken_at={access_cookie}; __Secure-dualtoken_rt={refresh_cookie}"
    headers = {"Cookie": cookie, "X-CSRF-Token": csrf}
    for path in ("/auth/reissue", "/auth/logout", "/auth/logout-all"):
        assert_clean_error(cookie_fuzz_app.test_client().post(path, headers=headers), {401, 403})
    response = cookie_fuzz_app.test_client().get("/me", headers=headers)
    assert_clean_error(response, {401})
