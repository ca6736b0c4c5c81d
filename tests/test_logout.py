"""POST /auth/logout: a bound pair ends its session; expiry does not matter; idempotent."""

from __future__ import annotations

import jwt
import pytest
from helpers import Api, Clock, bearer, session_hash, sid_of

from flask_dualtoken.config import ACCESS_ALGORITHMS
from flask_dualtoken.state import get_state
from flask_dualtoken.store import SessionStore


def test_logout_is_204_and_ends_the_session(api: Api, store: SessionStore) -> None:
    pair = api.login()
    response = api.logout(pair)
    assert response.status_code == 204
    assert response.data == b""
    assert api.reissue(pair).json["error"] == "session_revoked"
    c = jwt.decode(pair["refresh_token"], options={"verify_signature": False})
    assert session_hash(store, c["sub"], c["sid"])["revoked"] == "logout"
    assert c["sid"].encode() not in store.client.zrange(store.index_key("1"), 0, -1)


def test_logout_twice_is_204_both_times(api: Api, store: SessionStore) -> None:
    pair = api.login()
    other = api.login()
    assert api.logout(pair).status_code == 204
    assert api.logout(pair).status_code == 204
    assert store.client.zrange(store.index_key("1"), 0, -1) == [sid_of(other).encode()]


def test_logout_works_with_expired_tokens(make_app, clock: Clock) -> None:
    api = Api(make_app(DUALTOKEN_ACCESS_EXPIRES=1, DUALTOKEN_REFRESH_EXPIRES=2))
    pair = api.login()
    clock.advance(2.1)
    assert api.logout(pair).status_code == 204
    store = get_state(api.client.application).store
    # Ended, not merely lapsed: out of the index, whose entry lasts the session's whole
    # life. (The hash's marker may already be gone: it never outlives the refresh token.)
    assert store.client.zscore(store.index_key("1"), sid_of(pair)) is None


def test_logout_leaves_other_sessions_alive(api: Api) -> None:
    first, second = api.login(), api.login()
    api.logout(first)
    assert api.reissue(second).status_code == 200


def test_logout_checks_signatures_and_binding(api: Api) -> None:
    first, second = api.login(), api.login()
    mixed = {"access_token": first["access_token"], "refresh_token": second["refresh_token"]}
    assert api.logout(mixed).json["error"] == "token_mismatch"
    assert api.logout({**first, "refresh_token": "x.y.z"}).json["error"] == "refresh_token_invalid"
    assert api.logout({**first, "access_token": "x.y.z"}).json["error"] == "token_invalid"
    assert api.reissue(first).status_code == 200
    assert api.reissue(second).status_code == 200


@pytest.mark.parametrize("access_algorithm", ACCESS_ALGORITHMS)
def test_logout_refuses_the_access_token_at_once_by_default(api: Api) -> None:
    pair = api.login()
    assert api.get("/me", pair["access_token"]).status_code == 200
    api.logout(pair)
    response = api.get("/me", pair["access_token"])
    assert response.status_code == 401
    assert response.json["error"] == "session_revoked"


def test_every_204_has_no_body_and_no_content_type(api: Api) -> None:
    first, second, third = api.login(), api.login(), api.login()
    sid = jwt.decode(second["access_token"], options={"verify_signature": False})["sid"]
    answers = [
        api.logout(first),
        api.client.delete(f"/auth/sessions/{sid}", headers=bearer(third["access_token"])),
        api.client.post("/auth/logout-all", headers=bearer(third["access_token"])),
    ]
    for response in answers:
        assert response.status_code == 204
        assert response.data == b""
        assert "Content-Type" not in response.headers
