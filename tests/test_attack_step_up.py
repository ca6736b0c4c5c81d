"""Attack pass on step-up authentication and credential changes (auth_time, fresh=,
POST /auth/reauth, DUALTOKEN_SESSION_ADMIN_FRESH, the security stamp, credentials_changed).

Four findings, each fixed and kept as a test naming the promise it broke: a session of an
old password laundering itself through a password change, and a login racing the change
(a sensitive action now checks the session's stamp: flows.check_credentials); a stale
replay pair after a rolling change of the grace to 0 (rotate_session drops it); a stamp
loader's exception text in the log. Attacks that found nothing are kept as cheap
regressions."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

import fakeredis
import jwt
import pytest
from flask import Flask, request
from helpers import FAST_HASH, SECRET, Api, Clock, Users, bearer, build_app, session_hash, sid_of
from werkzeug.security import generate_password_hash

from flask_dualtoken import DualToken, current_user, get_jwt, jwt_required

WAIT = 10.0  # seconds any thread of these tests waits at most


def dualtoken_of(app: Flask) -> DualToken:
    extension: DualToken = app.extensions["dualtoken_object"]
    return extension


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def error_of(response: Any) -> str | None:
    return (response.json or {}).get("error")


def with_password_route(app: Flask) -> Flask:
    """The app with the password hash as its security stamp and the change-password route
    of docs/sensitive-actions.md (fresh login, credentials_changed keeping the caller)."""
    dualtoken = dualtoken_of(app)
    dualtoken.security_stamp_loader(lambda user: user.password_hash)

    @app.post("/account/password")
    @jwt_required(fresh=True)
    def change_password() -> dict[str, Any]:
        new_password = (request.get_json(silent=True) or {})["new_password"]
        current_user.password_hash = generate_password_hash(new_password, FAST_HASH)
        kept = dualtoken.credentials_changed(current_user, keep_session=get_jwt()["sid"])
        return {"kept": kept}

    return app


def change(api: Api, pair: dict[str, Any], new_password: str) -> Any:
    return api.client.post(
        "/account/password",
        headers=bearer(pair["access_token"]),
        json={"new_password": new_password},
    )


# -- (1)/(2) a login racing the owner's password change -------------------------------------


def test_a_login_racing_the_password_change_cannot_take_the_account_over(
    make_app: Callable[..., Flask], users: Users
) -> None:
    """docs/sensitive-actions.md: when the user changes the password because someone else
    has it, "the others must end now" (ASVS 7.4.3), and a fresh login stands for the
    current password. An attacker who knows the old password and keeps logging in has a
    login whose password check ran before the change and whose session is stored after
    it: its access token is fresh, passes ``fresh=True``, and changes the password again,
    which ends the owner's kept session and makes the attacker's session the one kept."""
    app = with_password_route(make_app())
    owner, attacker = Api(app), Api(app)
    owner_pair = owner.login()

    checked, changed, armed = threading.Event(), threading.Event(), threading.Event()
    real = users.authenticate

    def racing_authenticate(username: str, password: str) -> Any:
        user = real(username, password)
        if not armed.is_set():
            return user
        armed.clear()  # only the attacker's login waits
        # What an ORM request holds: the row as it was read, before the change commits.
        snapshot = dataclasses.replace(user) if user is not None else None
        checked.set()
        assert changed.wait(WAIT)
        return snapshot

    dualtoken_of(app).authenticate(racing_authenticate)
    armed.set()
    result: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: result.update(
            response=attacker.client.post(
                "/auth/login", json={"username": "alice", "password": "correct horse"}
            )
        )
    )
    thread.start()
    assert checked.wait(WAIT)
    assert change(owner, owner_pair, "the owner's new one").json == {"kept": True}
    changed.set()
    thread.join(WAIT)
    late = result["response"]
    if late.status_code != 200:
        return  # refused: what the promise asks
    stolen = late.json
    # The attacker's token is fresh: it changes the password again...
    taken = change(attacker, stolen, "the attacker's")
    assert taken.status_code != 200, "the attacker changed the password after the owner did"
    # ...and, had it worked, the owner would now be the one locked out.
    assert owner.reissue(owner_pair).status_code == 200


def test_a_session_of_the_old_password_cannot_launder_itself_through_a_password_change(
    make_app: Callable[..., Flask], users: Users
) -> None:
    """docs/sensitive-actions.md: "a password changed anywhere (your own admin tool, a
    script, a reset by hand) ends the old sessions at their next reissue, at most one
    access-token lifetime later", and "the fresh login stands for the current password".
    An attacker who logged in with the stolen password minutes before an administrator
    reset it still holds a fresh access token. With it, the change-password route accepts
    a password of the attacker's choosing, and credentials_changed keeps the attacker's
    session and stamps it current: it never ends, and the owner's sessions do."""
    app = with_password_route(make_app())
    owner, attacker = Api(app), Api(app)
    owner_pair = owner.login()
    stolen = attacker.login()  # the stolen password, a fresh login
    # The owner asks an administrator to reset the password (no library call).
    users.by_id["1"].password_hash = generate_password_hash("reset by an admin", FAST_HASH)
    taken = change(attacker, stolen, "the attacker's")
    if taken.status_code == 200:
        # The attacker's session now carries the attacker's stamp: it outlives the reset.
        assert error_of(attacker.reissue(stolen)) == "session_revoked", "laundered"
    assert taken.status_code == 401
    assert owner.login(password="reset by an admin")
    assert error_of(owner.reissue(owner_pair)) == "session_revoked"  # as the reset intends


# -- (1)/(5) a replay key left behind by a rotation with grace 0 ----------------------------


def test_a_stale_replay_never_hands_an_old_pair_a_fresh_auth_time(
    make_app: Callable[..., Flask], clock: Clock
) -> None:
    """docs/sensitive-actions.md: only a login or POST /auth/reauth renews auth_time, and
    after the grace window (0: at once) a previous refresh token is reuse and ends the
    session. During a rolling change of DUALTOKEN_REUSE_GRACE to 0 (what the page advises
    "where that matters more"), a process still on the old grace answers the holder of the
    refresh token that the owner's re-authentication replaced with the pair of the rotation
    before, signed with the re-authentication's auth_time: a fresh access token for a
    stolen, superseded refresh token, no reuse detected, and a refresh token that is not
    the session's current one."""
    graceful, strict = (
        Api(make_app(DUALTOKEN_REUSE_GRACE=30)),
        Api(make_app(DUALTOKEN_REUSE_GRACE=0)),
    )
    clock.align()
    login = graceful.login()
    stolen = graceful.reissue(login).json  # the pair a thief copies (rotation 1, grace 30)
    assert stolen is not None
    clock.advance(1.2)
    reauthed = strict.reauth(stolen)  # the owner re-authenticates on a grace-0 process
    assert reauthed.status_code == 200
    fresh_auth = claims(reauthed.json["access_token"])["auth_time"]  # type: ignore[index]
    answer = graceful.reissue(stolen)  # the thief, on a process still on grace 30
    if answer.status_code == 200:
        got = claims(answer.json["access_token"])  # type: ignore[index]
        assert got["auth_time"] != fresh_auth, "a superseded refresh token got a fresh login"
    assert answer.status_code == 401


# -- (5) what a failing stamp loader writes to the log --------------------------------------


def test_a_stamp_loader_that_raises_never_logs_the_stamp(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    """docs/sensitive-actions.md: "A loader that raises or returns something other than
    text is a JSON 500 server_misconfigured with one log line naming it (never the value,
    which may be a hash)". A counter stamp read from a column that holds something else
    (``str(int(user.credentials_version))``) raises ValueError whose text is the value:
    the log line carries it."""
    app = make_app()
    hash_like = "pbkdf2:sha256:600000$salt$0123456789abcdef"

    def stamp(user: Any) -> str:
        return str(int(hash_like))  # ValueError: invalid literal for int() ...: '<value>'

    dualtoken_of(app).security_stamp_loader(stamp)
    caplog.set_level(logging.INFO, logger="flask_dualtoken")
    response = app.test_client().post(
        "/auth/login", json={"username": "alice", "password": "correct horse"}
    )
    assert response.status_code == 500
    assert error_of(response) == "server_misconfigured"
    assert hash_like not in response.get_data(as_text=True)
    assert "security_stamp_loader" in caplog.text
    assert hash_like not in caplog.text


# -- (1) a fresh auth_time without the password: attacks that found nothing ----------------


def test_a_reauth_of_one_session_freshens_no_other_session(api: Api, clock: Clock) -> None:
    """A thief's own session of the user gets nothing from the owner's re-authentication:
    neither its reissue nor its replay carries the new auth_time."""
    clock.align()
    owner, thief = api.login(), api.login()
    thief = api.reissue(thief).json or {}
    clock.advance(1.2)
    reauthed = api.reauth(owner).json or {}
    fresh = claims(reauthed["access_token"])["auth_time"]
    # Its next reissue rotates, the one after with the same pair is a replay within grace.
    for answer in (api.reissue(thief).json or {}, api.reissue(thief).json or {}):
        assert claims(answer["access_token"])["auth_time"] < fresh


def test_pairs_of_two_sessions_cannot_be_swapped_around_a_reauth(api: Api, store: Any) -> None:
    """The reauthenticated session's fresh access token with another session's refresh
    token (or the reverse) is a mismatch, and changes neither session."""
    one, two = api.login(), api.login()
    reauthed = api.reauth(one).json or {}
    before = [session_hash(store, "1", sid_of(p)) for p in (one, two)]
    for access, refresh in ((reauthed, two), (two, reauthed), (reauthed, one)):
        answer = api.reissue(
            {"access_token": access["access_token"], "refresh_token": refresh["refresh_token"]}
        )
        assert error_of(answer) == "token_mismatch"
    assert [session_hash(store, "1", sid_of(p)) for p in (one, two)] == before


def test_another_users_token_cannot_be_freshened_with_ones_own_password(
    api: Api, store: Any
) -> None:
    """Bob's credentials on Alice's access token (and Alice's on Bob's) are refused and
    change neither session, whatever the spelling."""
    alice, bob = api.login(), api.login("bob")
    before = [session_hash(store, uid, sid_of(p)) for uid, p in (("1", alice), ("2", bob))]
    for name in ("bob", "Bob", "BOB"):
        assert error_of(api.reauth(alice, username=name)) == "invalid_credentials"
    assert error_of(api.reauth(bob, username="alice")) == "invalid_credentials"
    after = [session_hash(store, uid, sid_of(p)) for uid, p in (("1", alice), ("2", bob))]
    assert after == before


CSRF = "__Host-dualtoken_csrf"


def cookie(browser: Any, name: str) -> str:
    found = browser.get_cookie(name)
    assert found is not None, name
    return str(found.value)


@pytest.mark.parametrize("location", ["cookies", "both"])
def test_a_reauth_by_cookie_needs_the_csrf_token_of_that_very_session(
    make_app: Callable[..., Flask], location: str
) -> None:
    """A page that knows its own session's CSRF token (the attacker's, after logging in to
    their own account) cannot use it to re-authenticate a victim's cookie session."""
    app = make_app(DUALTOKEN_TOKEN_LOCATION=location)
    store = app.extensions["dualtoken"].store
    attacker, victim = app.test_client(), app.test_client()
    headers = {"X-Token-Transport": "cookies"}
    own = (
        attacker.post(
            "/auth/login", json={"username": "bob", "password": "correct horse"}, headers=headers
        ).json
        or {}
    )["csrf_token"]
    victim.post(
        "/auth/login", json={"username": "alice", "password": "correct horse"}, headers=headers
    )
    sid = claims(cookie(victim, "__Host-dualtoken_at"))["sid"]
    before = session_hash(store, "1", sid)
    for proof in (own, "", own.upper()):
        answer = victim.post(
            "/auth/reauth",
            json={"username": "alice", "password": "correct horse"},
            headers={"X-CSRF-Token": proof},
        )
        assert answer.status_code == 403
        assert "Set-Cookie" not in answer.headers
    assert session_hash(store, "1", sid) == before


# -- (2) a session that outlives a credential change: attacks that found nothing ------------


def test_a_reissue_racing_credentials_changed_never_keeps_an_ended_session(
    make_app: Callable[..., Flask], users: Users
) -> None:
    """Reissues of another session at the very moment of the change: whichever runs
    first, that session and every pair it got are dead afterwards."""
    app = with_password_route(make_app())
    api = Api(app)
    kept, other = api.login(), api.login()
    kept = api.reauth(kept).json or {}
    start = threading.Barrier(3, timeout=WAIT)
    answers: list[Any] = []

    def reissue() -> None:
        client = Api(app)
        start.wait()
        answers.append(client.reissue(other))

    threads = [threading.Thread(target=reissue) for _ in range(2)]
    for thread in threads:
        thread.start()
    start.wait()
    assert change(api, kept, "a brand new one").json == {"kept": True}
    for thread in threads:
        thread.join(WAIT)
    assert len(answers) == 2
    for answer in answers:
        if answer.status_code == 200:  # rotated before the change: ended with it
            assert error_of(api.get("/me", answer.json["access_token"])) == "session_revoked"
            assert error_of(api.reissue(answer.json)) == "session_revoked"
    assert error_of(api.get("/me", other["access_token"])) == "session_revoked"
    assert api.reissue(kept).status_code == 200


def test_the_handover_window_serves_only_the_kept_session(
    make_app: Callable[..., Flask], users: Users
) -> None:
    """Within the 30 s in which the kept session still accepts its former stamp, another
    session reissuing with the user as it was before the change (an attacker's reissue
    under way at that moment), or one stored late with the old stamp (a login that raced
    the change), still ends: the former stamp is the kept session's only."""
    app = with_password_route(make_app())
    api = Api(app)
    kept, other = api.login(), api.login()
    before = dataclasses.replace(users.by_id["1"])
    users.by_id["1"].password_hash = generate_password_hash("new one", FAST_HASH)
    with app.test_request_context():
        dualtoken_of(app).credentials_changed(users.by_id["1"], keep_session=sid_of(kept))
        late = dualtoken_of(app).issue(before).to_dict()
    dualtoken_of(app).user_loader(lambda user_id: before if user_id == "1" else None)
    assert error_of(api.reissue(other)) == "session_revoked"
    kept = api.reissue(kept).json or {}  # the handover: the kept one only
    dualtoken_of(app).user_loader(users.load)
    assert error_of(api.reissue(late)) == "session_revoked"
    assert api.reissue(kept).status_code == 200


def test_a_digest_under_a_previous_secret_does_not_survive_a_password_change(
    make_app: Callable[..., Flask], users: Users
) -> None:
    """Secret rotation accepts digests made under DUALTOKEN_PREVIOUS_SECRET_KEYS; it must
    not accept the old stamp under them once the password changed."""
    old = Api(with_password_route(make_app()))
    pair = old.login()
    rotated = with_password_route(
        make_app(
            DUALTOKEN_SECRET_KEY="rotated-secret-" + "n" * 40,
            DUALTOKEN_PREVIOUS_SECRET_KEYS=[SECRET],
        )
    )
    users.by_id["1"].password_hash = generate_password_hash("new one", FAST_HASH)
    assert error_of(Api(rotated).reissue(pair)) == "session_revoked"


def test_a_session_from_before_the_loader_ends_with_credentials_changed(
    make_app: Callable[..., Flask], users: Users
) -> None:
    """A session stored before the app registered its stamp loader has no stamp; a
    credential change through credentials_changed still ends it at once."""
    app = make_app()
    api = Api(app)
    old, kept = api.login(), api.login()
    dualtoken_of(app).security_stamp_loader(lambda user: user.password_hash)
    users.by_id["1"].password_hash = generate_password_hash("new one", FAST_HASH)
    with app.test_request_context():
        assert dualtoken_of(app).credentials_changed(users.by_id["1"], keep_session=sid_of(kept))
    assert error_of(api.get("/me", old["access_token"])) == "session_revoked"
    assert error_of(api.reissue(old)) == "session_revoked"
    assert api.reissue(kept).status_code == 200


def test_equal_stamps_of_two_users_keep_them_apart(
    make_app: Callable[..., Flask], users: Users
) -> None:
    """A loader that returns the same value for every user (a shared counter left at 0):
    a change of Alice's credentials ends no session of Bob's, and Bob's digest is not
    Alice's."""
    app = make_app()
    dualtoken_of(app).security_stamp_loader(lambda user: "0")
    api = Api(app)
    alice, bob = api.login(), api.login("bob")
    store = app.extensions["dualtoken"].store
    assert (
        session_hash(store, "1", sid_of(alice))["stamp"]
        != (session_hash(store, "2", sid_of(bob))["stamp"])
    )
    with app.test_request_context():
        dualtoken_of(app).credentials_changed(users.by_id["1"])
    assert api.reissue(bob).status_code == 200
    assert error_of(api.reissue(alice)) == "session_revoked"


# -- (3) the re-authentication throttle: attacks that found nothing -------------------------


SPELLINGS = [
    "ALICE",
    "Alice",
    "\uff41\uff4c\uff49\uff43\uff45",
    "alice\u200b",
    " alice ",
    "ali\u0301ce",
]


def test_reauth_guesses_under_any_spelling_share_one_budget(api: Api) -> None:
    """Case, fullwidth letters, zero-width and combining characters, spaces: a thief with
    a stolen access token guessing the password under spellings an app's lookup may fold
    together gets one budget, shared with login."""
    pair = api.login()
    for name in SPELLINGS[:5]:
        assert api.reauth(pair, username=name, password="guess").status_code == 401
    for name in ("alice", SPELLINGS[5]):
        throttled = api.reauth(pair, username=name)  # the right password, unchecked
        assert throttled.status_code == 429
    assert (
        api.client.post(
            "/auth/login", json={"username": "alice", "password": "correct horse"}
        ).status_code
        == 429
    )


def test_a_burst_of_reauths_at_once_checks_no_more_passwords_than_the_limit(
    make_app: Callable[..., Flask], users: Users
) -> None:
    """Twelve wrong re-authentications released at the same instant from one stolen
    access token: at most DUALTOKEN_LOGIN_MAX_ATTEMPTS of them reach the password check."""
    app = make_app()
    checked: list[str] = []
    lock = threading.Lock()
    real = users.authenticate

    def counting(username: str, password: str) -> Any:
        with lock:
            checked.append(password)
        return real(username, password)

    dualtoken_of(app).authenticate(counting)
    pair = Api(app).login()
    start = threading.Barrier(12, timeout=WAIT)
    codes: list[int] = []

    def guess(i: int) -> None:
        client = Api(app)
        start.wait()
        codes.append(client.reauth(pair, password=f"guess {i}").status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert sorted(codes) == [401] * 5 + [429] * 7
    assert len(checked) == 1 + 5  # the login, then the five the limit allows


# -- (4) ending other sessions without a fresh login: attacks that found nothing ------------


def test_no_spelling_of_a_path_or_method_ends_another_session_without_a_fresh_login(
    make_app: Callable[..., Flask], clock: Clock
) -> None:
    """With DUALTOKEN_SESSION_ADMIN_FRESH, a stale token tries every variation of the
    caller's own session id (which is a logout and needs nothing) and of another's: case,
    trailing slash, percent-encoding, doubled slashes, query strings, other methods. None
    ends the other session, nor any session but possibly its own."""
    api = Api(make_app(DUALTOKEN_SESSION_ADMIN_FRESH=1))
    clock.align()
    stale, other = api.login(), api.login()
    clock.advance(2.2)
    own, theirs = sid_of(stale), sid_of(other)
    encoded = "".join(f"%{ord(c):02X}" for c in theirs)
    paths = [
        f"/auth/sessions/{theirs}/",
        f"/auth/sessions/{theirs.upper()}",
        f"/auth/sessions/{encoded}",
        f"/auth//sessions/{theirs}",
        f"/auth/sessions/{theirs}?sid={own}",
        f"/auth/sessions/{own}/../{theirs}",
        f"/auth/sessions/{own}%2F..%2F{theirs}",
        f"/auth/sessions/{theirs}%00",
        f"/auth/sessions/{theirs};{own}",
        f"/auth/sessions/{own},{theirs}",
        "/auth/sessions/*",
        "/auth/sessions",
    ]
    for path in paths:
        for method in ("DELETE", "POST", "PUT", "PATCH", "GET", "HEAD", "OPTIONS"):
            answer = api.client.open(path, method=method, headers=bearer(stale["access_token"]))
            assert answer.status_code != 204 or method == "DELETE", (path, method)
            assert api.get("/me", other["access_token"]).status_code == 200, (path, method)
    for method in ("POST", "PUT", "DELETE", "GET", "HEAD", "OPTIONS"):
        api.client.open("/auth/logout-all", method=method, headers=bearer(stale["access_token"]))
        api.client.open("/auth/logout-all/", method=method, headers=bearer(stale["access_token"]))
    assert api.get("/me", other["access_token"]).status_code == 200
    assert api.reissue(other).status_code == 200


# -- (5) errors, secrets and what the store keeps: attacks that found nothing ---------------


def every_stored_string(client: Any) -> list[str]:
    """Every key, field, member and value in the store, as text."""

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    found: list[str] = []
    for key in client.scan_iter("*"):
        found.append(text(key))
        kind = text(client.type(key))
        if kind == "hash":
            for field, value in client.hgetall(key).items():
                found += [text(field), text(value)]
        elif kind == "zset":
            found += [text(m) for m in client.zrange(key, 0, -1)]
        elif kind == "string":
            found.append(text(client.get(key)))
    return found


def test_no_password_stamp_or_token_reaches_the_store_or_the_log(
    make_app: Callable[..., Flask], users: Users, caplog: pytest.LogCaptureFixture
) -> None:
    """Login, failed and successful re-authentication, reissue, a password change through
    credentials_changed, a session ended for its stamp: Redis and the log hold no password,
    no password hash (the stamp), no token and no stamp key."""
    caplog.set_level(logging.DEBUG, logger="flask_dualtoken")
    app = with_password_route(make_app())
    api = Api(app)
    old_hash = users.by_id["1"].password_hash
    pair, other = api.login(), api.login()
    assert api.reauth(pair, password="wrong guess").status_code == 401
    pair = api.reauth(pair).json or {}
    other = api.reissue(other).json or {}
    assert change(api, pair, "the new secret password").status_code == 200
    pair = api.reissue(pair).json or {}
    late = api.login(password="the new secret password")
    users.by_id["1"].password_hash = "out-of-band-" + old_hash  # changed by an admin tool
    assert error_of(api.reissue(late)) == "session_revoked"
    state = app.extensions["dualtoken"]
    stored = "\n".join(every_stored_string(state.store.client))
    secrets = [
        "correct horse",
        "wrong guess",
        "the new secret password",
        old_hash,
        users.by_id["1"].password_hash,
        SECRET,
        *(p[k] for p in (pair, other, late) for k in ("access_token", "refresh_token")),
    ]
    for secret in secrets:
        assert secret not in stored
        assert secret not in caplog.text
    assert "StampKeys(<1 hidden>)" in repr(state)


def test_reauth_for_a_user_gone_or_disabled_is_a_401_never_a_500(
    make_app: Callable[..., Flask], users: Users
) -> None:
    """The access token still verifies, its user is gone (or disabled) before the
    re-authentication: the password no longer authenticates anyone; nothing is stored."""
    app = with_password_route(make_app())
    api = Api(app)
    pair, bob = api.login(), api.login("bob")
    users.by_id["2"].active = False
    assert error_of(api.reauth(bob, username="bob")) == "invalid_credentials"
    del users.by_id["1"]
    assert error_of(api.reauth(pair)) == "invalid_credentials"
    users.add("alice")  # a new alice, id 3: not the token's user
    assert error_of(api.reauth(pair)) == "invalid_credentials"
    assert error_of(api.reissue(pair)) == "user_unavailable"


def test_a_stamp_loader_that_fails_at_reauth_stores_nothing(
    make_app: Callable[..., Flask], users: Users
) -> None:
    """The stamp is read before the store is asked: a loader that breaks between the
    login and the re-authentication is a JSON 500, and the session is as it was."""
    app = make_app()
    dualtoken = dualtoken_of(app)
    dualtoken.security_stamp_loader(lambda user: user.password_hash)
    api = Api(app)
    pair = api.login()
    store = app.extensions["dualtoken"].store
    before = session_hash(store, "1", sid_of(pair))
    dualtoken.security_stamp_loader(lambda user: None)
    answer = api.reauth(pair)
    assert answer.status_code == 500
    assert error_of(answer) == "server_misconfigured"
    assert session_hash(store, "1", sid_of(pair)) == before


# -- (6) Redis down in the middle of a flow: attacks that found nothing ---------------------


@pytest.fixture
def outage() -> tuple[fakeredis.FakeServer, fakeredis.FakeRedis]:
    """A store this test can take down and bring back at any point of a request."""
    server = fakeredis.FakeServer()
    return server, fakeredis.FakeRedis(server=server)


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503
    assert error_of(response) == "store_unavailable"
    assert "Set-Cookie" not in response.headers
    assert "token" not in response.get_data(as_text=True).replace("store_unavailable", "")


@pytest.mark.parametrize("location", ["headers", "cookies"])
def test_redis_lost_between_the_password_check_and_the_rotation_issues_nothing(
    outage: tuple[fakeredis.FakeServer, fakeredis.FakeRedis], users: Users, location: str
) -> None:
    """The attempt is reserved, the password checked, then Redis goes: 503, no pair, no
    cookie; back again, the session is exactly as it was and its pair still works."""
    server, client = outage
    app = build_app(
        client, users, DUALTOKEN_REVOCATION="expiry", DUALTOKEN_TOKEN_LOCATION=location
    )
    real = users.authenticate

    def authenticate_then_lose_redis(username: str, password: str) -> Any:
        user = real(username, password)
        server.connected = False
        return user

    browser = app.test_client()
    body = {"username": "alice", "password": "correct horse"}
    login = browser.post("/auth/login", json=body)
    store = app.extensions["dualtoken"].store
    if location == "headers":
        pair: dict[str, Any] = login.json or {}
        headers = bearer(pair["access_token"])
        sid = sid_of(pair)
    else:
        csrf = cookie(browser, CSRF)
        headers = {"X-CSRF-Token": csrf}
        sid = claims(cookie(browser, "__Host-dualtoken_at"))["sid"]
    before = session_hash(store, "1", sid)
    dualtoken_of(app).authenticate(authenticate_then_lose_redis)
    assert_unavailable(browser.post("/auth/reauth", json=body, headers=headers))
    server.connected = True
    assert session_hash(store, "1", sid) == before
    dualtoken_of(app).authenticate(real)
    if location == "headers":
        assert Api(app).reissue(pair).status_code == 200
    else:
        assert browser.post("/auth/reissue", headers=headers).status_code == 200


def test_redis_down_at_a_password_change_ends_nothing_and_commits_nothing(
    outage: tuple[fakeredis.FakeServer, fakeredis.FakeRedis], users: Users
) -> None:
    """credentials_changed before the commit, as the recipe says: with Redis unreachable it
    raises (503) before the app commits, so the password never changes while the old
    sessions live on; back again, every session is as it was."""
    server, client = outage
    app = build_app(client, users, DUALTOKEN_REVOCATION="expiry")
    dualtoken = dualtoken_of(app)
    dualtoken.security_stamp_loader(lambda user: user.password_hash)
    committed: list[str] = []

    @app.post("/account/password")
    @jwt_required(fresh=True)
    def change_password() -> dict[str, Any]:
        pending = dataclasses.replace(
            current_user._get_current_object(),
            password_hash=generate_password_hash("new one", FAST_HASH),
        )
        kept = dualtoken.credentials_changed(pending, keep_session=get_jwt()["sid"])
        users.by_id[str(pending.id)] = pending  # the commit
        committed.append(pending.password_hash)
        return {"kept": kept}

    api = Api(app)
    pair, other = api.login(), api.login()
    server.connected = False
    assert_unavailable(change(api, pair, "new one"))
    server.connected = True
    assert committed == []
    assert api.reissue(other).status_code == 200
    assert api.reissue(pair).status_code == 200
    assert api.login()  # the old password still works: nothing changed
