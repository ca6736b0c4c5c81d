"""Login throttling: failed logins counted per username and per client address."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from helpers import Api, Clock, Users
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_dualtoken import signals
from flask_dualtoken.state import get_state


def attempt(api: Api, username: str = "alice", password: str = "wrong", **kw: Any) -> Any:
    return api.client.post("/auth/login", json={"username": username, "password": password}, **kw)


def test_the_sixth_attempt_after_five_failures_is_429_with_retry_after(api: Api) -> None:
    for _ in range(5):
        assert attempt(api).status_code == 401
    response = attempt(api)
    assert response.status_code == 429
    assert response.json["error"] == "too_many_attempts"
    assert 290 <= int(response.headers["Retry-After"]) <= 300


def test_a_throttled_username_is_refused_even_with_the_right_password(
    make_app: Any, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real = users.authenticate

    def authenticate(username: str, password: str) -> Any:
        checked.append(username)
        return real(username, password)

    monkeypatch.setattr(users, "authenticate", authenticate)
    api = Api(make_app())
    for _ in range(5):
        attempt(api)
    assert len(checked) == 5
    assert attempt(api, password="correct horse").status_code == 429
    assert len(checked) == 5, "no password is checked while throttled"


def test_usernames_are_counted_case_folded(api: Api) -> None:
    for name in ("alice", "Alice", "ALICE", "aLiCe", "alicE"):
        attempt(api, name)
    assert attempt(api).status_code == 429


def test_other_usernames_are_not_affected(api: Api) -> None:
    for _ in range(5):
        attempt(api)
    assert attempt(api, "bob", "correct horse").status_code == 200


def test_a_success_gives_back_its_own_attempt_and_clears_no_failure(api: Api) -> None:
    for _ in range(4):
        attempt(api)
    for _ in range(3):
        api.login()  # successes cost nothing
    assert attempt(api).status_code == 401  # the fifth failure of the same window
    assert attempt(api).status_code == 429


def test_a_login_as_one_spelling_never_clears_guesses_at_another(
    make_app: Any, users: Users
) -> None:
    # Two accounts whose names fold to one: what guesses at one counted must stand.
    users.add("carol", "carol-password")
    users.add("CAROL", "CAROL-password")
    api = Api(make_app())
    for _ in range(4):
        assert attempt(api, "carol").status_code == 401
    assert attempt(api, "CAROL", "CAROL-password").status_code == 200
    assert attempt(api, "carol").status_code == 401
    assert attempt(api, "carol").status_code == 429
    assert attempt(api, "carol", "carol-password").status_code == 429


def test_a_counter_left_without_expiry_gets_one(app: Flask, api: Api) -> None:
    state = get_state(app)
    key = state.throttle._counters("alice", "127.0.0.1")[0].key
    state.store.client.set(key, 2)  # as a non-atomic SET NX EX then INCR could leave it
    assert attempt(api).status_code == 401
    assert 0 < state.store.client.ttl(key) <= 300
    state.store.client.set(key, 9)
    assert attempt(api).status_code == 429
    assert 0 < state.store.client.ttl(key) <= 300


def test_every_counter_carries_its_expiry_when_its_window_ends_mid_attempt(
    app: Flask, api: Api
) -> None:
    state = get_state(app)
    keys = [c.key for c in state.throttle._counters("alice", "127.0.0.1")]
    for _ in range(60):
        for key in keys:  # the window ends (about) now, between or inside our steps
            if state.store.client.exists(key):
                state.store.client.pexpire(key, 1)
        attempt(api)
        for key in keys:
            assert state.store.client.ttl(key) != -1, "a counter must never lose its expiry"


def test_the_window_ends_and_logins_work_again(make_app: Any, clock: Clock) -> None:
    api = Api(make_app(DUALTOKEN_LOGIN_WINDOW=1))
    for _ in range(5):
        attempt(api)
    assert attempt(api).status_code == 429
    clock.advance(1.2)
    assert attempt(api, password="correct horse").status_code == 200


def test_one_address_trying_many_usernames_is_throttled(make_app: Any) -> None:
    api = Api(make_app(DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=10))
    for i in range(10):
        assert attempt(api, f"user{i}").status_code == 401
    assert attempt(api, "bob", "correct horse").status_code == 429


def test_the_address_is_remote_addr_and_x_forwarded_for_alone_is_ignored(
    make_app: Any,
) -> None:
    api = Api(make_app(DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=3))
    for i in range(3):
        attempt(api, f"user{i}", headers={"X-Forwarded-For": f"203.0.113.{i}"})
    response = attempt(api, "other", headers={"X-Forwarded-For": "198.51.100.7"})
    assert response.status_code == 429


def test_behind_proxyfix_the_forwarded_client_address_counts(make_app: Any) -> None:
    app: Flask = make_app(DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=3)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    api = Api(app)
    for i in range(3):
        attempt(api, f"user{i}", headers={"X-Forwarded-For": "203.0.113.9"})
    blocked = attempt(api, "other", headers={"X-Forwarded-For": "203.0.113.9"})
    assert blocked.status_code == 429
    other_client = attempt(api, "other", headers={"X-Forwarded-For": "198.51.100.7"})
    assert other_client.status_code == 401


def test_zero_turns_the_limits_off(make_app: Any) -> None:
    api = Api(make_app(DUALTOKEN_LOGIN_MAX_ATTEMPTS=0, DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=0))
    for _ in range(12):
        assert attempt(api).status_code == 401


def test_throttling_sends_a_signal(app: Flask, api: Api) -> None:
    seen: list[dict[str, Any]] = []

    def receiver(sender: Flask, **kw: Any) -> None:
        seen.append(kw)

    with signals.login_throttled.connected_to(receiver, app):
        for _ in range(6):
            attempt(api)
    assert len(seen) == 1
    assert seen[0]["username"] == "alice"
    assert seen[0]["ip"] == "127.0.0.1"
    assert seen[0]["retry_after"] > 0


@pytest.mark.parametrize(
    "spellings",
    [
        # NFKC and case: fullwidth ALICE and alice, feminine ordinal a, script small l
        [
            "alice",
            "\uff21\uff2c\uff29\uff23\uff25",
            "\uff41\uff4c\uff49\uff43\uff45",
            "\u00aalice",
            "a\u2113ice",
            "alicE",
        ],
        ["alice", "alice ", " alice", "alice  ", "\talice"],  # collations that trim
        # invisible characters: zero-width space and joiners, word joiner, BOM, soft hyphen,
        # combining grapheme joiner, a variation selector
        [
            "alice",
            "al\u200bice",
            "a\u200clice\u200d",
            "\u2060alice",
            "ali\ufeffce",
            "al\u00adice",
            "ali\u034fce",
            "alice\ufe0f",
        ],
        # accents and dotted capital I, as accent-insensitive collations compare them
        ["alice", "ali\u0301ce", "\u00e1lice", "AL\u0130CE", "\u00c0LICE"],
        # case folding: sharp s, long s, capital sharp s
        ["stra\u00dfe", "STRASSE", "\u017ftra\u017f\u017fe", "strasse", "STRA\u1e9eE"],
    ],
)
def test_spellings_an_app_may_treat_as_one_share_one_budget(
    make_app: Any, users: Users, spellings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(users, "authenticate", lambda u, p: calls.append(u))
    api = Api(make_app())  # built after the patch, so its authenticate is the patched one
    for i in range(12):
        attempt(api, spellings[i % len(spellings)])
    assert len(calls) == 5
