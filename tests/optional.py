"""What the tests of the optional integrations share: a program run in a fresh Python
process (with an optional package blocked, or to look at what got imported), and a docs
page whose marked blocks run as the page shows them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: A block the tests run or compare: ``<!-- run: NAME -->`` or ``<!-- output: NAME -->``
#: right above a fenced block.
_BLOCK = r"^<!-- (?P<kind>run|output): {name} -->\n```\w+\n(?P<code>.*?)^```$"

#: The library at work with ``blocked`` packages unimportable and ``integration`` imported.
_WITHOUT = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # as if not installed: importing it fails
from types import SimpleNamespace
from flask import Flask
from flask_dualtoken import DualToken, current_user, jwt_required
import flask_dualtoken.{integration}

app = Flask(__name__)
app.config.update(DUALTOKEN_SECRET_KEY="k" * 48, DUALTOKEN_REDIS_URL="memory://")
dualtoken = DualToken(app)
user = SimpleNamespace(id=1, role="user")
dualtoken.authenticate(lambda username, password: user)
dualtoken.user_loader(lambda user_id: user)

@app.get("/me")
@jwt_required
def me():
    return {{"id": current_user.id}}

client = app.test_client()
token = client.post("/auth/login", json={{"username": "u", "password": "p"}})
headers = {{"Authorization": "Bearer " + token.json["access_token"]}}
print(client.get("/me", headers=headers).json["id"])
"""

_IMPORTED = """
import importlib, pkgutil, sys
import flask_dualtoken
for module in pkgutil.iter_modules(flask_dualtoken.__path__):
    importlib.import_module(f"flask_dualtoken.{{module.name}}")
print(*[name in sys.modules for name in {names!r}])
"""


def run_python(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter (warnings are errors), in the checkout; its
    output, once it succeeded."""
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def imported_with_every_module(*names: str) -> list[bool]:
    """Import every module of flask_dualtoken; which of ``names`` are imported then."""
    return [word == "True" for word in run_python(_IMPORTED.format(names=names)).split()]


def works_without(blocked: tuple[str, ...], integration: str) -> bool:
    """Whether login and a protected route work with ``blocked`` unimportable, the module
    of ``integration`` imported all the same."""
    code = _WITHOUT.format(blocked=blocked, integration=integration)
    return run_python(code).split() == ["1"]


class DocPage:
    """A page of docs/ whose marked blocks the tests run and compare."""

    def __init__(self, name: str) -> None:
        self.path = ROOT / "docs" / name

    def blocks(self, kind: str, name: str) -> str:
        found = [
            m["code"]
            for m in re.finditer(_BLOCK.format(name=name), self.path.read_text(), re.M | re.S)
            if m["kind"] == kind
        ]
        assert found, f"{self.path.name} has no block marked <!-- {kind}: {name} -->"
        return "\n\n".join(found)

    def run(self, name: str, namespace: dict[str, Any]) -> None:
        """Run the program ``name`` as a module of its own would run: without the calling
        test module's ``from __future__ import annotations`` (which ``exec`` passes on)."""
        source = self.blocks("run", name)
        code = compile(source, f"{self.path.name}:{name}", "exec", dont_inherit=True)
        exec(code, namespace)  # noqa: S102

    def python_blocks(self) -> tuple[int, int]:
        """How many Python blocks the page has, and how many of them are marked to run."""
        text = self.path.read_text()
        python = len(re.findall(r"^```python$", text, re.M))
        marked = len(re.findall(r"^<!-- run: [\w-]+ -->\n```python$", text, re.M))
        return python, marked

    def names(self) -> tuple[set[str], set[str]]:
        """The settings (``DUALTOKEN_*``) and the error codes (``401 `code```) it names."""
        text = self.path.read_text()
        keys = set(re.findall(r"\bDUALTOKEN_[A-Z_]+\b", text))
        codes = set(re.findall(r"\b[45]\d\d `([a-z_]+)`", text))
        return keys, codes
