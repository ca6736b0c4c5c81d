"""The security stamp: a session keeps a digest of its user's stamp (never the stamp), a
reissue after the stamp changed ends the session (announced, so its access tokens stop at
once), and ``credentials_changed`` ends the other sessions at once while keeping one."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from flask import Flask
from helpers import SECRET, Api, Clock, User, Users, bearer, session_hash, sid_of

from flask_dualtoken import DualToken, jwt_required, signals
from flask_dualtoken.keys import StampKeys
from flask_dualtoken.state import get_state
from flask_dualtoken.store import SessionStore

NEW_SECRET = "rotated-secret-" + "n" * 40


def dualtoken_of(app: Flask) -> DualToken:
    extension: DualToken = app.extensions["dualtoken_object"]
    return extension


def stamped(app: Flask) -> Flask:
    """The app with the password hash as the security stamp."""
    dualtoken_of(app).security_stamp_loader(lambda user: user.password_hash)
    return app


@pytest.fixture
def make_stamped(make_app: Callable[..., Flask]) -> Callable[..., Flask]:
    return lambda **config: stamped(make_app(**config))


@pytest.fixture
def app(make_stamped: Callable[..., Flask]) -> Flask:
    return make_stamped()


def change_password(users: Users, user_id: str = "1", password: str = "new horse") -> None:
    """What the app does on a password change, without telling the library."""
    user = users.by_id[user_id]
    user.password_hash = f"hash-of-{password}-{time.monotonic_ns()}"


def stored(store: SessionStore, pair: dict[str, Any]) -> dict[str, str]:
    return session_hash(store, "1", sid_of(pair))


def error_of(response: Any) -> str | None:
    return (response.json or {}).get("error")


def every_stored_string(store: SessionStore) -> list[str]:
    client = store.client
    found: list[str] = []
    for key in client.scan_iter("*"):
        found.append(key.decode())
        kind = client.type(key).decode()
        if kind == "hash":
            for field, value in client.hgetall(key).items():
                found += [field.decode(), value.decode()]
        elif kind == "zset":
            found += [m.decode() for m in client.zrange(key, 0, -1)]
        elif kind == "string":
            found.append(client.get(key).decode())
    return found


# -- what a session keeps -------------------------------------------------------------------


def test_a_session_keeps_a_digest_of_the_stamp_and_never_the_stamp(
    api: Api, store: SessionStore, users: Users
) -> None:
    pair = api.login()
    api.reissue(pair)
    api.reauth(api.login())
    stamp = users.by_id["1"].password_hash
    digest = StampKeys([SECRET.encode()]).digests("1", stamp)[0]
    assert stored(store, pair)["stamp"] == digest
    everything = every_stored_string(store)
    assert everything
    assert not any(stamp in value for value in everything)
    assert not any(part in value for value in everything for part in stamp.split("$"))


def test_equal_stamps_of_two_users_have_different_digests() -> None:
    keys = StampKeys([SECRET.encode()])
    assert keys.digests("1", "same") != keys.digests("2", "same")
    assert keys.digests("1", "2same") != keys.digests("12", "same")
    assert "hidden" in repr(keys) and SECRET not in repr(keys)


# -- at reissue -----------------------------------------------------------------------------


def test_an_unchanged_stamp_reissues_as_before(api: Api) -> None:
    pair = api.login()
    for _ in range(3):
        response = api.reissue(pair)
        assert response.status_code == 200
        pair = response.json  # type: ignore[assignment]


def test_a_changed_stamp_ends_the_session_at_its_next_reissue(
    app: Flask, api: Api, store: SessionStore, users: Users
) -> None:
    pair = api.login()
    bob = api.login("bob")
    pair = api.reissue(pair).json  # type: ignore[assignment]
    change_password(users)
    ended: list[dict[str, Any]] = []
    with signals.session_revoked.connected_to(lambda sender, **kw: ended.append(kw), app):
        response = api.reissue(pair)
    assert response.status_code == 401
    assert error_of(response) == "session_revoked"
    assert ended == [
        {
            "user_id": "1",
            "session_id": sid_of(pair),
            "ip": "127.0.0.1",
            "reason": "credentials_changed",
        }
    ]
    # Its access tokens are refused at once (push revocation, this process).
    assert error_of(api.get("/me", pair["access_token"])) == "session_revoked"
    assert stored(store, pair) == {"uid": "1", "revoked": "credentials_changed"}
    assert error_of(api.reissue(pair)) == "session_revoked"
    assert api.reissue(bob).status_code == 200  # another user's sessions live on


def test_the_other_processes_refuse_its_access_tokens_too(
    make_stamped: Callable[..., Flask], users: Users
) -> None:
    first, second = Api(make_stamped()), Api(make_stamped())
    pair = first.login()
    assert second.get("/me", pair["access_token"]).status_code == 200  # remembered alive
    change_password(users)
    assert error_of(first.reissue(pair)) == "session_revoked"
    deadline = time.monotonic() + 2.0
    while second.get("/me", pair["access_token"]).status_code == 200:
        assert time.monotonic() < deadline, "the announcement never arrived"
        time.sleep(0.005)
    assert error_of(second.get("/me", pair["access_token"])) == "session_revoked"


def test_a_fresh_route_ends_a_session_whose_stamp_changed_before_any_reissue(
    app: Flask, api: Api, store: SessionStore, users: Users
) -> None:
    """A recent login proves the person, not that their password is still the user's: a
    sensitive action compares the stamp too (lua/check_stamp.lua), and ends the session."""

    @app.get("/sensitive")
    @jwt_required(fresh=True)
    def sensitive() -> dict[str, bool]:
        return {"ok": True}

    pair = api.login()
    assert api.get("/sensitive", pair["access_token"]).status_code == 200
    change_password(users)
    assert api.get("/me", pair["access_token"]).status_code == 200  # no fresh login needed
    ended: list[dict[str, Any]] = []
    with signals.session_revoked.connected_to(lambda sender, **kw: ended.append(kw), app):
        response = api.get("/sensitive", pair["access_token"])
    assert response.status_code == 401
    assert error_of(response) == "session_revoked"
    assert [kw["reason"] for kw in ended] == ["credentials_changed"]
    assert stored(store, pair) == {"uid": "1", "revoked": "credentials_changed"}
    assert error_of(api.get("/me", pair["access_token"])) == "session_revoked"  # pushed


def test_ending_another_session_checks_the_stamp_when_admin_fresh_is_on(
    make_stamped: Callable[..., Flask], users: Users
) -> None:
    app = make_stamped(DUALTOKEN_SESSION_ADMIN_FRESH=300)
    api, store = Api(app), get_state(app).store
    pair, other = api.login(), api.login()
    change_password(users)
    response = api.client.delete(
        f"/auth/sessions/{sid_of(other)}", headers=bearer(pair["access_token"])
    )
    assert error_of(response) == "session_revoked"
    assert stored(store, pair)["revoked"] == "credentials_changed"
    assert "revoked" not in stored(store, other)  # not ended by that call: it had no right


def test_a_fresh_route_without_a_stamp_loader_makes_no_store_call(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()

    @app.get("/sensitive")
    @jwt_required(fresh=True)
    def sensitive() -> dict[str, bool]:
        return {"ok": True}

    api = Api(app)
    pair = api.login()
    calls: list[Any] = []
    monkeypatch.setattr(get_state(app).store, "check_stamp", lambda *a: calls.append(a))
    assert api.get("/sensitive", pair["access_token"]).status_code == 200
    assert calls == []


def test_a_changed_stamp_ends_a_replay_within_grace_too(api: Api, users: Users) -> None:
    pair = api.login()
    assert api.reissue(pair).status_code == 200
    change_password(users)
    assert error_of(api.reissue(pair)) == "session_revoked"  # no replay of the old pair


def test_without_a_loader_nothing_changes(make_app: Callable[..., Flask], users: Users) -> None:
    app = make_app()
    api = Api(app)
    pair = api.login()
    assert "stamp" not in stored(get_state(app).store, pair)
    change_password(users)
    assert api.reissue(pair).status_code == 200


def test_a_session_stored_without_a_stamp_takes_one_at_its_next_reissue(
    make_app: Callable[..., Flask], users: Users
) -> None:
    app = make_app()
    store = get_state(app).store
    api = Api(app)
    pair = api.login()  # before the app kept stamps
    stamped(app)
    pair = api.reissue(pair).json  # type: ignore[assignment]
    assert stored(store, pair)["stamp"]
    change_password(users)
    assert error_of(api.reissue(pair)) == "session_revoked"


def test_secret_rotation_keeps_sessions_and_moves_their_stamps_to_the_new_secret(
    make_stamped: Callable[..., Flask], store: SessionStore, users: Users
) -> None:
    stamp = users.by_id["1"].password_hash
    # Step 1: the new secret is accepted, the old one still signs.
    staged = Api(make_stamped(DUALTOKEN_PREVIOUS_SECRET_KEYS=[NEW_SECRET]))
    pair = staged.login()
    old_digest = StampKeys([SECRET.encode()]).digests("1", stamp)[0]
    assert stored(store, pair)["stamp"] == old_digest
    # Step 2: the new one signs, the old one is still accepted.
    rotated = Api(
        make_stamped(DUALTOKEN_SECRET_KEY=NEW_SECRET, DUALTOKEN_PREVIOUS_SECRET_KEYS=[SECRET])
    )
    pair = rotated.reissue(pair).json  # type: ignore[assignment]
    assert pair is not None
    new_digest = StampKeys([NEW_SECRET.encode()]).digests("1", stamp)[0]
    assert stored(store, pair)["stamp"] == new_digest
    # A process still on step 1 accepts the new digest too.
    pair = staged.reissue(pair).json  # type: ignore[assignment]
    assert pair is not None
    assert stored(store, pair)["stamp"] == old_digest
    pair = rotated.reissue(pair).json  # type: ignore[assignment]
    assert stored(store, pair)["stamp"] == new_digest
    # Step 3: the old secret is gone.
    done = Api(make_stamped(DUALTOKEN_SECRET_KEY=NEW_SECRET))
    assert done.reissue(pair).status_code == 200


def test_a_loader_that_does_not_return_text_is_a_json_500_that_never_logs_the_value(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    dualtoken_of(app).security_stamp_loader(lambda user: b"pbkdf2:sha256:secret-hash")
    response = app.test_client().post(
        "/auth/login", json={"username": "alice", "password": "correct horse"}
    )
    assert response.status_code == 500
    assert error_of(response) == "server_misconfigured"
    assert "security_stamp_loader" in caplog.text
    assert "secret-hash" not in caplog.text
    assert get_state(app).store.client.zcard(get_state(app).store.index_key("1")) == 0


def test_a_loader_that_raises_is_a_json_500(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    dualtoken_of(app).security_stamp_loader(lambda user: user.no_such_attribute)
    response = app.test_client().post(
        "/auth/login", json={"username": "alice", "password": "correct horse"}
    )
    assert response.status_code == 500
    assert error_of(response) == "server_misconfigured"


def test_reauth_with_the_new_password_stores_the_new_stamp(api: Api, users: Users) -> None:
    pair = api.login()
    users.by_id["1"].password_hash = Users().add("alice", "new horse").password_hash
    assert error_of(api.reauth(pair)) == "invalid_credentials"  # the old password
    new = api.reauth(pair, password="new horse").json  # proves the current credentials
    assert new is not None
    assert api.reissue(new).status_code == 200


def test_a_login_that_raced_a_change_ends_at_its_first_reissue(
    app: Flask, api: Api, users: Users
) -> None:
    """A login checked against the old password whose session is stored only after the
    change (and so outlives ``credentials_changed``) still carries the old stamp."""
    before: User = dataclasses.replace(users.by_id["1"])
    change_password(users)
    with app.test_request_context():
        dualtoken_of(app).credentials_changed(users.by_id["1"])
        late = dualtoken_of(app).issue(before).to_dict()
    assert api.get("/me", late["access_token"]).status_code == 200
    assert error_of(api.reissue(late)) == "session_revoked"


# -- credentials_changed --------------------------------------------------------------------


def test_credentials_changed_keeps_the_current_session_and_ends_the_others(
    app: Flask, api: Api, store: SessionStore, users: Users
) -> None:
    current, phone, tablet = api.login(), api.login(), api.login()
    bob = api.login("bob")
    change_password(users)
    seen: list[dict[str, Any]] = []
    with (
        signals.credentials_changed.connected_to(lambda sender, **kw: seen.append(kw), app),
        app.test_request_context(),
    ):
        kept = dualtoken_of(app).credentials_changed(
            users.by_id["1"], keep_session=sid_of(current)
        )
    assert kept is True
    assert seen == [{"user_id": "1", "session_id": sid_of(current), "ip": "", "ended": 2}]
    for pair in (phone, tablet):  # at once, not at their next reissue
        assert error_of(api.get("/me", pair["access_token"])) == "session_revoked"
        assert error_of(api.reissue(pair)) == "session_revoked"
        assert stored(store, pair) == {"uid": "1", "revoked": "credentials_changed"}
    digest = StampKeys([SECRET.encode()]).digests("1", users.by_id["1"].password_hash)[0]
    assert stored(store, current)["stamp"] == digest
    new = api.reissue(current)
    assert new.status_code == 200
    listed = api.get_json("/auth/sessions", new.json)  # type: ignore[arg-type]
    assert [s["sid"] for s in listed["sessions"]] == [sid_of(current)]
    assert api.reissue(bob).status_code == 200


def test_the_sessions_it_ends_are_refused_on_the_other_processes_at_once(
    make_stamped: Callable[..., Flask], users: Users
) -> None:
    app = make_stamped()
    first, second = Api(app), Api(make_stamped())
    current, other = first.login(), first.login()
    assert second.get("/me", other["access_token"]).status_code == 200  # remembered alive
    change_password(users)
    with app.app_context():
        dualtoken_of(app).credentials_changed(users.by_id["1"], keep_session=sid_of(current))
    deadline = time.monotonic() + 2.0
    while second.get("/me", other["access_token"]).status_code == 200:
        assert time.monotonic() < deadline, "the announcement never arrived"
        time.sleep(0.005)
    assert error_of(second.get("/me", other["access_token"])) == "session_revoked"
    assert second.get("/me", current["access_token"]).status_code == 200


def test_credentials_changed_from_a_request_ends_the_others_and_keeps_the_caller(
    app: Flask, api: Api, users: Users
) -> None:
    @app.post("/password")
    def password() -> dict[str, bool]:
        from flask_dualtoken import current_user, get_jwt, verify_request

        verify_request()
        current_user.password_hash = "hash-of-a-new-password"
        kept = dualtoken_of(app).credentials_changed(current_user, keep_session=get_jwt()["sid"])
        return {"kept": kept}

    current, other = api.login(), api.login()
    answer = api.client.post("/password", headers=bearer(current["access_token"]))
    assert answer.json == {"kept": True}
    assert api.get("/me", current["access_token"]).status_code == 200
    assert error_of(api.get("/me", other["access_token"])) == "session_revoked"
    assert api.reissue(current).status_code == 200


def test_credentials_changed_without_a_session_to_keep_ends_them_all(
    app: Flask, api: Api, users: Users
) -> None:
    pairs = [api.login() for _ in range(3)]
    with app.app_context():
        assert dualtoken_of(app).credentials_changed(users.by_id["1"]) is False
    assert all(error_of(api.reissue(p)) == "session_revoked" for p in pairs)
    fresh = api.login()  # and a login afterwards works
    assert api.reissue(fresh).status_code == 200


def test_a_session_to_keep_that_had_ended_is_not_revived(
    app: Flask, api: Api, users: Users, caplog: pytest.LogCaptureFixture
) -> None:
    ended, other = api.login(), api.login()
    assert api.logout(ended).status_code == 204
    caplog.set_level(logging.INFO, logger="flask_dualtoken")
    with app.app_context():
        kept = dualtoken_of(app).credentials_changed(users.by_id["1"], keep_session=sid_of(ended))
    assert kept is False
    assert error_of(api.reissue(ended)) == "session_revoked"
    assert error_of(api.reissue(other)) == "session_revoked"
    assert "credentials changed, other sessions ended" in caplog.text


def test_another_users_session_id_is_not_kept(app: Flask, api: Api, users: Users) -> None:
    alice, bob = api.login(), api.login("bob")
    with app.app_context():
        kept = dualtoken_of(app).credentials_changed(users.by_id["1"], keep_session=sid_of(bob))
    assert kept is False
    assert error_of(api.reissue(alice)) == "session_revoked"
    assert api.reissue(bob).status_code == 200


def test_beyond_the_named_limit_every_other_session_still_ends(
    make_stamped: Callable[..., Flask], users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flask_dualtoken.store.MAX_SESSIONS_CAP", 2)
    app = make_stamped(DUALTOKEN_MAX_SESSIONS=0)
    first, second = Api(app), Api(make_stamped(DUALTOKEN_MAX_SESSIONS=0))
    pairs = [first.login() for _ in range(6)]
    keep = pairs[3]
    for pair in pairs:  # the other process remembers every session alive
        assert second.get("/me", pair["access_token"]).status_code == 200
    with app.app_context():
        assert dualtoken_of(app).credentials_changed(users.by_id["1"], keep_session=sid_of(keep))
    for pair in pairs:
        expected = None if pair is keep else "session_revoked"
        assert error_of(first.reissue(pair)) == expected
    # Announced as all of the user's: the other process asks again, and learns the truth.
    deadline = time.monotonic() + 2.0
    while second.get("/me", pairs[0]["access_token"]).status_code == 200:
        assert time.monotonic() < deadline, "the announcement never arrived"
        time.sleep(0.005)
    assert second.get("/me", keep["access_token"]).status_code == 200


@pytest.mark.parametrize("keep", ["", "a,b", "x" * 100, 42, "sid with spaces"])
def test_a_session_to_keep_must_be_a_session_id(app: Flask, users: Users, keep: Any) -> None:
    with app.app_context(), pytest.raises(ValueError, match="keep_session"):
        dualtoken_of(app).credentials_changed(users.by_id["1"], keep_session=keep)


def test_without_a_loader_the_kept_session_lives_on_unstamped(
    make_app: Callable[..., Flask], users: Users
) -> None:
    app = make_app()
    api = Api(app)
    current, other = api.login(), api.login()
    with app.app_context():
        assert dualtoken_of(app).credentials_changed(
            users.by_id["1"], keep_session=sid_of(current)
        )
    assert "stamp" not in stored(get_state(app).store, current)
    assert api.reissue(current).status_code == 200
    assert error_of(api.reissue(other)) == "session_revoked"


def test_the_access_token_carries_no_stamp(api: Api) -> None:
    access = jwt.decode(api.login()["access_token"], options={"verify_signature": False})
    assert not {"stamp", "security_stamp"} & set(access)


# -- a reissue or re-authentication under way at the change ----------------------------------


def test_a_reissue_that_loaded_the_user_before_the_change_keeps_the_kept_session(
    app: Flask, api: Api, store: SessionStore, users: Users
) -> None:
    current, other = api.login(), api.login()
    stale: User = dataclasses.replace(users.by_id["1"])  # what a reissue under way loaded
    old_stamp = stored(store, current)["stamp"]
    change_password(users)
    with app.app_context():
        dualtoken_of(app).credentials_changed(users.by_id["1"], keep_session=sid_of(current))
    new_stamp = stored(store, current)["stamp"]
    assert new_stamp != old_stamp
    dualtoken_of(app).user_loader(lambda user_id: stale)
    renewed = api.reissue(current)
    assert renewed.status_code == 200
    assert error_of(api.reissue(other)) == "session_revoked"  # only the kept one
    assert stored(store, current)["stamp"] == new_stamp  # not put back
    dualtoken_of(app).user_loader(users.load)
    assert api.reissue(renewed.json).status_code == 200  # type: ignore[arg-type]


def test_the_former_stamp_is_accepted_only_for_a_moment(
    app: Flask, api: Api, users: Users, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flask_dualtoken.store.STAMP_HANDOVER_SECONDS", 1)
    current = api.login()
    stale: User = dataclasses.replace(users.by_id["1"])
    change_password(users)
    with app.app_context():
        dualtoken_of(app).credentials_changed(users.by_id["1"], keep_session=sid_of(current))
    clock.advance(1.2)
    dualtoken_of(app).user_loader(lambda user_id: stale)
    assert error_of(api.reissue(current)) == "session_revoked"


def test_a_reauth_checked_before_the_change_does_not_put_the_old_stamp_back(
    app: Flask, api: Api, store: SessionStore, users: Users
) -> None:
    current = api.login()
    stale: User = dataclasses.replace(users.by_id["1"])  # the password it checked
    change_password(users)
    with app.app_context():
        dualtoken_of(app).credentials_changed(users.by_id["1"], keep_session=sid_of(current))
    new_stamp = stored(store, current)["stamp"]
    dualtoken_of(app).authenticate(lambda username, password: stale)
    reauthed = api.reauth(current)
    assert reauthed.status_code == 200
    assert stored(store, current)["stamp"] == new_stamp
    assert api.reissue(reauthed.json).status_code == 200  # type: ignore[arg-type]
