"""The README as a newcomer meets it: short, and every line of its quick start runs.

The quick start's code lives only in README.md; ``scripts/quickstart.py`` extracts it.
Here it runs in the suite's own environment, which the README's test command installs
with everything the quick start's install line asks for (checked below), so only that
line and the venv line are left out; ``tox -e package`` runs them too, on a fresh venv.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import quickstart  # noqa: E402

README = (ROOT / "README.md").read_text()


def test_the_readme_is_read_in_five_minutes() -> None:
    assert len(README.splitlines()) <= 200


def test_the_readme_keeps_exactly_two_setup_commands() -> None:
    for marker in ("example-command", "test-command"):
        assert README.count(f"<!-- {marker} -->") == 1
        command = quickstart.block_after(README, marker).strip()
        assert command.startswith("python3 -m venv .venv && .venv/bin/pip install -e '.[")
        assert "\n" not in command


def test_every_docs_link_in_the_readme_leads_to_a_page() -> None:
    links = re.findall(r"\]\(((?:docs/)[^)#]+)(?:#[^)]*)?\)", README)
    assert len(links) >= 10
    for link in links:
        assert (ROOT / link).is_file(), link
    index = (ROOT / "docs" / "index.md").read_text()
    for page in {Path(link).stem for link in links} - {"index"}:
        assert f"\n{page}\n" in index, page


def _requirement_names(extra: str) -> set[str]:
    """The distributions an extra of flask-dualtoken pulls in (one level deep)."""
    names = set()
    for requirement in md.requires("flask-dualtoken") or []:
        if f'extra == "{extra}"' in requirement:
            names.add(re.split(r"[\[<>=;! ]", requirement, maxsplit=1)[0])
    return names


def test_what_the_quick_start_installs_is_what_this_suite_runs_with() -> None:
    quick = quickstart.extract()
    setup = quick.setup_lines
    assert setup[0] == "python3 -m venv .venv && . .venv/bin/activate"
    install = setup[1].split("#")[0].split()
    assert install[:3] == ["pip", "install", "-e"]
    assert quick.client_install.split()[:3] == ["pip", "install", "-e"]
    wanted: set[str] = set()
    for spec in install[3:] + quick.client_install.split()[3:]:
        spec = spec.strip("'\"")
        if spec.startswith(".."):  # this checkout, with extras
            assert (ROOT / "try" / spec.split("[")[0]).resolve() == ROOT
            for extra in re.findall(r"\[(.*)\]", spec)[0].split(","):
                assert _requirement_names(extra), extra
                wanted |= _requirement_names(extra)
        else:
            wanted.add(spec)
    for name in wanted:
        md.version(name)  # raises PackageNotFoundError when missing


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_quick_start_and_the_client_snippet_run_as_written(tmp_path: Path) -> None:
    outcome = quickstart.run(
        tmp_path,
        install=False,
        port=quickstart.free_port(),
        bin_dir=Path(sys.executable).parent,
    )
    shell = outcome.shell
    assert shell.returncode == 0, shell.stdout + shell.stderr
    assert shell.stdout.startswith("created alice (admin)\n")
    # What curl printed (flask run also prints its banner to stdout).
    lines = [line for line in shell.stdout.splitlines() if line.startswith("{")]
    login = json.loads(lines[0])
    assert login["token_type"] == "Bearer"
    assert set(login) >= {"access_token", "refresh_token", "expires_in"}
    # Each answer the README shows in a comment is the answer the app gave, in order.
    shown = re.findall(r"# (\{.*\})$", quickstart.extract().shell, re.M)
    assert len(shown) == 2
    assert [json.loads(line) for line in lines[1:]] == [json.loads(s) for s in shown]
    assert "Traceback" not in shell.stderr

    client = outcome.client
    assert client is not None
    assert client.returncode == 0, client.stdout + client.stderr
    assert client.stdout.splitlines() == [
        "{'role': 'admin', 'username': 'alice'}",
        "{'ok': True}",
    ]
    saved = json.loads((tmp_path / "checkout" / "try" / "pair.json").read_text())
    assert set(saved) == {"access_token", "refresh_token"}
