"""Attack: cookie tossing. The refresh cookie cannot carry the ``__Host-`` prefix (its path
is not ``/``), so a sibling subdomain can set a second ``__Secure-dualtoken_rt`` for the
same paths. With several refresh cookies the server uses the one whose session the CSRF
proof belongs to, and never clears the page's cookies because of a planted one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from helpers import Users
from werkzeug.test import TestResponse

from flask_dualtoken.cookies import MAX_REFRESH_COOKIES
from flask_dualtoken.state import get_state

RT, CSRF = "__Secure-dualtoken_rt", "__Host-dualtoken_csrf"


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(DUALTOKEN_TOKEN_LOCATION="cookies")


def cookie_login(app: Flask, username: str = "alice") -> dict[str, str]:
    """Log in as a browser would; the cookies it was given, by name."""
    response = app.test_client().post(
        "/auth/login", json={"username": username, "password": "correct horse"}
    )
    assert response.status_code == 200
    cookies = {}
    for header in response.headers.getlist("Set-Cookie"):
        name, _, rest = header.partition("=")
        cookies[name] = rest.partition(";")[0]
    return cookies


def send(app: Flask, path: str, refresh_cookies: list[str], csrf: str) -> TestResponse:
    """A request whose Cookie header carries these refresh cookies, in this order."""
    client = app.test_client(use_cookies=False)
    jar = "; ".join(f"{RT}={value}" for value in refresh_cookies)
    return client.post(path, headers={"Cookie": jar, "X-CSRF-Token": csrf})


def clears_cookies(response: TestResponse) -> bool:
    return any("Max-Age=0" in h for h in response.headers.getlist("Set-Cookie"))


@pytest.mark.parametrize("planted_first", [True, False])
def test_a_planted_refresh_cookie_does_not_stop_a_reissue(
    app: Flask, users: Users, planted_first: bool
) -> None:
    users.add("mallory")
    victim, attacker = cookie_login(app), cookie_login(app, "mallory")
    order = [attacker[RT], victim[RT]] if planted_first else [victim[RT], attacker[RT]]
    response = send(app, "/auth/reissue", order, victim[CSRF])
    assert response.status_code == 200
    csrf = response.json["csrf_token"]
    assert csrf == victim[CSRF], "the victim's session was rotated, not the attacker's"


def test_a_planted_cookie_of_no_session_never_clears_the_pages_cookies(app: Flask) -> None:
    victim = cookie_login(app)
    response = send(app, "/auth/reissue", ["garbage~garbage", victim[RT]], victim[CSRF])
    assert response.status_code == 200
    assert not clears_cookies(response)


def test_with_several_cookies_and_none_matching_the_proof_it_is_403_and_nothing_cleared(
    app: Flask, users: Users
) -> None:
    users.add("mallory")
    victim, attacker = cookie_login(app), cookie_login(app, "mallory")
    response = send(app, "/auth/reissue", [attacker[RT], victim[RT]], "not-the-proof")
    assert (response.status_code, response.json["error"]) == (403, "csrf_failed")
    assert not clears_cookies(response)
    assert send(app, "/auth/reissue", [victim[RT]], victim[CSRF]).status_code == 200


def test_a_failing_pick_among_several_cookies_clears_nothing(app: Flask, users: Users) -> None:
    victim = cookie_login(app)
    assert send(app, "/auth/logout", [victim[RT]], victim[CSRF]).status_code == 204
    # The session is over; with a planted cookie beside it, the 401 still clears nothing.
    response = send(app, "/auth/reissue", ["x~y", victim[RT]], victim[CSRF])
    assert response.status_code == 401
    assert not clears_cookies(response)


def test_one_failing_refresh_cookie_is_still_cleared(app: Flask) -> None:
    victim = cookie_login(app)
    assert send(app, "/auth/logout", [victim[RT]], victim[CSRF]).status_code == 204
    response = send(app, "/auth/reissue", [victim[RT]], victim[CSRF])
    assert response.status_code == 401
    assert clears_cookies(response)


def test_logout_with_a_planted_cookie_ends_the_pages_session(app: Flask, users: Users) -> None:
    users.add("mallory")
    victim, attacker = cookie_login(app), cookie_login(app, "mallory")
    assert send(app, "/auth/logout", [attacker[RT], victim[RT]], victim[CSRF]).status_code == 204
    assert send(app, "/auth/reissue", [victim[RT]], victim[CSRF]).status_code == 401
    assert send(app, "/auth/reissue", [attacker[RT]], attacker[CSRF]).status_code == 200


def test_a_flood_of_planted_cookies_is_looked_at_only_so_far(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = cookie_login(app)
    jar = get_state(app).cookies
    proved: list[Any] = []
    real = jar._proves

    def counting(session_id: str, proof: str | None) -> bool:
        proved.append(session_id)
        return real(session_id, proof)

    monkeypatch.setattr(jar, "_proves", counting)
    planted = [f"x{i}~y" for i in range(200)]
    response = send(app, "/auth/reissue", [*planted, victim[RT]], victim[CSRF])
    assert response.status_code == 403
    assert len(proved) <= MAX_REFRESH_COOKIES


def sandwich(app: Flask, path: str, inner: str, csrf: str) -> TestResponse:
    """A planted cookie that opens a double quote, ours, and one that closes it: a parser
    that reads quoted values across ';' sees a single cookie and not ours."""
    client = app.test_client(use_cookies=False)
    header = f'a="; {inner}; z=x"'
    return client.post(path, headers={"Cookie": header, "X-CSRF-Token": csrf})


def test_a_cookie_sandwich_neither_hides_the_refresh_cookie_nor_clears_anything(
    app: Flask,
) -> None:
    victim = cookie_login(app)
    response = sandwich(app, "/auth/reissue", f"{RT}={victim[RT]}", victim[CSRF])
    assert response.status_code == 200
    assert not clears_cookies(response)


def test_a_cookie_sandwich_does_not_hide_the_access_cookie(app: Flask) -> None:
    victim = cookie_login(app)
    client = app.test_client(use_cookies=False)
    header = f'a="; __Host-dualtoken_at={victim["__Host-dualtoken_at"]}; z=x"'
    assert client.get("/me", headers={"Cookie": header}).status_code == 200


def test_a_request_without_any_refresh_cookie_clears_nothing(app: Flask) -> None:
    client = app.test_client(use_cookies=False)
    response = client.post("/auth/reissue", headers={"Cookie": 'a="x; z=y"'})
    assert (response.status_code, response.json["error"]) == (401, "token_missing")
    assert not clears_cookies(response)


AT = "__Secure-dualtoken_at"  # with a cookie domain the access cookie loses __Host-


@pytest.fixture
def domain_app(make_app: Callable[..., Flask], users: Users) -> Flask:
    users.add("mallory")
    return make_app(DUALTOKEN_TOKEN_LOCATION="cookies", DUALTOKEN_COOKIE_DOMAIN="example.test")


def test_a_planted_access_cookie_never_serves_the_page_as_another_account(
    domain_app: Flask,
) -> None:
    victim, attacker = cookie_login(domain_app), cookie_login(domain_app, "mallory")
    client = domain_app.test_client(use_cookies=False)
    jar = f"{AT}={attacker[AT]}; {AT}={victim[AT]}"
    response = client.get("/me", headers={"Cookie": jar})
    assert (response.status_code, response.json["error"]) == (401, "token_invalid")
    csrf = victim["__Secure-dualtoken_csrf"]
    proven = client.get("/me", headers={"Cookie": jar, "X-CSRF-Token": csrf})
    assert (proven.status_code, proven.json["id"]) == (200, 1)


def test_logout_all_through_a_cookie_sandwich_still_clears_the_pages_cookies(
    app: Flask,
) -> None:
    victim = cookie_login(app)
    client = app.test_client(use_cookies=False)
    header = (
        f'a="; __Host-dualtoken_at={victim["__Host-dualtoken_at"]}; {CSRF}={victim[CSRF]}; z=x"'
    )
    response = client.post(
        "/auth/logout-all", headers={"Cookie": header, "X-CSRF-Token": victim[CSRF]}
    )
    assert response.status_code == 204
    assert clears_cookies(response)
