"""POST /auth/reissue: the reissue rule of flows.md and sessions.md 4-9."""

from __future__ import annotations

import logging

import jwt
import pytest
from flask import Flask
from helpers import Api, Clock, Users, bearer, session_hash

from flask_dualtoken import signals
from flask_dualtoken.config import ACCESS_ALGORITHMS
from flask_dualtoken.state import AppState
from flask_dualtoken.store import SessionStore


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def session_of(store: SessionStore, pair: dict) -> dict[str, str]:
    c = claims(pair["refresh_token"])
    return session_hash(store, c["sub"], c["sid"])


# -- the happy path -------------------------------------------------------------------------


@pytest.mark.parametrize("access_algorithm", ACCESS_ALGORITHMS)
def test_reissue_rotates_the_pair(api: Api, store: SessionStore) -> None:
    pair = api.login()
    response = api.reissue(pair)
    assert response.status_code == 200
    new = response.json
    assert new["access_token"] != pair["access_token"]
    assert new["refresh_token"] != pair["refresh_token"]
    assert response.headers["Cache-Control"] == "no-store"
    assert claims(new["access_token"])["sid"] == claims(pair["access_token"])["sid"]
    assert claims(new["access_token"])["rti"] == claims(new["refresh_token"])["jti"]
    session = session_of(store, new)
    assert session["gen"] == "1"
    assert session["cur"] == claims(new["refresh_token"])["jti"]
    assert session["prev"] == claims(pair["refresh_token"])["jti"]
    assert api.get("/me", new["access_token"]).status_code == 200


@pytest.mark.parametrize("access_algorithm", ACCESS_ALGORITHMS)
def test_an_expired_access_token_is_accepted_for_reissue(make_app, clock: Clock) -> None:
    api = Api(make_app(DUALTOKEN_ACCESS_EXPIRES=1))
    pair = api.login()
    clock.advance(2.1)
    assert api.get("/me", pair["access_token"]).json["error"] == "token_expired"
    response = api.reissue(pair)
    assert response.status_code == 200
    assert api.get("/me", response.json["access_token"]).status_code == 200


def test_both_tokens_may_come_in_the_body(api: Api) -> None:
    pair = api.login()
    response = api.client.post(
        "/auth/reissue",
        json={"access_token": pair["access_token"], "refresh_token": pair["refresh_token"]},
    )
    assert response.status_code == 200


def test_the_new_access_token_carries_the_current_role(api: Api, users: Users) -> None:
    pair = api.login(username="bob")
    users.by_id["2"].role = "admin"
    assert claims(api.reissue(pair).json["access_token"])["role"] == "admin"


def test_a_chain_of_rotations_keeps_working(api: Api, store: SessionStore) -> None:
    pair = api.login()
    for _ in range(5):
        response = api.reissue(pair)
        assert response.status_code == 200
        pair = response.json
    assert session_of(store, pair)["gen"] == "5"


# -- refusals without state change ----------------------------------------------------------


@pytest.mark.parametrize("missing", ["access", "refresh", "both"])
def test_a_missing_token_is_401_token_missing(api: Api, missing: str) -> None:
    pair = api.login()
    headers = {} if missing in ("access", "both") else bearer(pair["access_token"])
    body = {} if missing in ("refresh", "both") else {"refresh_token": pair["refresh_token"]}
    response = api.client.post("/auth/reissue", headers=headers, json=body)
    assert response.status_code == 401
    assert response.json["error"] == "token_missing"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": "refresh_token=x", "content_type": "application/x-www-form-urlencoded"},
        {"data": "[", "content_type": "application/json"},
        {"json": ["x"]},
        {"json": {"refresh_token": 5}},
        {"json": {"refresh_token": "x", "access_token": {"a": 1}}},
    ],
)
def test_a_malformed_body_is_400(api: Api, kwargs: dict) -> None:
    response = api.client.post("/auth/reissue", headers=bearer("x"), **kwargs)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_no_body_at_all_is_a_missing_refresh_token(api: Api) -> None:
    response = api.client.post("/auth/reissue", headers=bearer("x"))
    assert response.status_code == 401
    assert response.json["error"] == "token_missing"


def test_a_bad_access_token_is_401_token_invalid(api: Api) -> None:
    pair = api.login()
    response = api.reissue({**pair, "access_token": pair["access_token"][:-3] + "abc"})
    assert response.json["error"] == "token_invalid"


@pytest.mark.parametrize("bad", ["garbage", "a.b.c", "x" * 9000])
def test_a_bad_refresh_token_is_401_refresh_token_invalid(api: Api, bad: str) -> None:
    pair = api.login()
    response = api.reissue({**pair, "refresh_token": bad})
    assert response.status_code == 401
    assert response.json["error"] == "refresh_token_invalid"


def test_a_tampered_refresh_token_is_refused(api: Api) -> None:
    pair = api.login()
    header, payload, signature = pair["refresh_token"].split(".")
    tampered = f"{header}.{payload}.{signature[::-1]}"
    assert (
        api.reissue({**pair, "refresh_token": tampered}).json["error"] == "refresh_token_invalid"
    )


def test_tokens_swapped_are_refused(api: Api) -> None:
    pair = api.login()
    swapped = {"access_token": pair["refresh_token"], "refresh_token": pair["access_token"]}
    assert api.reissue(swapped).json["error"] == "token_invalid"


def test_an_rt_alone_with_an_at_of_another_session_is_token_mismatch(
    api: Api, store: SessionStore
) -> None:
    first, second = api.login(), api.login()
    response = api.reissue(
        {"access_token": second["access_token"], "refresh_token": first["refresh_token"]}
    )
    assert response.status_code == 401
    assert response.json["error"] == "token_mismatch"
    assert session_of(store, first)["gen"] == "0", "a refused request changes nothing"
    assert session_of(store, second)["gen"] == "0"
    assert api.reissue(first).status_code == 200


def test_an_at_of_another_user_is_token_mismatch(api: Api) -> None:
    alice, bob = api.login(), api.login(username="bob")
    response = api.reissue(
        {"access_token": bob["access_token"], "refresh_token": alice["refresh_token"]}
    )
    assert response.json["error"] == "token_mismatch"


def test_an_at_from_an_earlier_generation_does_not_bind_the_current_rt(api: Api) -> None:
    old = api.login()
    new = api.reissue(old).json
    mixed = {"access_token": old["access_token"], "refresh_token": new["refresh_token"]}
    assert api.reissue(mixed).json["error"] == "token_mismatch"


def test_a_user_gone_is_401_user_unavailable_and_the_session_ends(
    api: Api, users: Users, store: SessionStore
) -> None:
    pair = api.login(username="bob")
    users.by_id["2"].active = False
    response = api.reissue(pair)
    assert response.json["error"] == "user_unavailable"
    assert session_of(store, pair)["revoked"] == "user_unavailable"
    users.by_id["2"].active = True
    assert api.reissue(pair).json["error"] == "session_revoked"


def test_an_unknown_session_is_refresh_token_invalid(
    api: Api, store: SessionStore, state: AppState
) -> None:
    pair = api.login()
    c = claims(pair["refresh_token"])
    store.client.delete(store.session_key(c["sub"], c["sid"]))
    assert api.reissue(pair).json["error"] == "refresh_token_invalid"


# -- grace window and reuse ---------------------------------------------------------------


@pytest.mark.parametrize("access_algorithm", ACCESS_ALGORITHMS)
def test_a_repeat_within_grace_returns_the_same_pair_byte_for_byte(
    api: Api, store: SessionStore
) -> None:
    pair = api.login()
    first = api.reissue(pair)
    again = api.reissue(pair)
    assert again.status_code == 200
    assert again.data == first.data
    assert session_of(store, pair)["gen"] == "1", "a replay does not rotate"


def test_the_replayed_pair_keeps_working_like_the_first(api: Api) -> None:
    pair = api.login()
    first = api.reissue(pair).json
    api.reissue(pair)
    assert api.reissue(first).status_code == 200


@pytest.mark.parametrize("access_algorithm", ACCESS_ALGORITHMS)
def test_the_predecessor_after_grace_is_reuse_and_ends_the_session(
    make_app, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(DUALTOKEN_REUSE_GRACE=1)
    api = Api(app)
    pair = api.login()
    other = api.login()
    current = api.reissue(pair).json
    clock.advance(1.2)
    fired = []

    def on_reuse(sender: Flask, **kw: str) -> None:
        fired.append(kw)

    with (
        signals.refresh_token_reused.connected_to(on_reuse, app),
        caplog.at_level(logging.WARNING, logger="flask_dualtoken"),
    ):
        response = api.reissue(pair)
    assert response.status_code == 401
    assert response.json["error"] == "refresh_token_reused"
    sid = claims(pair["refresh_token"])["sid"]
    assert fired == [{"user_id": "1", "session_id": sid, "ip": "127.0.0.1"}]
    log = "\n".join(r.getMessage() for r in caplog.records)
    assert sid in log and "'1'" in log
    for token in (pair["access_token"], pair["refresh_token"], current["refresh_token"]):
        assert token.split(".")[2] not in log
    # The whole session is gone, its current refresh token included...
    assert api.reissue(current).json["error"] == "session_revoked"
    assert get_state_session(app, current)["revoked"] == "reuse"
    # ...and other sessions of the same user stay alive.
    assert api.reissue(other).status_code == 200


def get_state_session(app: Flask, pair: dict) -> dict[str, str]:
    from flask_dualtoken.state import get_state

    return session_of(get_state(app).store, pair)


def test_with_grace_zero_any_repeat_is_reuse(make_app) -> None:
    api = Api(make_app(DUALTOKEN_REUSE_GRACE=0))
    pair = api.login()
    current = api.reissue(pair).json
    assert api.reissue(pair).json["error"] == "refresh_token_reused"
    assert api.reissue(current).json["error"] == "session_revoked"


def test_an_older_generation_gets_no_grace(api: Api) -> None:
    gen0 = api.login()
    gen1 = api.reissue(gen0).json
    gen2 = api.reissue(gen1).json
    assert api.reissue(gen0).json["error"] == "refresh_token_reused"
    assert api.reissue(gen2).json["error"] == "session_revoked"


def test_the_grace_window_is_anchored_at_rotation_and_not_extended(make_app, clock: Clock) -> None:
    api = Api(make_app(DUALTOKEN_REUSE_GRACE=2))
    pair = api.login()
    api.reissue(pair)
    clock.advance(1.2)
    assert api.reissue(pair).status_code == 200  # inside [rotation, rotation + 2s)
    clock.advance(1.2)  # 2.4 s after rotation, 1.2 s after the repeat
    assert api.reissue(pair).json["error"] == "refresh_token_reused"


def test_revocation_is_final_even_within_grace(api: Api, state: AppState) -> None:
    pair = api.login()
    api.reissue(pair)
    c = claims(pair["refresh_token"])
    assert state.store.revoke(c["sub"], c["sid"], "revoked")
    assert api.reissue(pair).json["error"] == "session_revoked"


def test_refresh_tokens_carry_their_generation(api: Api) -> None:
    pair = api.login()
    assert claims(pair["refresh_token"])["gen"] == 0
    pair = api.reissue(pair).json
    assert claims(pair["refresh_token"])["gen"] == 1


def test_a_lost_rotation_is_not_mistaken_for_reuse(api: Api, store: SessionStore) -> None:
    # What a Redis failover can do: the rotation that issued `new` never reached the
    # replica that became master. Its RT is of a generation the store has not reached:
    # refused, and the session is not revoked.
    pair = api.login()
    c = claims(pair["refresh_token"])
    key = store.session_key(c["sub"], c["sid"])
    before = store.client.hgetall(key)
    new = api.reissue(pair).json
    store.client.delete(key)
    store.client.hset(key, mapping=before)
    store.client.expire(key, 3600)
    response = api.reissue(new)
    assert response.json["error"] == "refresh_token_invalid"
    assert "revoked" not in session_of(store, pair)
    assert api.reissue(pair).status_code == 200, "the surviving generation still rotates"


# -- lifetimes ------------------------------------------------------------------------------


def test_an_expired_refresh_token_is_refresh_token_expired(make_app, clock: Clock) -> None:
    api = Api(make_app(DUALTOKEN_ACCESS_EXPIRES=1, DUALTOKEN_REFRESH_EXPIRES=2))
    clock.align()
    pair = api.login()
    clock.advance(1.5)
    assert api.reissue(pair).status_code == 200, "still inside the idle lifetime"
    pair = api.login()
    clock.advance(2.1)
    response = api.reissue(pair)
    assert response.status_code == 401
    assert response.json["error"] == "refresh_token_expired"


def test_rotation_never_extends_the_absolute_session_lifetime(
    make_app, clock: Clock, store: SessionStore
) -> None:
    api = Api(
        make_app(
            DUALTOKEN_ACCESS_EXPIRES=1, DUALTOKEN_REFRESH_EXPIRES=3, DUALTOKEN_SESSION_MAX_AGE=4
        )
    )
    clock.align()
    pair = api.login()  # at s0 + 0.05: the session ends at s0 + 4
    end = int(session_of(store, pair)["abs_end"])
    assert end == claims(pair["refresh_token"])["iat"] + 4
    clock.advance(2)
    pair = api.reissue(pair).json  # idle lifetime would give s0 + 5; capped at the end
    assert claims(pair["refresh_token"])["iat"] + 3 > end
    assert claims(pair["refresh_token"])["exp"] == end
    clock.advance(2)  # s0 + 4.05: past the absolute end
    assert api.reissue(pair).json["error"] == "refresh_token_expired"


def test_session_keys_expire_with_their_refresh_token(api: Api, store: SessionStore) -> None:
    pair = api.login()
    c = claims(pair["refresh_token"])
    ttl = store.client.ttl(store.session_key(c["sub"], c["sid"]))
    assert 14 * 86400 - 5 <= ttl <= 14 * 86400 + 5
    assert 0 < store.client.ttl(store.index_key(c["sub"])) <= 30 * 86400 + 5
