"""docs/other-services.md runs as written: its recipes, against the app served for real on a
loopback port, the key set fetched over HTTP from 127.0.0.1 only.

A block to run carries ``<!-- run: NAME -->`` on the line before its fence, as in
tests/test_docs_pages.py; the blocks run in this process, the verifier's origin pointed at
the served app.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from forge import b64
from helpers import Api, Users, served

PAGE = Path(__file__).resolve().parent.parent / "docs" / "other-services.md"
_BLOCK = r"^<!-- run: {name} -->\n```python\n(?P<code>.*?)^```$"


def recipe(name: str) -> str:
    found = re.search(_BLOCK.format(name=name), PAGE.read_text(), re.M | re.S)
    assert found, f"{PAGE.name} has no block marked <!-- run: {name} -->"
    return found["code"]


def verifier(origin: str) -> Any:
    """The page's verifier, its AUTH_SERVER pointed at ``origin``."""
    code = recipe("jwks-verifier")
    assert 'AUTH_SERVER = "https://auth.example.com"' in code
    namespace: dict[str, Any] = {}
    exec(code.replace("https://auth.example.com", origin), namespace)  # noqa: S102
    return namespace["verify_access_token"]


@pytest.fixture
def eddsa_app(make_app: Any) -> Flask:
    app: Flask = make_app(DUALTOKEN_ACCESS_ALGORITHM="EdDSA")
    return app


def test_a_python_service_verifies_access_tokens_with_the_fetched_keys(
    eddsa_app: Flask,
) -> None:
    pair = Api(eddsa_app).login()
    with served(eddsa_app) as (origin, counting):
        verify = verifier(origin)
        claims = verify(pair["access_token"])
        assert claims["sub"] == "1"
        assert claims["role"] == "admin"
        assert counting.hits == {"/auth/jwks.json": 1}


def test_the_python_service_refuses_what_is_no_access_token_of_the_app(
    eddsa_app: Flask, make_app: Any
) -> None:
    pair = Api(eddsa_app).login()
    hs256_token = Api(make_app()).login()["access_token"]
    head, payload, signature = pair["access_token"].split(".")
    tampered = f"{head}.{payload[:-2]}AA.{signature}"
    with served(eddsa_app) as (origin, _):
        verify = verifier(origin)
        for token in (pair["refresh_token"], hs256_token, tampered, "garbage", "a.b.c"):
            with pytest.raises(jwt.InvalidTokenError):
                verify(token)


def test_made_up_key_ids_do_not_make_the_service_fetch_again(eddsa_app: Flask) -> None:
    token = Api(eddsa_app).login()["access_token"]
    _, payload, signature = token.split(".")
    with served(eddsa_app) as (origin, counting):
        verify = verifier(origin)
        verify(token)
        for n in range(20):
            header = b64(f'{{"alg":"EdDSA","typ":"at+jwt","kid":"random-{n}"}}'.encode())
            with pytest.raises(jwt.InvalidTokenError, match="unknown key id"):
                verify(f"{header}.{payload}.{signature}")
        assert counting.hits == {"/auth/jwks.json": 1}


def test_the_key_set_can_be_mounted_at_the_well_known_path(eddsa_app: Flask) -> None:
    exec(recipe("well-known"), {"app": eddsa_app})  # noqa: S102
    client = eddsa_app.test_client()
    well_known = client.get("/.well-known/jwks.json")
    assert well_known.status_code == 200
    assert well_known.json == client.get("/auth/jwks.json").json
    assert well_known.headers["Cache-Control"] == "public, max-age=300"


def test_a_flask_app_verifies_with_the_key_set_url_alone(eddsa_app: Flask, users: Users) -> None:
    alice, bob = Api(eddsa_app).login(), Api(eddsa_app).login("bob")
    with served(eddsa_app) as (origin, _):
        namespace: dict[str, Any] = {"__name__": "reports_app"}  # as if run as a module
        code = recipe("verify-only").replace("https://auth.example.com", origin)
        exec(code, namespace)  # noqa: S102
        verifier = Api(namespace["app"])
        assert verifier.get_json("/reports", alice) == {"requested_by": "1"}
        assert verifier.get("/reports", bob["access_token"]).status_code == 403
        assert verifier.get("/reports").status_code == 401


def test_a_verify_only_app_that_asks_refuses_an_ended_session(
    make_app: Any, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "reports-introspection-secret-" + "s" * 30
    monkeypatch.setenv("REPORTS_INTROSPECTION_SECRET", secret)
    issuer = make_app(
        DUALTOKEN_ACCESS_ALGORITHM="EdDSA", DUALTOKEN_INTROSPECTION_CLIENTS={"reports": secret}
    )
    issuing = Api(issuer)
    alice, bob = issuing.login(), issuing.login("bob")
    with served(issuer) as (origin, counting):
        namespace: dict[str, Any] = {"__name__": "reports_app"}
        code = recipe("verify-only-introspection").replace("https://auth.example.com", origin)
        exec(code, namespace)  # noqa: S102
        client = namespace["app"].test_client()

        def approve(pair: dict[str, Any]) -> Any:
            headers = {"Authorization": f"Bearer {pair['access_token']}"}
            return client.post("/reports/7/approve", headers=headers)

        assert approve(alice).json == {"approved": 7, "by": "1"}
        assert approve(bob).status_code == 403
        assert issuing.logout(alice).status_code == 204
        refused = approve(alice)
        assert refused.status_code == 401
        assert refused.json["error"] == "session_revoked"
        assert counting.hits["/auth/introspect"] == 2  # bob's 403 asked nothing
