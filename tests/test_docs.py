"""The documentation's generated parts stay in step with the code they describe."""

from __future__ import annotations

import sys
from pathlib import Path

from flask_dualtoken.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import reference  # noqa: E402


def test_every_setting_is_documented_in_the_table_order() -> None:
    table = reference.settings_table()
    keys = [line.split("`")[1] for line in table.splitlines()[2:]]
    assert keys == [setting.key for setting in SETTINGS]
    for setting in SETTINGS:
        assert setting.help.strip(), setting.key


def test_every_error_code_and_route_is_in_the_reference() -> None:
    from flask_dualtoken.openapi import ERROR_CODES

    errors = reference.errors_table()
    for code in ERROR_CODES:
        assert f"`{code}`" in errors, code
    routes = reference.routes_table(DUALTOKEN_TOKEN_LOCATION="both")
    for route in (
        "login",
        "reauth",
        "reissue",
        "logout",
        "logout-all",
        "sessions",
        "sessions/{sid}",
        "revoke",
    ):
        assert f"/auth/{route}` |" in routes, route


def test_the_readme_points_at_the_docs_and_every_page_is_in_the_toctree() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "tox -e docs" in readme
    index = (ROOT / "docs" / "index.md").read_text()
    pages = {p.stem for p in (ROOT / "docs").glob("*.md")} - {"index"}
    for page in pages:
        assert f"\n{page}\n" in index, page
