"""The guide pages run as written: docs/existing-app.md and docs/from-flask-jwt-extended.md.

Their code lives only in the Markdown. A block to run carries ``<!-- run: NAME -->`` on
the line before its fence; the blocks of one name are joined, in order, into one file
(``FILES`` says which). A ``<!-- output: NAME -->`` block is what program NAME prints,
every line of it, in order. Each program runs in a subprocess of this interpreter, in
``tmp_path``, with warnings as errors and a timeout, on the ``memory://`` store and
Flask's test client: no network, no server.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_dualtoken import DualToken
from flask_dualtoken.config import KNOWN_KEYS
from flask_dualtoken.openapi import ERROR_CODES
from flask_dualtoken.tokens import RESERVED_CLAIMS

ROOT = Path(__file__).resolve().parent.parent
EXISTING_APP = ROOT / "docs" / "existing-app.md"
FROM_FJE = ROOT / "docs" / "from-flask-jwt-extended.md"
TIMEOUT = 120

#: Where each program of the pages goes, relative to tmp_path: the layout the page names.
FILES = {
    "existing-app": "myapp.py",
    "existing-app-conftest": "tests/conftest.py",
    "existing-app-tests": "tests/test_myapp.py",
    "existing-app-loaders": "loaders.py",
    "fje-after": "app.py",
}

_FENCE = re.compile(
    r"^(?:<!-- (?P<kind>run|output|log): (?P<name>[\w-]+) -->\n)?"
    r"```(?P<lang>[\w{}-]*)\n(?P<code>.*?)^```$",
    re.M | re.S,
)


@dataclass(frozen=True)
class Block:
    kind: str | None  # run, output, log, or None for an unmarked block
    name: str | None
    lang: str
    code: str


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return [Block(m["kind"], m["name"], m["lang"], m["code"]) for m in _FENCE.finditer(text)]


def program(page: Path, name: str) -> str:
    parts = [b.code for b in blocks(page) if b.kind == "run" and b.name == name]
    assert parts, f"{page.name} has no block marked <!-- run: {name} -->"
    return "\n\n".join(parts)


def shown(page: Path, kind: str, name: str) -> list[str]:
    """The lines of every block marked ``<!-- kind: name -->``, in order."""
    found = [b.code for b in blocks(page) if b.kind == kind and b.name == name]
    assert found, f"{page.name} has no block marked <!-- {kind}: {name} -->"
    return "".join(found).splitlines()


def write(tmp_path: Path, page: Path, name: str) -> Path:
    path = tmp_path / FILES[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(program(page, name))
    return path


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run this interpreter with warnings as errors; return stdout, failing on exit != 0."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "PYTEST_", "PYTHON", "COV_CORE_"))
    }
    clean["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # this venv's plugins are not the page's
    clean.update(env or {})
    result = subprocess.run(
        [sys.executable, "-W", "error", *args],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


# -- what every block of the two pages is ----------------------------------------------------


@pytest.mark.parametrize("page", [EXISTING_APP, FROM_FJE], ids=lambda p: p.stem)
def test_every_python_block_compiles_and_every_marker_is_known(page: Path) -> None:
    found = blocks(page)
    assert found
    for block in found:
        if block.lang == "python":
            compile(block.code, f"{page.name}:{block.name}", "exec")
        if block.kind == "run":
            assert block.name in FILES, block.name
            assert block.lang == "python", block.name
        if block.kind in ("output", "log"):
            assert block.lang == "text", block.name


def test_every_python_block_runs_but_the_flask_jwt_extended_one() -> None:
    """Only FJE's "before" code is left unrun: the suite does not install FJE."""
    for page in (EXISTING_APP, FROM_FJE):
        unrun = [b for b in blocks(page) if b.lang == "python" and b.kind != "run"]
        if page == EXISTING_APP:
            assert unrun == []
        else:
            assert len(unrun) == 1
            assert "from flask_jwt_extended import" in unrun[0].code


@pytest.mark.parametrize("page", [EXISTING_APP, FROM_FJE], ids=lambda p: p.stem)
def test_the_pages_name_only_settings_and_error_codes_that_exist(page: Path) -> None:
    text = page.read_text()
    keys = set(re.findall(r"\bDUALTOKEN_[A-Z_]+\b", text))
    codes = set(re.findall(r"\b[45]\d\d `([a-z_]+)`", text))
    assert keys
    assert codes
    assert keys <= KNOWN_KEYS, keys - KNOWN_KEYS
    assert codes <= set(ERROR_CODES), codes - set(ERROR_CODES)


def test_the_reserved_claims_listed_are_the_library_s() -> None:
    text = EXISTING_APP.read_text()
    listed = re.search(r"own\s+names \(((?:`\w+`,?\s*)+)\)", text)
    assert listed is not None
    assert set(re.findall(r"`(\w+)`", listed.group(1))) == RESERVED_CLAIMS


# -- docs/existing-app.md --------------------------------------------------------------------


def test_the_existing_app_and_its_tests_run(tmp_path: Path) -> None:
    """myapp.py, tests/conftest.py and tests/test_myapp.py, as a project would lay them
    out; ``python -m pytest`` from the project's root, as the page says."""
    for name in ("existing-app", "existing-app-conftest", "existing-app-tests"):
        write(tmp_path, EXISTING_APP, name)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # stops pytest's search for a config
    tests = program(EXISTING_APP, "existing-app-tests").count("\ndef test_") + 1
    assert tests >= 3
    out = run(tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error")
    assert re.search(rf"\b{tests} passed\b", out), out
    assert "warning" not in out.lower(), out


def test_the_existing_app_s_factory_reads_its_settings_from_the_environment(
    tmp_path: Path,
) -> None:
    """What production does: FLASK_DUALTOKEN_* in the environment, create_app() bare."""
    write(tmp_path, EXISTING_APP, "existing-app")
    check = (
        "from myapp import create_app\n"
        "app = create_app()\n"
        "login = app.url_map.bind('').match('/auth/login', 'POST')[0]\n"
        "print(app.config['DUALTOKEN_REDIS_URL'], login)\n"
        "print(app.test_client().get('/me').json['error'])\n"
    )
    secret = "s" * 48
    out = run(
        tmp_path,
        "-c",
        check,
        env={"FLASK_DUALTOKEN_SECRET_KEY": secret, "FLASK_DUALTOKEN_REDIS_URL": "memory://"},
    )
    assert out.splitlines() == ["memory:// dualtoken.login", "token_missing"]


def test_the_loaders_program_prints_what_the_page_shows(tmp_path: Path) -> None:
    write(tmp_path, EXISTING_APP, "existing-app-loaders")
    out = run(tmp_path, FILES["existing-app-loaders"])
    assert out.splitlines() == shown(EXISTING_APP, "output", "existing-app-loaders")


def test_a_user_without_role_gets_the_500_and_the_log_line_the_page_shows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The page's claim about a model without ``role``, checked against the library."""

    class User:  # what the page's reader has: an id and no role
        id = 7

    app = Flask(__name__)
    app.config.update(DUALTOKEN_SECRET_KEY="k" * 32, DUALTOKEN_REDIS_URL="memory://")
    dualtoken = DualToken(app)

    @dualtoken.authenticate
    def authenticate(username: str, password: str) -> Any:
        return User()

    caplog.set_level(logging.INFO, logger="flask_dualtoken")
    response = app.test_client().post("/auth/login", json={"username": "u", "password": "p"})
    assert response.status_code == 500
    assert response.json is not None
    assert response.json["error"] == "server_misconfigured"
    errors = [r for r in caplog.records if r.name == "flask_dualtoken" and r.levelname == "ERROR"]
    assert [r.getMessage() for r in errors] == shown(EXISTING_APP, "log", "missing-role")


# -- docs/from-flask-jwt-extended.md ---------------------------------------------------------


def test_the_flask_jwt_extended_after_code_prints_what_the_page_shows(tmp_path: Path) -> None:
    write(tmp_path, FROM_FJE, "fje-after")
    out = run(tmp_path, FILES["fje-after"], env={"FLASK_DUALTOKEN_SECRET_KEY": "f" * 48})
    assert out.splitlines() == shown(FROM_FJE, "output", "fje-after")
