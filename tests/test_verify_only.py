"""A verify-only app: DUALTOKEN_JWKS_URL (or DUALTOKEN_PUBLIC_KEYS) and no secret, no store,
no routes. It checks another app's EdDSA access tokens with @jwt_required, roles and fresh=
included, and cannot issue one.

The issuing app is served for real on a loopback port; the key set is fetched from the
configured URL only, with a timeout and a size cap, and fetched again on an unknown key id
at most once per REFETCH_INTERVAL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
import pytest
from flask import Flask
from forge import b64
from helpers import SECRET, Api, Users, bearer, served, verifier_app, wsgi

from flask_dualtoken import ConfigError, DualToken, remote_keys
from flask_dualtoken.ed25519 import AccessKeyPair
from flask_dualtoken.state import get_state

NEW_SECRET = "rotated-secret-" + "n" * 40
A_KEY = AccessKeyPair.from_secret(SECRET.encode()).jwk()


@pytest.fixture
def issuer(make_app: Any) -> Flask:
    app: Flask = make_app(DUALTOKEN_ACCESS_ALGORITHM="EdDSA")
    return app


@contextmanager
def verifying(issuer: Flask, users: Users) -> Iterator[tuple[Api, Any]]:
    with served(issuer) as (origin, counting):
        app = verifier_app(users, DUALTOKEN_JWKS_URL=f"{origin}/auth/jwks.json")
        yield Api(app), counting


# -- what it does ------------------------------------------------------------------------------


def test_it_verifies_the_issuers_tokens_with_roles_and_fresh(issuer: Flask, users: Users) -> None:
    alice, bob = Api(issuer).login(), Api(issuer).login("bob")
    with verifying(issuer, users) as (verifier, counting):
        assert verifier.get_json("/me", alice) == {"id": 1, "role": "admin"}
        assert verifier.get("/admin", alice["access_token"]).status_code == 200
        refused = verifier.get("/admin", bob["access_token"])
        assert refused.status_code == 403
        assert refused.json["error"] == "insufficient_role"
        assert verifier.get("/fresh", alice["access_token"]).status_code == 200
        assert verifier.get("/me").json["error"] == "token_missing"
        assert verifier.get_json("/optional", {"access_token": bob["access_token"]}) == {
            "user": "bob"
        }
        assert counting.hits == {"/auth/jwks.json": 1}


def test_a_stamp_loader_needs_no_store_here(issuer: Flask, users: Users) -> None:
    """The issuer checks stamps; a verify-only app has no session to compare them with."""
    pair = Api(issuer).login()
    with verifying(issuer, users) as (verifier, _):
        dualtoken: DualToken = verifier.client.application.extensions["dualtoken_object"]
        dualtoken.security_stamp_loader(lambda user: user.password_hash)
        assert verifier.get("/fresh", pair["access_token"]).status_code == 200


def test_fresh_is_measured_from_the_issuers_auth_time(issuer: Flask, users: Users) -> None:
    pair = Api(issuer).login()
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    with verifying(issuer, users) as (verifier, _):
        assert verifier.get("/fresh", pair["access_token"]).status_code == 200
        # The same token seen 61 s after its login: too old for fresh=60.
        later = claims["auth_time"] + 61
        original = time.time
        try:
            time.time = lambda: float(later)  # type: ignore[assignment]
            refused = verifier.get("/fresh", pair["access_token"])
        finally:
            time.time = original  # type: ignore[assignment]
        assert refused.status_code == 401
        assert refused.json["error"] == "insufficient_user_authentication"


def test_it_serves_no_routes_and_refuses_to_issue(issuer: Flask, users: Users) -> None:
    with verifying(issuer, users) as (verifier, _):
        app = verifier.client.application
        assert not [r.rule for r in app.url_map.iter_rules() if r.rule.startswith("/auth")]
        assert verifier.client.post("/auth/login", json={}).status_code == 404
        dualtoken: DualToken = app.extensions["dualtoken_object"]
        user = users.by_id["1"]
        with app.test_request_context():
            for call in (
                lambda: dualtoken.issue(user),
                lambda: dualtoken.revoke_session("1", "x" * 22),
                lambda: dualtoken.revoke_all_sessions("1"),
                lambda: dualtoken.list_sessions("1"),
                lambda: dualtoken.credentials_changed(user),
            ):
                with pytest.raises(RuntimeError, match="verify-only"):
                    call()
            with pytest.raises(RuntimeError, match="verify-only"):
                get_state().store  # noqa: B018 - no store to reach


def test_it_refuses_what_the_issuer_would_refuse(
    issuer: Flask, users: Users, make_app: Any
) -> None:
    pair = Api(issuer).login()
    hs256 = Api(make_app()).login()["access_token"]
    other_issuer = Api(
        make_app(DUALTOKEN_ACCESS_ALGORITHM="EdDSA", DUALTOKEN_SECRET_KEY=NEW_SECRET)
    )
    head, _, signature = pair["access_token"].split(".")
    claims = {**jwt.decode(pair["access_token"], options={"verify_signature": False})}
    tampered = f"{head}.{b64(json.dumps({**claims, 'role': 'root'}).encode())}.{signature}"
    with verifying(issuer, users) as (verifier, _):
        for token in (
            pair["refresh_token"],
            hs256,
            other_issuer.login()["access_token"],
            tampered,
            "garbage",
        ):
            assert verifier.get("/me", token).json["error"] == "token_invalid", token


def test_an_ended_session_is_not_known_until_its_token_expires(
    issuer: Flask, users: Users
) -> None:
    """No store here: what introspection would tell, a key set cannot."""
    issuing = Api(issuer)
    pair = issuing.login()
    assert issuing.logout(pair).status_code == 204
    with verifying(issuer, users) as (verifier, _):
        assert verifier.get("/me", pair["access_token"]).status_code == 200


def test_static_public_keys_need_no_fetch(issuer: Flask, users: Users) -> None:
    key_set = issuer.test_client().get("/auth/jwks.json").json
    verifier = Api(verifier_app(users, DUALTOKEN_PUBLIC_KEYS=key_set))
    pair = Api(issuer).login()
    assert verifier.get("/me", pair["access_token"]).status_code == 200


# -- the fetch ------------------------------------------------------------------------------


def test_made_up_key_ids_make_it_fetch_at_most_once_per_interval(
    issuer: Flask, users: Users
) -> None:
    token = Api(issuer).login()["access_token"]
    _, payload, signature = token.split(".")
    with verifying(issuer, users) as (verifier, counting):
        assert verifier.get("/me", token).status_code == 200
        for n in range(30):
            header = b64(f'{{"alg":"EdDSA","typ":"at+jwt","kid":"random-{n}"}}'.encode())
            forged = f"{header}.{payload}.{signature}"
            assert verifier.get("/me", forged).json["error"] == "token_invalid"
        assert counting.hits == {"/auth/jwks.json": 1}


def test_a_new_secrets_key_is_fetched_when_its_kid_first_comes(
    make_app: Any, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_keys, "REFETCH_INTERVAL", 0)
    old = make_app(DUALTOKEN_ACCESS_ALGORITHM="EdDSA")
    rotated = make_app(
        DUALTOKEN_ACCESS_ALGORITHM="EdDSA",
        DUALTOKEN_SECRET_KEY=NEW_SECRET,
        DUALTOKEN_PREVIOUS_SECRET_KEYS=[SECRET],
    )
    old_token = Api(old).login()["access_token"]
    new_token = Api(rotated).login()["access_token"]
    answers = {"app": old}

    def switching(environ: dict[str, Any], start_response: Any) -> Any:
        return answers["app"](environ, start_response)

    with served(switching) as (origin, counting):
        verifier = Api(verifier_app(users, DUALTOKEN_JWKS_URL=f"{origin}/auth/jwks.json"))
        assert verifier.get("/me", old_token).status_code == 200
        answers["app"] = rotated  # the issuer now publishes the new secret's key too
        assert verifier.get("/me", new_token).status_code == 200
        assert verifier.get("/me", old_token).status_code == 200
        assert counting.hits == {"/auth/jwks.json": 2}


def test_a_redirect_is_not_followed_to_another_origin(issuer: Flask, users: Users) -> None:
    pair = Api(issuer).login()
    with served(issuer) as (real, real_hits):
        moved = wsgi("302 Found", b"", (("Location", f"{real}/auth/jwks.json"),))
        with served(moved) as (origin, _):
            verifier = Api(verifier_app(users, DUALTOKEN_JWKS_URL=f"{origin}/auth/jwks.json"))
            response = verifier.get("/me", pair["access_token"])
    assert response.status_code == 503
    assert response.json["error"] == "keys_unavailable"
    assert real_hits.hits == {}


@pytest.mark.parametrize(
    "body",
    [
        b"{" * 100_000,  # deep and over the size cap
        b"[" * 60_000,  # under the cap, too deep for the parser
        json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "A" * 43}] * 5000}).encode(),
        b"not json",
        b'{"keys": "none"}',
        b"[]",
        json.dumps({"keys": [{"kty": "RSA", "kid": "k", "n": "x", "e": "AQAB"}]}).encode(),
        json.dumps(
            {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "short"}]}
        ).encode(),
        json.dumps(
            {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "A" * 43, "alg": "HS256"}]}
        ).encode(),
        "\ud800".encode("utf-8", "surrogatepass"),
    ],
)
def test_a_malformed_or_huge_key_set_is_refused_as_503(
    issuer: Flask, users: Users, body: bytes
) -> None:
    pair = Api(issuer).login()
    with served(wsgi("200 OK", body)) as (origin, _):
        verifier = Api(verifier_app(users, DUALTOKEN_JWKS_URL=f"{origin}/jwks.json"))
        response = verifier.get("/me", pair["access_token"])
    assert response.status_code == 503
    assert response.json["error"] == "keys_unavailable"
    assert response.headers["Retry-After"] == "30"


def test_a_slow_key_set_times_out(
    issuer: Flask, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_keys, "FETCH_TIMEOUT", 0.3)
    pair = Api(issuer).login()

    def slow(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        time.sleep(1.5)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    with served(slow) as (origin, _):
        verifier = Api(verifier_app(users, DUALTOKEN_JWKS_URL=f"{origin}/jwks.json"))
        started = time.monotonic()
        response = verifier.get("/me", pair["access_token"])
        assert time.monotonic() - started < 1.2
    assert response.json["error"] == "keys_unavailable"


def test_keys_in_hand_outlive_a_failed_refetch(
    issuer: Flask, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = Api(issuer).login()
    answers = {"app": issuer}

    def switching(environ: dict[str, Any], start_response: Any) -> Any:
        return answers["app"](environ, start_response)

    with served(switching) as (origin, counting):
        verifier = Api(verifier_app(users, DUALTOKEN_JWKS_URL=f"{origin}/auth/jwks.json"))
        assert verifier.get("/me", pair["access_token"]).status_code == 200
        monkeypatch.setattr(remote_keys, "KEYS_LIFETIME", 0)
        monkeypatch.setattr(remote_keys, "REFETCH_INTERVAL", 0)
        answers["app"] = wsgi("500 Internal Server Error", b"{}")
        another = Api(issuer).login()  # not in the memo of verified tokens: needs its key
        assert verifier.get("/me", another["access_token"]).status_code == 200
        assert counting.hits == {"/auth/jwks.json": 2}


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"DUALTOKEN_SECRET_KEY": SECRET}, "must not hold the secret"),
        ({"DUALTOKEN_PREVIOUS_SECRET_KEYS": [SECRET]}, "must not hold the secret"),
        ({"DUALTOKEN_ACCESS_ALGORITHM": "HS256"}, "DUALTOKEN_ACCESS_ALGORITHM = 'EdDSA'"),
        ({"DUALTOKEN_TOKEN_LOCATION": "cookies"}, "Authorization header"),
        ({"DUALTOKEN_REVOCATION": "strict"}, "cannot know that a session ended"),
        ({"DUALTOKEN_REVOCATION": "push"}, "cannot know that a session ended"),
        ({"DUALTOKEN_PUBLIC_KEYS": {"keys": [A_KEY]}}, "not both"),
    ],
)
def test_a_verify_only_app_is_checked_at_start_up(
    users: Users, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        verifier_app(users, DUALTOKEN_JWKS_URL="https://auth.example/auth/jwks.json", **config)


@pytest.mark.parametrize(
    "url",
    [
        "http://auth.example/auth/jwks.json",  # plain http beyond loopback
        "ftp://auth.example/jwks.json",
        "file:///etc/passwd",
        "https://user:pw@auth.example/jwks.json",
        "https:///jwks.json",
        "https://auth.example/jwks.json#frag",
        "",
        42,
    ],
)
def test_the_key_set_url_must_be_https(users: Users, url: Any) -> None:
    with pytest.raises(ConfigError, match="DUALTOKEN_JWKS_URL"):
        verifier_app(users, DUALTOKEN_JWKS_URL=url)


@pytest.mark.parametrize("keys", [[], {"keys": []}, {"keys": [{"kty": "OKP"}]}, "jwks", 1])
def test_static_public_keys_are_checked_at_start_up(users: Users, keys: Any) -> None:
    with pytest.raises(ConfigError, match="DUALTOKEN_PUBLIC_KEYS"):
        verifier_app(users, DUALTOKEN_PUBLIC_KEYS=keys)


def test_flasks_own_secret_key_is_no_obstacle(users: Users) -> None:
    app = verifier_app(
        users, SECRET_KEY="flask-sessions-" + "k" * 40, DUALTOKEN_JWKS_URL="https://a.example/j"
    )
    assert get_state(app).settings.secret == b""
    assert "k" * 40 not in repr(get_state(app).settings)


def test_the_token_in_a_bearer_header_only(issuer: Flask, users: Users) -> None:
    pair = Api(issuer).login()
    with verifying(issuer, users) as (verifier, _):
        response = verifier.client.get("/me", headers={**bearer(pair["access_token"])})
        assert response.status_code == 200
