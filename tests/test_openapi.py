"""The OpenAPI description the blueprint serves, and schemathesis run against the example
app in process: no 5xx, and every response matches the description."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings

from example_app import create_app, db
from flask_dualtoken.openapi import ERROR_CODES


def test_the_description_covers_every_route_and_error_code(app: Flask) -> None:
    document = app.test_client().get("/auth/openapi.json").json
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/auth/login",
        "/auth/reauth",
        "/auth/reissue",
        "/auth/logout",
        "/auth/logout-all",
        "/auth/sessions",
        "/auth/sessions/{sid}",
        "/auth/revoke",
    }
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    routes = {r.rule for r in app.url_map.iter_rules() if r.rule.startswith("/auth/")}
    documented = {p.replace("{sid}", "<sid>") for p in document["paths"]}
    # With HS256 there are no public keys: jwks.json answers 404 and is not described.
    # Nor introspection without clients (it answers 404 then).
    assert routes - {"/auth/openapi.json", "/auth/jwks.json", "/auth/introspect"} == documented


def test_with_eddsa_the_key_set_route_is_described(make_app: Any) -> None:
    app = make_app(DUALTOKEN_ACCESS_ALGORITHM="EdDSA")
    document = app.test_client().get("/auth/openapi.json").json
    jwks = document["paths"]["/auth/jwks.json"]["get"]
    assert jwks["operationId"] == "jwks"
    answer = jwks["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/JwkSet"}
    routes = {r.rule for r in app.url_map.iter_rules() if r.rule.startswith("/auth/")}
    documented = {p.replace("{sid}", "<sid>") for p in document["paths"]}
    assert routes - {"/auth/openapi.json", "/auth/introspect"} == documented


def test_with_clients_introspection_is_described(make_app: Any) -> None:
    app = make_app(DUALTOKEN_INTROSPECTION_CLIENTS={"gateway": "g" * 32})
    document = app.test_client().get("/auth/openapi.json").json
    introspect = document["paths"]["/auth/introspect"]["post"]
    assert introspect["security"] == [{"introspectionClient": []}]
    assert document["components"]["securitySchemes"]["introspectionClient"]["scheme"] == "basic"
    assert "application/x-www-form-urlencoded" in introspect["requestBody"]["content"]


def test_every_error_the_library_raises_is_documented() -> None:
    from flask_dualtoken import errors

    raised = {
        cls.error
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.DualTokenError)
    }
    assert raised <= set(ERROR_CODES)


def test_cookie_mode_is_described_with_its_cookies_and_csrf_header(make_app: Any) -> None:
    app = make_app(DUALTOKEN_TOKEN_LOCATION="cookies")
    document = app.test_client().get("/auth/openapi.json").json
    schemes = document["components"]["securitySchemes"]
    assert schemes["refreshCookie"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "__Secure-dualtoken_rt",
        "description": schemes["refreshCookie"]["description"],
    }
    assert schemes["accessCookie"]["name"] == "__Host-dualtoken_at"
    assert schemes["csrfHeader"]["name"] == "X-CSRF-Token"
    reissue = document["paths"]["/auth/reissue"]["post"]
    assert reissue["security"] == [{"refreshCookie": [], "csrfHeader": []}]
    assert reissue["requestBody"]["required"] is False
    assert "403" in reissue["responses"]
    answer = reissue["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"oneOf": [{"$ref": "#/components/schemas/CookieSession"}]}
    me = document["paths"]["/auth/sessions"]["get"]
    assert me["security"] == [{"accessCookie": [], "csrfHeader": []}]


def test_both_mode_documents_the_transport_header(make_app: Any) -> None:
    document = (
        make_app(DUALTOKEN_TOKEN_LOCATION="both").test_client().get("/auth/openapi.json").json
    )
    login = document["paths"]["/auth/login"]["post"]
    assert [p["name"] for p in login["parameters"]] == ["X-Token-Transport"]
    reissue = document["paths"]["/auth/reissue"]["post"]
    assert reissue["security"] == [{"bearerAuth": []}, {"refreshCookie": [], "csrfHeader": []}]


def test_the_description_can_be_turned_off(make_app: Any) -> None:
    app = make_app(DUALTOKEN_OPENAPI=False)
    response = app.test_client().get("/auth/openapi.json")
    assert response.status_code == 404
    assert response.json["error"] == "not_found"


# Loaded at import: schemathesis parametrizes at collection time. The example app runs
# in process, on its in-memory store and a temporary instance folder.
_INSTANCE = tempfile.mkdtemp(prefix="dualtoken-openapi-")
EXAMPLE = create_app(
    {"DUALTOKEN_LOGIN_MAX_ATTEMPTS": 0, "DUALTOKEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS": 0},
    instance_path=str(Path(_INSTANCE) / "instance"),
)
schema = schemathesis.openapi.from_wsgi("/auth/openapi.json", EXAMPLE)


@schema.auth()
class LoginAsAlice:
    """Log in and send the access token as the bearer credential."""

    def get(self, case: Any, ctx: Any) -> str:
        body = (
            EXAMPLE.test_client()
            .post("/auth/login", json={"username": "alice", "password": "alice-password"})
            .json
        )
        return str(body["access_token"])

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture(scope="module", autouse=True)
def _close_example_database() -> Iterator[None]:
    yield
    with EXAMPLE.app_context():
        db.engine.dispose()


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_example_app_keeps_to_its_description(case: Any) -> None:
    case.call_and_validate()
