"""Attacks on the "other services" features: the published key set, verify-only apps that
fetch it, introspection (both ends) and the revocation endpoint.

The first tests ("findings") are promises of docs/other-services.md (or issue 14) that an
attack found broken, kept as regressions since their fixes; the other tests are cheap
attacks that found nothing, kept as regressions too. Tests where the store plays no part
run on fakeredis only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote_plus

import fakeredis
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from forge import b64, forge
from helpers import (
    SECRET,
    Api,
    Users,
    app_on_url,
    build_app,
    served,
    sid_of,
    verifier_app,
    wsgi,
)

from flask_dualtoken import remote_introspection, remote_keys
from flask_dualtoken.keys import SigningKeys

FAKEREDIS_ONLY = pytest.mark.parametrize("redis_client", ["fakeredis"], indirect=True)
FORM = "application/x-www-form-urlencoded"
CLIENT_ID = "gateway"
CLIENT_SECRET = "gateway-introspection-secret-" + "g" * 30


def basic(client_id: str, secret: str) -> dict[str, str]:
    """HTTP Basic as RFC 6749 2.3.1 says: id and secret form-encoded first."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def introspect(app: Flask, token: str, headers: dict[str, str] | None = None) -> Any:
    return app.test_client().post(
        "/auth/introspect",
        data={"token": token},
        headers=basic(CLIENT_ID, CLIENT_SECRET) if headers is None else headers,
    )


@pytest.fixture
def issuer(make_app: Any) -> Flask:
    app: Flask = make_app(
        DUALTOKEN_ACCESS_ALGORITHM="EdDSA",
        DUALTOKEN_INTROSPECTION_CLIENTS={CLIENT_ID: CLIENT_SECRET},
    )
    return app


def static_verifier(issuer: Flask, users: Users, **config: Any) -> Api:
    """A verify-only app holding the issuer's key set inline: nothing fetched."""
    key_set = issuer.test_client().get("/auth/jwks.json").json
    return Api(verifier_app(users, DUALTOKEN_PUBLIC_KEYS=key_set, **config))


def asking(issuer: Flask, users: Users, url: str, **config: Any) -> Api:
    """A verify-only app with the issuer's keys inline that asks ``url`` by introspection."""
    return static_verifier(
        issuer,
        users,
        DUALTOKEN_INTROSPECTION_URL=url,
        DUALTOKEN_INTROSPECTION_CLIENT_ID=CLIENT_ID,
        DUALTOKEN_INTROSPECTION_CLIENT_SECRET=CLIENT_SECRET,
        **config,
    )


@contextmanager
def raw_server(answer: Any) -> Iterator[str]:
    """One-connection TCP server on 127.0.0.1: ``answer(conn)`` writes whatever bytes it
    likes after the request is read (a WSGI server always sends its headers at once)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def run() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                answer(conn)
            except OSError:
                pass  # the client gave up: what the test wants

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listener.close()
        thread.join(timeout=5)


# -- findings: the fetch of the key set ----------------------------------------------------


@FAKEREDIS_ONLY
def test_a_trickled_key_set_is_cut_at_the_fetch_timeout(
    issuer: Flask, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'A fetch gives up after 3 s': for the whole fetch, not per read, so a key set
    trickled a byte at a time cannot hold it (and the request) far past that."""
    monkeypatch.setattr(remote_keys, "FETCH_TIMEOUT", 0.3)
    pair = Api(issuer).login()
    done = threading.Event()

    def trickle(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        try:
            for _ in range(14):
                time.sleep(0.1)  # each wait well under the timeout, the whole well over it
                yield b" "
            yield b"{}"
        finally:
            done.set()

    with served(trickle) as (origin, _):
        verifier = Api(verifier_app(users, DUALTOKEN_JWKS_URL=f"{origin}/jwks.json"))
        started = time.monotonic()
        response = verifier.get("/me", pair["access_token"])
        elapsed = time.monotonic() - started
        done.wait(5)
    assert response.json["error"] == "keys_unavailable"
    assert elapsed < 1.0, f"the fetch took {elapsed:.2f} s with a 0.3 s timeout"


@FAKEREDIS_ONLY
def test_a_fetch_for_a_made_up_kid_does_not_hold_up_tokens_of_known_keys(
    issuer: Flask, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a made-up kid (or the 5-minute staleness) makes one request fetch from a slow
    issuer, the others go on with the keys in hand: one made-up kid per 30 s must not
    stall the whole verify-only app."""
    issuing = Api(issuer)
    first, second = issuing.login(), issuing.login("bob")
    _, payload, signature = first["access_token"].split(".")
    header = b64(b'{"alg":"EdDSA","typ":"at+jwt","kid":"made-up-kid"}')
    made_up = f"{header}.{payload}.{signature}"
    answers: dict[str, Any] = {"app": issuer}

    def slow_issuer(environ: dict[str, Any], start_response: Any) -> Any:
        time.sleep(1.0)
        return issuer(environ, start_response)

    def switching(environ: dict[str, Any], start_response: Any) -> Any:
        return answers["app"](environ, start_response)

    with served(switching) as (origin, _):
        verifier = Api(
            verifier_app(
                users,
                DUALTOKEN_JWKS_URL=f"{origin}/auth/jwks.json",
                DUALTOKEN_TOKEN_CACHE_SIZE=0,  # every request looks its key up
            )
        )
        assert verifier.get("/me", first["access_token"]).status_code == 200
        monkeypatch.setattr(remote_keys, "REFETCH_INTERVAL", 0)  # as 30 s later
        answers["app"] = slow_issuer
        results: list[int] = []
        attacker = threading.Thread(
            target=lambda: results.append(verifier.get("/me", made_up).status_code)
        )
        attacker.start()
        time.sleep(0.2)  # the made-up kid's fetch is under way
        started = time.monotonic()
        response = verifier.get("/me", second["access_token"])
        elapsed = time.monotonic() - started
        attacker.join(timeout=5)
    assert results == [401]
    assert response.status_code == 200
    assert elapsed < 0.5, f"a token of a known key waited {elapsed:.2f} s for the fetch"


@FAKEREDIS_ONLY
def test_an_app_without_keys_yet_waits_for_the_first_fetch_under_way(
    issuer: Flask, users: Users
) -> None:
    """The one case where a request waits for another's fetch: no key set in hand at all.
    Both requests pass, on one fetch."""
    pair = Api(issuer).login()

    def slow_issuer(environ: dict[str, Any], start_response: Any) -> Any:
        time.sleep(0.4)
        return issuer(environ, start_response)

    with served(slow_issuer) as (origin, counting):
        verifier = Api(verifier_app(users, DUALTOKEN_JWKS_URL=f"{origin}/auth/jwks.json"))
        results: list[int] = []
        first = threading.Thread(
            target=lambda: results.append(verifier.get("/me", pair["access_token"]).status_code)
        )
        first.start()
        time.sleep(0.1)  # the first fetch is under way
        second = verifier.get("/me", pair["access_token"])
        first.join(timeout=5)
    assert results == [200]
    assert second.status_code == 200
    assert counting.hits == {"/auth/jwks.json": 1}


# -- findings: the verify-only app's questions ----------------------------------------------


@FAKEREDIS_ONLY
def test_introspection_headers_trickled_past_the_deadline_are_cut(
    issuer: Flask, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'3 s for the whole question': headers trickled a line at a time are cut at the
    deadline too, not only the body."""
    monkeypatch.setattr(remote_introspection, "TIMEOUT", 0.3)
    pair = Api(issuer).login()

    def trickle(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        for _ in range(14):
            time.sleep(0.1)
            conn.sendall(b"X-Pad: 1\r\n")
        conn.sendall(b'Content-Length: 17\r\nConnection: close\r\n\r\n{"active": false}')

    with raw_server(trickle) as origin:
        verifier = asking(issuer, users, f"{origin}/auth/introspect")
        started = time.monotonic()
        response = verifier.get("/me", pair["access_token"])
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert elapsed < 1.0, f"the question took {elapsed:.2f} s with a 0.3 s deadline"


@FAKEREDIS_ONLY
def test_an_older_active_answer_does_not_replace_a_newer_inactive_one(
    issuer: Flask, users: Users
) -> None:
    """'Inactive answers are kept too (an ended session does not come back)': a slow
    "active", asked before the session ended, lands after a later "inactive" and must not
    replace it in the cache."""
    pair = Api(issuer).login()
    active = json.dumps({"active": True, "sub": "1", "sid": sid_of(pair)}).encode()
    asked: list[int] = []
    lock = threading.Lock()

    def issuing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with lock:
            asked.append(1)
            first = len(asked) == 1
        if first:
            time.sleep(0.6)  # asked while the session was alive, answered late
        start_response("200 OK", [("Content-Type", "application/json")])
        return [active if first else b'{"active": false}']

    with served(issuing) as (origin, _):
        verifier = asking(
            issuer, users, f"{origin}/introspect", DUALTOKEN_INTROSPECTION_CACHE_SECONDS=60
        )
        early: list[int] = []
        thread = threading.Thread(
            target=lambda: early.append(verifier.get("/me", pair["access_token"]).status_code)
        )
        thread.start()
        time.sleep(0.2)
        ended = verifier.get("/me", pair["access_token"])  # the session has ended since
        assert ended.json["error"] == "session_revoked"
        thread.join(timeout=5)
        assert early == [200]
        again = verifier.get("/me", pair["access_token"])
    assert len(asked) == 2
    assert again.status_code == 401, "an ended session came back from the cache"


# -- findings: the introspection and revocation endpoints ----------------------------------


@FAKEREDIS_ONLY
def test_failed_logins_from_a_shared_address_do_not_lock_out_an_introspection_client(
    make_app: Any,
) -> None:
    """Failed password logins by anyone sharing the client's address (a NAT, an egress
    proxy) must not make the right secret a 429, which would make the verify-only app
    that asks answer 503 to everyone."""
    app = make_app(
        DUALTOKEN_INTROSPECTION_CLIENTS={CLIENT_ID: CLIENT_SECRET},
        DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=3,
    )
    pair = Api(app).login()
    client = app.test_client()
    for name in ("bob", "carol", "dave"):  # password guessing, same address as the client
        wrong = client.post("/auth/login", json={"username": name, "password": "guess"})
        assert wrong.status_code == 401
    answer = introspect(app, pair["access_token"])
    assert answer.status_code == 200, answer.json
    assert answer.json["active"] is True


@FAKEREDIS_ONLY
def test_a_wrong_csrf_header_tells_nothing_about_the_token(make_app: Any) -> None:
    """POST /revoke 'answers 200 for any token, valid or not (no oracle)': in cookie mode
    too, a wrong CSRF header gets the same answer for a valid token as for garbage, so a
    stolen refresh token cannot be tested without using it."""
    app = make_app(DUALTOKEN_TOKEN_LOCATION="cookies", DUALTOKEN_ACCESS_COOKIE=False)
    browser = app.test_client()
    body = browser.post(
        "/auth/login",
        json={"username": "alice", "password": "correct horse"},
        headers={"X-Token-Transport": "cookies"},
    ).json
    wrong = {"X-CSRF-Token": "x" * 43}
    valid = browser.post("/auth/revoke", data={"token": body["access_token"]}, headers=wrong)
    forged = browser.post("/auth/revoke", data={"token": "not.a.token"}, headers=wrong)
    assert Api(app).get("/me", body["access_token"]).status_code == 200  # nothing ended
    assert (valid.status_code, valid.get_data()) == (forged.status_code, forged.get_data())


@FAKEREDIS_ONLY
def test_a_bytes_client_secret_either_works_or_is_refused_at_start_up(make_app: Any) -> None:
    """Client secrets may be bytes: one that is not UTF-8 (os.urandom) must authenticate
    when sent form-encoded (RFC 6749 2.3.1), or be refused at start-up."""
    secret = bytes(range(0x80, 0xA0)) + b"0123456789"
    try:
        app = make_app(DUALTOKEN_INTROSPECTION_CLIENTS={CLIENT_ID: secret})
    except Exception:  # refused at start-up: fine
        return
    token = Api(app).login()["access_token"]
    raw = f"{CLIENT_ID}:{quote_plus(secret)}".encode()  # RFC 6749 2.3.1
    answer = introspect(app, token, {"Authorization": "Basic " + base64.b64encode(raw).decode()})
    assert answer.status_code == 200, answer.json


@FAKEREDIS_ONLY
def test_a_bytes_client_secret_works_between_the_library_s_own_two_ends(
    make_app: Any, users: Users
) -> None:
    """It works (rather than being refused): a verify-only app holding the same bytes asks
    successfully, and one byte off is still a 401 (then 503)."""
    secret = bytes(range(0x80, 0xA0)) + b"0123456789+ %:"
    issuer = make_app(
        DUALTOKEN_ACCESS_ALGORITHM="EdDSA", DUALTOKEN_INTROSPECTION_CLIENTS={CLIENT_ID: secret}
    )
    pair = Api(issuer).login()
    key_set = issuer.test_client().get("/auth/jwks.json").json
    with served(issuer) as (origin, _):
        for given, status in ((secret, 200), (secret[:-1] + b"!", 503)):
            verifier = Api(
                verifier_app(
                    users,
                    DUALTOKEN_PUBLIC_KEYS=key_set,
                    DUALTOKEN_INTROSPECTION_URL=f"{origin}/auth/introspect",
                    DUALTOKEN_INTROSPECTION_CLIENT_ID=CLIENT_ID,
                    DUALTOKEN_INTROSPECTION_CLIENT_SECRET=given,
                )
            )
            assert verifier.get("/me", pair["access_token"]).status_code == status


# -- attacks that found nothing: what a verify-only app refuses ----------------------------


def _public_raw(issuer: Flask) -> bytes:
    x = issuer.test_client().get("/auth/jwks.json").json["keys"][0]["x"]
    return base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))


@FAKEREDIS_ONLY
def test_a_verify_only_app_refuses_every_algorithm_and_key_confusion(
    issuer: Flask, users: Users
) -> None:
    pair = Api(issuer).login()
    header = jwt.get_unverified_header(pair["access_token"])
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    claims["role"] = "root"
    kid = header["kid"]
    jwk = issuer.test_client().get("/auth/jwks.json").json["keys"][0]
    attacker = Ed25519PrivateKey.generate()
    attacker_x = b64(attacker.public_key().public_bytes_raw())
    typ = {"typ": "at+jwt", "kid": kid}
    hs256 = {"alg": "HS256", **typ}
    forged = [
        # HS256 with the public key (raw, its base64url, the JWK text) as the HMAC secret
        forge(hs256, claims, _public_raw(issuer)),
        forge(hs256, claims, jwk["x"].encode()),
        forge(hs256, claims, json.dumps(jwk).encode()),
        # the HS256 access key of the same secret: the issuer's own HMAC, wrong algorithm
        forge(hs256, claims, SigningKeys.from_secret(SECRET.encode()).access),
        # unsigned, in two spellings
        forge({"alg": "none", **typ}, claims, None),
        forge({"alg": "EdDSA", **typ}, claims, None),
        # an attacker's key, named by the real kid, and offered in the header itself
        jwt.encode(claims, attacker, algorithm="EdDSA", headers=typ),
        jwt.encode(
            claims,
            attacker,
            algorithm="EdDSA",
            headers={
                **typ,
                "jwk": {"kty": "OKP", "crv": "Ed25519", "x": attacker_x},
                "jku": "http://127.0.0.1:1/jwks.json",
            },
        ),
    ]
    verifier = static_verifier(issuer, users)
    for token in forged:
        response = verifier.get("/me", token)
        assert response.status_code == 401, token
        assert response.json["error"] == "token_invalid"
    assert verifier.get("/me", pair["access_token"]).status_code == 200


@FAKEREDIS_ONLY
@pytest.mark.parametrize(
    "kid",
    ["../../../../dev/null", "/etc/passwd", "k" * 5000, "", "\u202e", 7, None, ["x"], {"a": 1}],
)
def test_a_strange_kid_is_a_plain_401(issuer: Flask, users: Users, kid: Any) -> None:
    token = Api(issuer).login()["access_token"]
    _, payload, signature = token.split(".")
    header = b64(json.dumps({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}).encode())
    response = static_verifier(issuer, users).get("/me", f"{header}.{payload}.{signature}")
    assert response.status_code == 401
    assert response.json["error"] == "token_invalid"


@FAKEREDIS_ONLY
def test_the_key_set_publishes_nothing_derived_from_the_secret_but_public_keys(
    make_app: Any,
) -> None:
    previous = "previous-secret-" + "p" * 40
    app = make_app(DUALTOKEN_ACCESS_ALGORITHM="EdDSA", DUALTOKEN_PREVIOUS_SECRET_KEYS=[previous])
    text = app.test_client().get("/auth/jwks.json").get_data(as_text=True)
    for secret in (SECRET.encode(), previous.encode()):
        keys = SigningKeys.from_secret(secret)
        seed = hmac.new(secret, b"access-ed25519", hashlib.sha256).digest()
        for value in (secret, seed, keys.access, keys.refresh):
            for shown in (b64(value), value.hex(), base64.b64encode(value).decode()):
                assert shown not in text
    for jwk in json.loads(text)["keys"]:
        assert set(jwk) == {"kty", "crv", "x", "kid", "use", "alg"}


@FAKEREDIS_ONLY
def test_the_key_set_fetch_carries_no_credentials(issuer: Flask, users: Users) -> None:
    """The introspection client's secret goes to the introspection URL only: never with
    the key set fetch, even when both are on the same origin."""
    pair = Api(issuer).login()
    seen: list[tuple[str, str | None]] = []

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        seen.append((environ["PATH_INFO"], environ.get("HTTP_AUTHORIZATION")))
        return issuer(environ, start_response)

    with served(recording) as (origin, _):
        verifier = Api(
            verifier_app(
                users,
                DUALTOKEN_JWKS_URL=f"{origin}/auth/jwks.json",
                DUALTOKEN_INTROSPECTION_URL=f"{origin}/auth/introspect",
                DUALTOKEN_INTROSPECTION_CLIENT_ID=CLIENT_ID,
                DUALTOKEN_INTROSPECTION_CLIENT_SECRET=CLIENT_SECRET,
            )
        )
        assert verifier.get("/me", pair["access_token"]).status_code == 200
    assert [path for path, _ in seen] == ["/auth/jwks.json", "/auth/introspect"]
    assert seen[0][1] is None
    assert seen[1][1] == basic(CLIENT_ID, CLIENT_SECRET)["Authorization"]


@FAKEREDIS_ONLY
@pytest.mark.parametrize(
    "answer",
    [
        b'{"active": true}',  # no sub, no sid
        b'{"active": "true", "sub": "1"}',
        b'{"active": 1}',
        b'[{"active": true}]',
        b'{"active": true, "sub": 1, "sid": null}',
    ],
)
def test_a_lax_active_answer_lets_nothing_through(
    issuer: Flask, users: Users, answer: bytes
) -> None:
    pair = Api(issuer).login()
    with served(wsgi("200 OK", answer)) as (origin, _):
        verifier = asking(issuer, users, f"{origin}/introspect")
        response = verifier.get("/me", pair["access_token"])
    assert response.status_code == 503
    assert response.json["error"] == "introspection_unavailable"


@FAKEREDIS_ONLY
def test_a_refused_question_leaves_nothing_in_the_cache_to_poison(
    issuer: Flask, users: Users
) -> None:
    """A forged token (another key) is refused before any question, so it cannot plant an
    answer; and a real token's kept answer is keyed by its whole text."""
    pair = Api(issuer).login()
    head, payload, signature = pair["access_token"].split(".")
    with served(issuer) as (origin, counting):
        verifier = asking(
            issuer, users, f"{origin}/auth/introspect", DUALTOKEN_INTROSPECTION_CACHE_SECONDS=60
        )
        flipped = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
        assert verifier.get("/me", f"{head}.{payload}.{flipped}").status_code == 401
        assert counting.hits == {}
        assert verifier.get("/me", pair["access_token"]).status_code == 200
        assert counting.hits == {"/auth/introspect": 1}


# -- attacks that found nothing: the endpoints --------------------------------------------


@FAKEREDIS_ONLY
@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (basic("%67ateway", CLIENT_SECRET)["Authorization"], 401),  # "%" itself encoded
        (
            "Basic "
            + base64.b64encode(f"%67ateway:{quote_plus(CLIENT_SECRET)}".encode()).decode(),
            200,  # RFC 6749 2.3.1: the id form-decoded
        ),
        ("Basic " + base64.b64encode(b"gateway").decode(), 401),  # no colon
        ("Basic " + base64.b64encode(b"gateway:\xff\xfe" + b"g" * 40).decode(), 401),
        ("Basic !!!not-base64!!!", 401),
        ("Basic ", 401),
        (f"Bearer {CLIENT_SECRET}", 401),
        ("Basic " + base64.b64encode(f":{CLIENT_SECRET}".encode()).decode(), 401),
        ("Basic " + base64.b64encode(f"gateway:{CLIENT_SECRET}:x".encode()).decode(), 401),
        ("Basic " + base64.b64encode(f"gateway\x00:{CLIENT_SECRET}".encode()).decode(), 401),
        ("Basic " + base64.b64encode(b"x" * 6000).decode(), 401),
    ],
)
def test_http_basic_edge_cases_are_json_and_never_500(
    issuer: Flask, authorization: str, status: int
) -> None:
    response = introspect(issuer, "t", {"Authorization": authorization})
    assert response.status_code == status, response.json
    assert response.is_json
    if status == 401:
        assert response.json["error"] == "invalid_client"
        assert response.headers["WWW-Authenticate"].startswith("Basic")


@FAKEREDIS_ONLY
def test_a_secret_with_reserved_characters_works_form_encoded(make_app: Any) -> None:
    secret = "a:b+c%d e&f=" + "s" * 30
    app = make_app(DUALTOKEN_INTROSPECTION_CLIENTS={CLIENT_ID: secret})
    token = Api(app).login()["access_token"]
    answer = introspect(app, token, basic(CLIENT_ID, secret))
    assert answer.status_code == 200
    assert answer.json["active"] is True


@FAKEREDIS_ONLY
@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": {"token": "x"}, "content_type": "multipart/form-data"},
        {"data": "token=x", "content_type": "text/plain"},
        {"data": "token=x", "content_type": f"{FORM}; charset=utf-16"},
        {"data": "token=%00%ff%fe", "content_type": FORM},
        {"data": "token=" + "A" * 20_000, "content_type": FORM},
        {"data": "token=x&" + "a=1&" * 5000, "content_type": FORM},
        {"data": "token[]=x", "content_type": FORM},
        {"query_string": {"token": "x"}, "data": "", "content_type": FORM},
    ],
)
@pytest.mark.parametrize("path", ["/auth/introspect", "/auth/revoke"])
def test_odd_bodies_are_json_answers_never_500(
    issuer: Flask, path: str, kwargs: dict[str, Any]
) -> None:
    response = issuer.test_client().post(path, headers=basic(CLIENT_ID, CLIENT_SECRET), **kwargs)
    assert response.status_code in (200, 400, 413), response.get_data()
    if response.status_code != 200 or path == "/auth/introspect":
        assert response.is_json
    if response.status_code == 200 and path == "/auth/introspect":
        assert response.json == {"active": False}


@FAKEREDIS_ONLY
def test_a_token_ends_its_own_session_only(make_app: Any) -> None:
    app = make_app()
    api = Api(app)
    alice, alice_elsewhere, bob = api.login(), api.login(), api.login("bob")
    response = app.test_client().post(
        "/auth/revoke", data={"token": alice["access_token"]}, content_type=FORM
    )
    assert response.status_code == 200
    assert api.get("/me", alice["access_token"]).json["error"] == "session_revoked"
    assert api.get("/me", alice_elsewhere["access_token"]).status_code == 200
    assert api.get("/me", bob["access_token"]).status_code == 200


@FAKEREDIS_ONLY
def test_introspection_never_vouches_for_what_the_app_refuses(make_app: Any) -> None:
    """Each token the app's own routes refuse is inactive, with the identical body."""
    app = make_app(DUALTOKEN_INTROSPECTION_CLIENTS={CLIENT_ID: CLIENT_SECRET})
    api = Api(app)
    live, ended, rotated = api.login(), api.login(), api.login()
    assert api.logout(ended).status_code == 204
    renewed = api.reissue(rotated).json
    head, payload, signature = live["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    other_sub = b64(json.dumps({**claims, "sub": "2"}).encode())
    tokens = [
        ended["access_token"],
        live["refresh_token"],
        renewed["refresh_token"],
        f"{head}.{other_sub}.{signature}",
        f"{head}.{payload}.",
        f"{head}.{payload}.{signature}.x",
    ]
    bodies = {introspect(app, token).get_data() for token in tokens}
    assert bodies == {b'{"active":false}\n'}
    for token in tokens:
        assert api.get("/me", token).status_code == 401
    assert introspect(app, rotated["access_token"]).json["active"] is True  # the app agrees
    assert api.get("/me", rotated["access_token"]).status_code == 200


@FAKEREDIS_ONLY
def test_the_answer_of_a_live_token_names_no_secret_material(issuer: Flask) -> None:
    pair = Api(issuer).login()
    answer = introspect(issuer, pair["access_token"])
    assert set(answer.json) == {
        "active",
        "sub",
        "sid",
        "role",
        "exp",
        "iat",
        "auth_time",
        "token_type",
    }
    assert answer.headers["Cache-Control"] == "no-store"
    assert CLIENT_SECRET not in answer.get_data(as_text=True)


def test_with_redis_down_a_valid_token_is_never_said_to_be_revoked_or_inactive(
    users: Users,
) -> None:
    """A 503, never a 200 the client would take for a done revocation or an ended session;
    nothing is issued either."""
    pair = Api(build_app(fakeredis.FakeRedis(server=fakeredis.FakeServer()), users)).login()
    with app_on_url(
        users,
        "redis://127.0.0.1:1/0",
        DUALTOKEN_INTROSPECTION_CLIENTS={CLIENT_ID: CLIENT_SECRET},
        DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=0,
        DUALTOKEN_INTROSPECTION_MAX_REQUESTS=0,
    ) as app:
        client = app.test_client()
        for token in (pair["access_token"], pair["refresh_token"]):
            revoked = client.post(
                "/auth/revoke", data={"token": token}, headers=basic(CLIENT_ID, CLIENT_SECRET)
            )
            assert revoked.status_code == 503
            assert revoked.json["error"] == "store_unavailable"
        asked = introspect(app, pair["access_token"])
        assert asked.status_code == 503
        assert asked.json["error"] == "store_unavailable"
        login = client.post("/auth/login", json={"username": "alice", "password": "correct horse"})
        assert login.status_code == 503
        assert "access_token" not in login.get_data(as_text=True)
