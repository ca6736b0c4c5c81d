"""The Redis layout and its guarantees (sessions.md 1-3, 6, 9, 10)."""

from __future__ import annotations

import time
from typing import Any

import fakeredis
import jwt
import pytest
import redis
import time_machine
from flask import Flask
from helpers import SECRET, Api, Users, bearer, build_app, session_hash
from redis.cluster import RedisCluster
from redis.crc import key_slot
from servers import server_kind

from flask_dualtoken.state import get_state
from flask_dualtoken.store import ClientInfo, SessionStore, user_tag
from flask_dualtoken.tokens import new_id


def all_stored_strings(client: redis.Redis) -> list[str]:
    values: list[str] = []
    for key in client.scan_iter("*"):
        values.append(key.decode())
        kind = client.type(key).decode()
        if kind == "hash":
            for field, value in client.hgetall(key).items():
                values += [field.decode(), value.decode()]
        elif kind == "zset":
            values += [member.decode() for member in client.zrange(key, 0, -1)]
        else:
            pytest.fail(f"unexpected key type {kind} for {key!r}")
    return values


def test_nothing_stored_is_a_bearer_credential(api: Api, store: SessionStore) -> None:
    first = api.login()
    second = api.reissue(first).json
    stored = all_stored_strings(store.client)
    assert stored
    for pair in (first, second):
        for name in ("access_token", "refresh_token"):
            token = pair[name]
            head_and_body, _, signature = token.rpartition(".")
            assert all(signature not in value for value in stored)
            assert all(head_and_body not in value for value in stored)
    # And nothing read from Redis passes as a token.
    for value in stored:
        assert api.get("/me", value).status_code == 401
        response = api.reissue({"access_token": second["access_token"], "refresh_token": value})
        assert response.status_code == 401


WEIRD_IDS = ["{alice}", "}{", "a:b:c", "ユーザー", "user with spaces", "{", "x" * 200]


@pytest.mark.parametrize("user_id", WEIRD_IDS)
def test_every_key_of_a_user_shares_one_hash_tag_and_slot(
    make_app: Any, users: Users, user_id: str
) -> None:
    app = make_app()
    dualtoken = app.extensions["dualtoken_object"]
    dualtoken.identity_loader(lambda u: user_id)
    users.by_id[user_id] = users.by_id["1"]
    api = Api(app)
    pair = api.login()
    api.reissue(pair)
    second = api.login()
    api.get_json("/auth/sessions", second)
    api.client.post("/auth/logout-all", headers=bearer(second["access_token"]))
    api.login()
    store: SessionStore = app.extensions["dualtoken"].store
    keys = [k.decode() for k in store.client.scan_iter("*")]
    # The revocation listener's own key (lua/beat.lua) is the process's, not the user's.
    keys = [k for k in keys if not k.startswith(f"{store.channel}:listener:")]
    assert len(keys) == 4  # three sessions (two ended, as markers) and the index
    tag = user_tag(user_id)
    assert all(k.startswith(f"dualtoken:{tag}:") for k in keys)
    assert tag.count("{") == 1 and tag.count("}") == 1
    assert len({key_slot(k.encode()) for k in keys}) == 1
    if isinstance(store.client, RedisCluster):  # and the cluster itself agrees
        assert len({store.client.cluster_keyslot(k) for k in keys}) == 1


def test_different_users_get_different_tags() -> None:
    tags = {user_tag(u) for u in [*WEIRD_IDS, "1", "2", "10"]}
    assert len(tags) == len(WEIRD_IDS) + 3


def test_the_key_prefix_namespaces_every_key(make_app: Any) -> None:
    app = make_app(DUALTOKEN_KEY_PREFIX="myapp:auth")
    Api(app).login()
    client = app.extensions["dualtoken"].store.client
    assert all(k.startswith(b"myapp:auth:{") for k in client.scan_iter("*"))


def test_scripts_reload_themselves_after_a_script_flush(api: Api, store: SessionStore) -> None:
    pair = api.login()
    store.client.script_flush()
    assert api.reissue(pair).status_code == 200
    store.client.script_flush()
    assert api.login()["token_type"] == "Bearer"


@pytest.mark.real_redis
def test_token_times_come_from_the_redis_clock(redis_server: Any, users: Users) -> None:
    client = redis_server.client()
    app = Flask("clock")
    app.config.update(DUALTOKEN_SECRET_KEY=SECRET, DUALTOKEN_REDIS=client)
    from flask_dualtoken import DualToken

    dualtoken = DualToken(app)
    dualtoken.authenticate(users.authenticate)
    # This app server's clock is an hour ahead; the real Redis is not.
    with time_machine.travel(time.time() + 3600, tick=True):
        response = app.test_client().post(
            "/auth/login", json={"username": "alice", "password": "correct horse"}
        )
    iat = jwt.decode(response.json["access_token"], options={"verify_signature": False})["iat"]
    assert abs(iat - client.time()[0]) <= 2
    client.close()


def test_the_grace_window_is_half_open_to_the_microsecond(users: Users) -> None:
    # Only fakeredis lets a test stop the store's clock at an exact microsecond.
    app = build_app(fakeredis.FakeRedis(), users, DUALTOKEN_REUSE_GRACE=2)
    api = Api(app)
    start = 1_900_000_000.0
    with time_machine.travel(start, tick=False) as traveller:
        pair = api.login()
        api.reissue(pair)  # rotation at exactly `start`
        traveller.move_to(start + 1.999999)
        assert api.reissue(pair).status_code == 200
        traveller.move_to(start + 2.0)
        assert api.reissue(pair).json["error"] == "refresh_token_reused"


def test_a_revoked_session_keeps_only_a_short_lived_mark(api: Api, store: SessionStore) -> None:
    pair = api.reissue(api.login()).json
    c = jwt.decode(pair["refresh_token"], options={"verify_signature": False})
    key = store.session_key(c["sub"], c["sid"])
    assert store.client.exists(store.replay_key(c["sub"], c["sid"]))
    api.logout(pair)
    # Only what a late request needs for a precise answer, for at most 15 minutes: what a
    # user keeps in Redis does not grow with how often they log in and out.
    assert store.client.hgetall(key) == {b"uid": c["sub"].encode(), b"revoked": b"logout"}
    assert 890 <= store.client.ttl(key) <= 900
    assert not store.client.exists(store.replay_key(c["sub"], c["sid"])), "nothing to replay"
    assert api.reissue(pair).json["error"] == "session_revoked"


def test_replay_claims_live_only_as_long_as_the_grace_window(
    api: Api, store: SessionStore
) -> None:
    login = api.login()
    c = jwt.decode(login["refresh_token"], options={"verify_signature": False})
    assert not store.client.exists(store.replay_key(c["sub"], c["sid"])), "none at login"
    api.reissue(login)
    ttl_ms = store.client.pttl(store.replay_key(c["sub"], c["sid"]))
    # Grace plus one second of margin; the expiry time is rounded to the nearest
    # millisecond, so PTTL read within the same millisecond can show one more.
    assert 29_000 < ttl_ms <= 31_001
    session = session_hash(store, c["sub"], c["sid"])
    assert max(len(v) for v in session.values()) <= 64, "compact hash encoding stays possible"


def test_with_grace_off_no_replay_claims_are_written(make_app: Any) -> None:
    app = make_app(DUALTOKEN_REUSE_GRACE=0)
    api = Api(app)
    api.reissue(api.login())
    store: SessionStore = app.extensions["dualtoken"].store
    assert not list(store.client.scan_iter("*:r:*"))


def test_the_user_index_lists_live_sessions_and_prunes_dead_ones(
    make_app: Any, clock: Any
) -> None:
    app = make_app(DUALTOKEN_SESSION_MAX_AGE=1, DUALTOKEN_REFRESH_EXPIRES=1)
    api = Api(app)
    store: SessionStore = app.extensions["dualtoken"].store
    api.login()
    clock.advance(1.1)
    pair = api.login()
    sid = jwt.decode(pair["access_token"], options={"verify_signature": False})["sid"]
    assert store.client.zrange(store.index_key("1"), 0, -1) == [sid.encode()]


def test_tokens_are_refused_without_a_redis_call_when_the_signature_fails(
    api: Api, store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = api.login()
    calls: list[Any] = []
    monkeypatch.setattr(store, "_run", lambda *a: calls.append(a))
    forged = pair["refresh_token"][:-4] + "AAAA"
    assert api.reissue({**pair, "refresh_token": forged}).status_code == 401
    assert (
        api.client.post(
            "/auth/logout", headers=bearer(pair["access_token"]), json={"refresh_token": forged}
        ).status_code
        == 401
    )
    assert calls == []


# -- a script run twice: redis-py retries once when a connection drops, which may be after
# Redis ran the script and before its reply arrived -------------------------------------


@pytest.mark.parametrize("grace", [30, 0])
def test_a_rotation_run_twice_answers_the_same_and_rotates_once(make_app: Any, grace: int) -> None:
    app = make_app(DUALTOKEN_REUSE_GRACE=grace)
    store = get_state(app).store
    sid, first_jti, new_jti = new_id(), new_id(), new_id()
    client = ClientInfo("127.0.0.1", "test")
    store.create("1", sid, first_jti, "{}", "{}", client)
    args = ("1", sid, first_jti, 0, new_jti, '{"a":1}', '{"r":1}', client)
    once, twice = store.rotate(*args), store.rotate(*args)
    assert (once.outcome, twice.outcome) == ("rotated", "rotated")
    assert once.grant == twice.grant
    assert session_hash(store, "1", sid)["gen"] == "1"
    assert store.is_live("1", sid)  # not taken for reuse, even with grace off


def test_a_login_run_twice_at_the_cap_ends_one_session_not_two(make_app: Any) -> None:
    app = make_app(DUALTOKEN_MAX_SESSIONS=2)
    store = get_state(app).store
    client = ClientInfo("127.0.0.1", "test")
    older = [new_id(), new_id()]
    for sid in older:
        store.create("1", sid, new_id(), "{}", "{}", client)
    sid, jti = new_id(), new_id()
    once = store.create("1", sid, jti, "{}", "{}", client)
    twice = store.create("1", sid, jti, "{}", "{}", client)
    assert once.evicted == (older[0],)
    assert twice.evicted == ()
    assert once.grant == twice.grant
    assert [s.session_id for s in store.sessions("1")] == [older[1], sid]


@pytest.mark.real_redis
def test_the_real_server_is_the_one_the_run_asked_for(redis_server: Any) -> None:
    """DUALTOKEN_TEST_SERVER picks redis-server or valkey-server (tests/servers.py): the
    server the suite started must be that one, or a Valkey run would test Redis."""
    with redis_server.client() as client:
        info = client.info("server")
    is_valkey = info.get("server_name") == "valkey" or "valkey_version" in info
    assert is_valkey == (server_kind() == "valkey"), info.get("redis_version")
