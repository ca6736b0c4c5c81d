"""A verify-only app that asks by introspection (DUALTOKEN_INTROSPECTION_URL): every access
token whose signature checks is sent to the issuing app's POST /auth/introspect, and an
ended session is refused at once (401 session_revoked). Whatever is no usable answer is a
503, never a pass.

The issuing app is served for real on a loopback port, as in tests/test_verify_only.py;
the client secret goes to the configured URL only (no redirect, no proxy).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fakeredis
import pytest
from flask import Flask
from helpers import Api, Clock, Users, bearer, served, sid_of, verifier_app, wsgi

from flask_dualtoken import ConfigError, remote_introspection
from flask_dualtoken.state import get_state
from flask_dualtoken.store import hash_tag

CLIENT_ID = "reports"
CLIENT_SECRET = "reports-introspection-secret-" + "r" * 30


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    """The issuing app on fakeredis: what is tested here is the question over HTTP; the
    issuer's answers, store included, run on every server in tests/test_introspection.py."""
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def issuer(make_app: Any) -> Flask:
    app: Flask = make_app(
        DUALTOKEN_ACCESS_ALGORITHM="EdDSA",
        DUALTOKEN_INTROSPECTION_CLIENTS={CLIENT_ID: CLIENT_SECRET},
    )
    return app


def asking(users: Users, origin: str, **config: Any) -> Api:
    """A verify-only app with the key set and the introspection URL of ``origin``."""
    settings = {
        "DUALTOKEN_JWKS_URL": f"{origin}/auth/jwks.json",
        "DUALTOKEN_INTROSPECTION_URL": f"{origin}/auth/introspect",
        "DUALTOKEN_INTROSPECTION_CLIENT_ID": CLIENT_ID,
        "DUALTOKEN_INTROSPECTION_CLIENT_SECRET": CLIENT_SECRET,
        **config,
    }
    return Api(verifier_app(users, **settings))


def asking_elsewhere(issuer: Flask, users: Users, url: str, **config: Any) -> Api:
    """A verify-only app with the issuer's keys given inline, asking ``url``: only the
    question goes over the network."""
    key_set = issuer.test_client().get("/auth/jwks.json").json
    return Api(
        verifier_app(
            users,
            DUALTOKEN_PUBLIC_KEYS=key_set,
            DUALTOKEN_INTROSPECTION_URL=url,
            DUALTOKEN_INTROSPECTION_CLIENT_ID=CLIENT_ID,
            DUALTOKEN_INTROSPECTION_CLIENT_SECRET=CLIENT_SECRET,
            **config,
        )
    )


@contextmanager
def verifying(issuer: Flask, users: Users, **config: Any) -> Iterator[tuple[Api, Any]]:
    with served(issuer) as (origin, counting):
        yield asking(users, origin, **config), counting


class Recording:
    """A WSGI app that keeps each request's Authorization header, answering active."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.authorizations.append(environ.get("HTTP_AUTHORIZATION"))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"active": true}']


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503
    assert response.json["error"] == "introspection_unavailable"
    assert response.headers["Retry-After"] == "1"
    assert set(response.json) == {"error", "message"}


def closed_port_url() -> str:
    """A loopback URL where nothing listens any more."""
    with served(wsgi("200 OK", b"{}")) as (origin, _):
        pass
    return f"{origin}/auth/introspect"


# -- what it does ------------------------------------------------------------------------------


def test_a_live_token_passes_and_an_ended_session_is_refused_at_once(
    issuer: Flask, users: Users
) -> None:
    issuing = Api(issuer)
    pair = issuing.login()
    with verifying(issuer, users) as (verifier, counting):
        assert verifier.get_json("/me", pair) == {"id": 1, "role": "admin"}
        assert counting.hits == {"/auth/jwks.json": 1, "/auth/introspect": 1}
        assert issuing.logout(pair).status_code == 204
        refused = verifier.get("/me", pair["access_token"])
        assert refused.status_code == 401
        assert refused.json["error"] == "session_revoked"
        assert "invalid_token" in refused.headers["WWW-Authenticate"]
        assert counting.hits["/auth/introspect"] == 2  # asked at every request


def test_every_way_a_session_ends_is_refused(issuer: Flask, users: Users) -> None:
    issuing = Api(issuer)
    revoked, everywhere, kept = issuing.login(), issuing.login(), issuing.login("bob")
    dualtoken = issuer.extensions["dualtoken_object"]
    with verifying(issuer, users) as (verifier, _):
        for pair in (revoked, everywhere, kept):
            assert verifier.get("/me", pair["access_token"]).status_code == 200
        with issuer.app_context():
            assert dualtoken.revoke_session("1", sid_of(revoked))
        assert verifier.get("/me", revoked["access_token"]).json["error"] == "session_revoked"
        logout_all = issuing.client.post(
            "/auth/logout-all", headers=bearer(everywhere["access_token"])
        )
        assert logout_all.status_code == 204
        assert verifier.get("/me", everywhere["access_token"]).json["error"] == "session_revoked"
        assert verifier.get("/me", kept["access_token"]).status_code == 200


def test_a_token_refused_locally_costs_no_question(issuer: Flask, users: Users) -> None:
    bob = Api(issuer).login("bob")
    with verifying(issuer, users) as (verifier, counting):
        assert verifier.get("/admin", bob["access_token"]).status_code == 403  # role
        assert verifier.get("/me", "garbage").json["error"] == "token_invalid"
        assert verifier.get("/optional").json == {"user": None}
        assert "/auth/introspect" not in counting.hits


def test_fresh_and_roles_still_apply_after_the_answer(issuer: Flask, users: Users) -> None:
    alice, bob = Api(issuer).login(), Api(issuer).login("bob")
    with verifying(issuer, users) as (verifier, _):
        assert verifier.get("/admin", alice["access_token"]).status_code == 200
        assert verifier.get("/fresh", alice["access_token"]).status_code == 200
        assert verifier.get_json("/optional", bob) == {"user": "bob"}


# -- no answer is no pass ----------------------------------------------------------------------


def test_an_issuer_that_is_down_is_a_503_logged_once(
    issuer: Flask, users: Users, caplog: pytest.LogCaptureFixture
) -> None:
    pair = Api(issuer).login()
    url = closed_port_url()
    verifier = asking_elsewhere(issuer, users, url)
    with caplog.at_level(logging.WARNING, logger="flask_dualtoken"):
        for _ in range(3):
            assert_unavailable(verifier.get("/me", pair["access_token"]))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert url in errors[0].getMessage()
    assert "URLError (ConnectionRefusedError)" in errors[0].getMessage()
    assert pair["access_token"] not in caplog.text


def test_a_wrong_client_secret_is_a_503_and_the_issuer_counts_it(
    issuer: Flask, users: Users, caplog: pytest.LogCaptureFixture
) -> None:
    pair = Api(issuer).login()
    wrong = "wrong-" + CLIENT_SECRET
    with served(issuer) as (origin, counting):
        verifier = asking(users, origin, DUALTOKEN_INTROSPECTION_CLIENT_SECRET=wrong)
        with caplog.at_level(logging.ERROR, logger="flask_dualtoken"):
            assert_unavailable(verifier.get("/me", pair["access_token"]))
            assert_unavailable(verifier.get("/me", pair["access_token"]))
    assert counting.hits["/auth/introspect"] == 2
    store = get_state(issuer).store
    failures = store.client.get(f"dualtoken:{hash_tag('c', '127.0.0.1')}:client-failures")
    assert int(failures) == 2  # each failed client authentication counted, per address
    assert "HTTP 401" in caplog.text
    assert "DUALTOKEN_INTROSPECTION_CLIENT_SECRET" in caplog.text
    for secret in (wrong, CLIENT_SECRET, base64.b64encode(f"{CLIENT_ID}:{wrong}".encode())):
        assert str(secret) not in caplog.text


@pytest.mark.parametrize(
    "status",
    ["301 Moved Permanently", "302 Found", "307 Temporary Redirect", "308 Permanent Redirect"],
)
def test_a_redirect_is_not_followed_and_the_credentials_stay_home(
    issuer: Flask, users: Users, status: str
) -> None:
    pair = Api(issuer).login()
    elsewhere = Recording()
    with served(elsewhere) as (target, target_hits):
        moved = wsgi(status, b"", (("Location", f"{target}/auth/introspect"),))
        with served(moved) as (origin, moved_hits):
            verifier = asking_elsewhere(issuer, users, f"{origin}/auth/introspect")
            assert_unavailable(verifier.get("/me", pair["access_token"]))
    assert moved_hits.hits == {"/auth/introspect": 1}
    assert target_hits.hits == {}
    assert elsewhere.authorizations == []


def test_no_proxy_from_the_environment_is_asked(
    issuer: Flask, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = Api(issuer).login()
    proxy = Recording()
    with served(proxy) as (proxy_origin, proxy_hits), served(issuer) as (origin, counting):
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            monkeypatch.setenv(name, proxy_origin)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        verifier = asking_elsewhere(issuer, users, f"{origin}/auth/introspect")
        assert verifier.get("/me", pair["access_token"]).status_code == 200
    assert counting.hits == {"/auth/introspect": 1}
    assert proxy_hits.hits == {}


def test_the_question_is_rfc_7662(issuer: Flask, users: Users) -> None:
    seen: dict[str, Any] = {}

    def recording(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        seen.update(
            method=environ["REQUEST_METHOD"],
            content_type=environ.get("CONTENT_TYPE"),
            authorization=environ.get("HTTP_AUTHORIZATION"),
            body=environ["wsgi.input"].read(length),
        )
        start_response("200 OK", [("Content-Type", "application/json; charset=utf-8")])
        return [b'{"active": false}']

    pair = Api(issuer).login()
    with served(recording) as (origin, _):
        verifier = asking_elsewhere(issuer, users, f"{origin}/introspect")
        assert verifier.get("/me", pair["access_token"]).json["error"] == "session_revoked"
    assert seen["method"] == "POST"
    assert seen["content_type"] == "application/x-www-form-urlencoded"
    assert seen["body"] == f"token={pair['access_token']}".encode()
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert seen["authorization"] == f"Basic {expected}"


def _answer(claims: dict[str, Any]) -> bytes:
    return json.dumps(claims).encode()


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        ("200 OK", b'{"active": true, "pad": "' + b"x" * 70_000 + b'"}', "application/json"),
        ("200 OK", b"[" * 60_000, "application/json"),  # under the cap, too deep to parse
        ("200 OK", b"not json", "application/json"),
        ("200 OK", b'{"active": true}', "text/html"),
        ("200 OK", b'{"active": "true"}', "application/json"),
        ("200 OK", b"{}", "application/json"),
        ("200 OK", b"[]", "application/json"),
        ("200 OK", b'{"active": 1}', "application/json"),
        ("200 OK", "\ud800".encode("utf-8", "surrogatepass"), "application/json"),
        ("201 Created", b'{"active": false}', "application/json"),
        ("500 Internal Server Error", b'{"active": false}', "application/json"),
        ("429 Too Many Requests", b"{}", "application/json"),
        ("404 Not Found", b"{}", "application/json"),
    ],
)
def test_anything_but_a_usable_answer_is_a_503(
    issuer: Flask, users: Users, status: str, body: bytes, content_type: str
) -> None:
    pair = Api(issuer).login()
    with served(wsgi(status, body, content_type=content_type)) as (origin, _):
        verifier = asking_elsewhere(issuer, users, f"{origin}/introspect")
        assert_unavailable(verifier.get("/me", pair["access_token"]))


def test_an_active_answer_about_another_token_is_a_503(issuer: Flask, users: Users) -> None:
    alice, bob = Api(issuer).login(), Api(issuer).login("bob")

    def about_bob(environ: dict[str, Any], start_response: Any) -> Any:
        """The issuer's answer about bob's token, whatever was asked."""
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        body = f"token={bob['access_token']}".encode()
        swapped = {**environ, "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
        return issuer(swapped, start_response)

    with served(about_bob) as (origin, _):
        verifier = asking_elsewhere(issuer, users, f"{origin}/auth/introspect")
        assert verifier.get("/me", bob["access_token"]).status_code == 200
        assert_unavailable(verifier.get("/me", alice["access_token"]))


def test_a_slow_answer_times_out(
    issuer: Flask, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_introspection, "TIMEOUT", 0.3)
    pair = Api(issuer).login()

    def slow(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        time.sleep(1.5)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"active": true}']

    with served(slow) as (origin, _):
        verifier = asking_elsewhere(issuer, users, f"{origin}/introspect")
        started = time.monotonic()
        assert_unavailable(verifier.get("/me", pair["access_token"]))
        assert time.monotonic() - started < 1.2


def test_a_trickling_answer_is_cut_at_the_deadline(
    issuer: Flask, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_introspection, "TIMEOUT", 0.5)
    pair = Api(issuer).login()

    def trickle(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        yield b'{"active": true'
        for _ in range(20):
            time.sleep(0.1)  # each wait well under the timeout, the whole well over it
            yield b" "
        yield b"}"

    with served(trickle) as (origin, _):
        verifier = asking_elsewhere(issuer, users, f"{origin}/introspect")
        started = time.monotonic()
        assert_unavailable(verifier.get("/me", pair["access_token"]))
        assert time.monotonic() - started < 1.5


def test_it_recovers_when_the_issuer_answers_again(
    issuer: Flask, users: Users, caplog: pytest.LogCaptureFixture
) -> None:
    pair = Api(issuer).login()
    answers: dict[str, Any] = {"app": wsgi("503 Service Unavailable", b"{}")}

    def switching(environ: dict[str, Any], start_response: Any) -> Any:
        return answers["app"](environ, start_response)

    with served(switching) as (origin, _):
        verifier = asking_elsewhere(issuer, users, f"{origin}/auth/introspect")
        with caplog.at_level(logging.WARNING, logger="flask_dualtoken"):
            assert_unavailable(verifier.get("/me", pair["access_token"]))
            answers["app"] = issuer
            assert verifier.get("/me", pair["access_token"]).status_code == 200
    assert "HTTP 503" in caplog.text
    assert "answers again" in caplog.text


# -- the cache -------------------------------------------------------------------------------


def test_without_a_cache_every_request_asks(issuer: Flask, users: Users) -> None:
    pair = Api(issuer).login()
    with verifying(issuer, users) as (verifier, counting):
        for _ in range(3):
            assert verifier.get("/me", pair["access_token"]).status_code == 200
        assert counting.hits["/auth/introspect"] == 3


def test_a_cached_answer_is_used_until_it_lapses(issuer: Flask, users: Users) -> None:
    """The trade-off the setting buys: an ended session is accepted while its answer is
    kept, at most DUALTOKEN_INTROSPECTION_CACHE_SECONDS."""
    issuing = Api(issuer)
    pair = issuing.login()
    with verifying(issuer, users, DUALTOKEN_INTROSPECTION_CACHE_SECONDS=1) as (verifier, hits):
        for _ in range(3):
            assert verifier.get("/me", pair["access_token"]).status_code == 200
        assert hits.hits["/auth/introspect"] == 1
        assert issuing.logout(pair).status_code == 204
        assert verifier.get("/me", pair["access_token"]).status_code == 200  # still kept
        time.sleep(1.1)
        refused = verifier.get("/me", pair["access_token"])
        assert refused.json["error"] == "session_revoked"
        assert hits.hits["/auth/introspect"] == 2
        # An inactive answer is kept too: an ended session does not come back.
        assert verifier.get("/me", pair["access_token"]).json["error"] == "session_revoked"
        assert hits.hits["/auth/introspect"] == 2


def test_a_failure_is_never_cached(issuer: Flask, users: Users) -> None:
    pair = Api(issuer).login()
    answers: dict[str, Any] = {"app": wsgi("500 Internal Server Error", b"{}")}

    def switching(environ: dict[str, Any], start_response: Any) -> Any:
        return answers["app"](environ, start_response)

    with served(switching) as (origin, counting):
        verifier = asking_elsewhere(
            issuer, users, f"{origin}/auth/introspect", DUALTOKEN_INTROSPECTION_CACHE_SECONDS=60
        )
        assert_unavailable(verifier.get("/me", pair["access_token"]))
        answers["app"] = issuer
        assert verifier.get("/me", pair["access_token"]).status_code == 200
        assert verifier.get("/me", pair["access_token"]).status_code == 200
        assert counting.hits["/auth/introspect"] == 2


def test_a_kept_answer_never_outlives_its_token(make_app: Any, users: Users, clock: Clock) -> None:
    """With leeway, the verifier still takes a token just past its exp; the issuer (no
    leeway) then says inactive, and the kept "active" must not answer for it."""
    issuer = make_app(
        DUALTOKEN_ACCESS_ALGORITHM="EdDSA",
        DUALTOKEN_ACCESS_EXPIRES=1,
        DUALTOKEN_INTROSPECTION_CLIENTS={CLIENT_ID: CLIENT_SECRET},
    )
    clock.align()
    pair = Api(issuer).login()
    with verifying(
        issuer, users, DUALTOKEN_LEEWAY=60, DUALTOKEN_INTROSPECTION_CACHE_SECONDS=300
    ) as (verifier, counting):
        assert verifier.get("/me", pair["access_token"]).status_code == 200
        clock.advance(2.1)
        refused = verifier.get("/me", pair["access_token"])
        assert refused.json["error"] == "session_revoked"
        assert counting.hits["/auth/introspect"] == 2


def test_the_cache_is_bounded(
    issuer: Flask, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_introspection, "CACHE_SIZE", 2)
    first, second, third = (Api(issuer).login() for _ in range(3))
    with verifying(issuer, users, DUALTOKEN_INTROSPECTION_CACHE_SECONDS=60) as (verifier, hits):
        for pair in (first, second, third, third, second):
            assert verifier.get("/me", pair["access_token"]).status_code == 200
        assert hits.hits["/auth/introspect"] == 3
        assert verifier.get("/me", first["access_token"]).status_code == 200  # pushed out
        assert hits.hits["/auth/introspect"] == 4
        cache = get_state(verifier.client.application).remote_introspection
        assert cache is not None
        assert len(cache._cache) == 2
        assert all(len(key) == 32 for key in cache._cache)  # SHA-256 digests, no token


# -- configuration ----------------------------------------------------------------------------

VERIFY_ONLY = {
    "DUALTOKEN_ACCESS_ALGORITHM": "EdDSA",
    "DUALTOKEN_JWKS_URL": "https://auth.example/auth/jwks.json",
}
ASKING = {
    "DUALTOKEN_INTROSPECTION_URL": "https://auth.example/auth/introspect",
    "DUALTOKEN_INTROSPECTION_CLIENT_ID": CLIENT_ID,
    "DUALTOKEN_INTROSPECTION_CLIENT_SECRET": CLIENT_SECRET,
}


@pytest.mark.parametrize(
    "url",
    [
        "http://auth.example/auth/introspect",  # plain http beyond loopback
        "ftp://auth.example/introspect",
        "file:///etc/passwd",
        "https://reports:secret@auth.example/auth/introspect",
        "https:///introspect",
        "https://auth.example/introspect#frag",
        "",
        42,
    ],
)
def test_the_introspection_url_must_be_https(users: Users, url: Any) -> None:
    with pytest.raises(ConfigError, match="DUALTOKEN_INTROSPECTION_URL"):
        verifier_app(users, **VERIFY_ONLY, **{**ASKING, "DUALTOKEN_INTROSPECTION_URL": url})


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/auth/introspect", "http://localhost/i", "http://[::1]:9/i"]
)
def test_plain_http_is_for_loopback(users: Users, url: str) -> None:
    verifier_app(users, **VERIFY_ONLY, **{**ASKING, "DUALTOKEN_INTROSPECTION_URL": url})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"DUALTOKEN_INTROSPECTION_CLIENT_ID": None}, "DUALTOKEN_INTROSPECTION_CLIENT_ID is not"),
        ({"DUALTOKEN_INTROSPECTION_CLIENT_SECRET": None}, "_CLIENT_SECRET is not"),
        ({"DUALTOKEN_INTROSPECTION_URL": None}, "DUALTOKEN_INTROSPECTION_URL is not"),
        ({"DUALTOKEN_INTROSPECTION_CLIENT_SECRET": "short"}, "at least 32 bytes"),
        ({"DUALTOKEN_INTROSPECTION_CLIENT_SECRET": 42}, "_CLIENT_SECRET must be"),
        ({"DUALTOKEN_INTROSPECTION_CLIENT_ID": "bad id!"}, "_CLIENT_ID must be"),
        ({"DUALTOKEN_INTROSPECTION_CLIENT_ID": ""}, "_CLIENT_ID must be"),
        ({"DUALTOKEN_INTROSPECTION_CACHE_SECONDS": 301}, "_CACHE_SECONDS must be"),
        ({"DUALTOKEN_INTROSPECTION_CACHE_SECONDS": -1}, "_CACHE_SECONDS must be"),
        ({"DUALTOKEN_INTROSPECTION_CACHE_SECONDS": "5"}, "_CACHE_SECONDS must be"),
    ],
)
def test_the_question_is_checked_at_start_up(
    users: Users, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        verifier_app(users, **VERIFY_ONLY, **{**ASKING, **config})


def test_the_cache_needs_the_url(users: Users) -> None:
    with pytest.raises(ConfigError, match="DUALTOKEN_INTROSPECTION_CACHE_SECONDS is set"):
        verifier_app(users, **VERIFY_ONLY, DUALTOKEN_INTROSPECTION_CACHE_SECONDS=5)


@pytest.mark.parametrize(
    "key", [*ASKING, "DUALTOKEN_INTROSPECTION_CACHE_SECONDS"], ids=lambda key: key[24:]
)
def test_an_app_with_the_store_does_not_ask(make_app: Any, key: str) -> None:
    value = ASKING.get(key, 5)
    with pytest.raises(ConfigError, match=f"{key} is for a verify-only app"):
        make_app(**{key: value})


def test_the_client_secret_is_never_printed(users: Users) -> None:
    app = verifier_app(users, **VERIFY_ONLY, **ASKING)
    state = get_state(app)
    shown = " ".join(
        [repr(state), str(state), repr(state.settings), repr(state.remote_introspection)]
    )
    assert "https://auth.example/auth/introspect" in shown
    assert CLIENT_ID in shown
    encoded = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    for secret in (CLIENT_SECRET, CLIENT_SECRET.encode().hex(), encoded):
        assert secret not in shown


def test_without_the_url_nothing_is_asked(users: Users) -> None:
    app = verifier_app(users, **VERIFY_ONLY)
    assert get_state(app).remote_introspection is None
