"""Run the README's quick start as written: ``python scripts/quickstart.py``.

The README holds the only copy of the quick start: ``app.py`` (after
``<!-- quickstart-app -->``), the shell session that installs, creates a user, starts the
app and calls it (``<!-- quickstart-try -->``), and the client helpers' snippet
(``<!-- quickstart-client -->``, with its install line in the sentence before it). This
module extracts them and runs them in a new directory inside a copy of the checkout, the
way a newcomer would. ``tests/test_readme.py`` runs it in the suite's own environment
(leaving out only the venv and install lines, which would need the network);
``scripts/check_package.py`` (``tox -e package``) runs every line, installs included, in a
fresh virtual environment. Talks to 127.0.0.1 only; the app is stopped at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PORT = 5000  # what the README's lines use
# Not copied into the scratch checkout: environments, caches, build output.
_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".tox", "try", "instance", "build", "dist", "*.egg-info", "__pycache__",
    ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "_build",
)  # fmt: skip


@dataclass(frozen=True)
class Quickstart:
    app: str  # app.py
    shell: str  # the quickstart-try block
    client: str  # the client helpers' snippet
    client_install: str  # the pip line the client snippet asks for

    @property
    def setup_lines(self) -> list[str]:
        """The lines that make the virtual environment and install into it."""
        return [line for line in self.shell.splitlines() if _is_setup(line)]


def _is_setup(line: str) -> bool:
    return line.startswith(("python3 -m venv", "pip install"))


def block_after(text: str, marker: str) -> str:
    """The fenced code block that follows ``<!-- marker -->``."""
    found = re.search(rf"<!-- {re.escape(marker)} -->\n```\w*\n(.*?)\n```", text, re.S)
    if found is None:
        raise LookupError(f"README.md has no code block after <!-- {marker} -->")
    return found.group(1) + "\n"


def extract(readme: str | None = None) -> Quickstart:
    text = README.read_text() if readme is None else readme
    client_at = text.index("<!-- quickstart-client -->")
    installs = re.findall(r"`(pip install [^`]+)`", text[:client_at])
    if not installs:
        raise LookupError("no `pip install ...` for the client snippet before it")
    return Quickstart(
        app=block_after(text, "quickstart-app"),
        shell=block_after(text, "quickstart-try"),
        client=block_after(text, "quickstart-client"),
        client_install=installs[-1],
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass(frozen=True)
class Outcome:
    shell: subprocess.CompletedProcess[str]
    client: subprocess.CompletedProcess[str] | None
    port: int


def run(
    work: Path,
    *,
    install: bool,
    port: int | None = None,
    bin_dir: Path | None = None,
    timeout: float = 120,
) -> Outcome:
    """Run the quick start in ``work/checkout/try``.

    ``install=False`` leaves out the venv and pip lines, so the commands run with the
    interpreter in ``bin_dir`` (which must have the package and those requirements).
    ``port``: where the app listens; the README's 5000 is replaced only when given.
    """
    quick = extract()
    checkout = work / "checkout"
    shutil.copytree(ROOT, checkout, ignore=_IGNORE)
    here = checkout / "try"
    here.mkdir()
    (here / "app.py").write_text(quick.app)
    (here / "client.py").write_text(quick.client)

    shell = quick.shell
    client_steps = [quick.client_install] if install else []
    if not install:
        shell = "".join(line + "\n" for line in shell.splitlines() if not _is_setup(line))
    port = PORT if port is None else port
    if port != PORT:
        shell = shell.replace(str(PORT), str(port))
        (here / "client.py").write_text(quick.client.replace(str(PORT), str(port)))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "PYTHON"))}
    env.pop("VIRTUAL_ENV", None)
    env["FLASK_RUN_PORT"] = str(port)
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    if not install:
        # Deprecated APIs (SQLAlchemy's legacy Query.get among them) fail the run.
        env["PYTHONWARNINGS"] = "error::DeprecationWarning"

    # The shell keeps the app running in the background after it exits (the README's
    # client snippet talks to it next), so it gets a process group of its own to stop,
    # and files for its output: the app would hold a pipe open.
    script = shell + "".join(f"{step}\n" for step in client_steps)
    out_file, err_file = work / "shell.out", work / "shell.err"
    with out_file.open("w") as out, err_file.open("w") as err:
        process = subprocess.Popen(
            [shutil.which("bash") or "/bin/bash", "-e", "-o", "pipefail", "-c", script],
            cwd=here,
            env=env,
            stdout=out,
            stderr=err,
            text=True,
            start_new_session=True,
        )
    client = None
    try:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            message = f"the quick start did not finish in {timeout} s"
            raise AssertionError(
                f"{message}:\n{out_file.read_text()}\n{err_file.read_text()}"
            ) from None
        shell_done = subprocess.CompletedProcess(
            process.args, process.returncode, out_file.read_text(), err_file.read_text()
        )
        if process.returncode == 0:
            if install:
                activate = ". .venv/bin/activate && python client.py"
                command = [shutil.which("bash") or "/bin/bash", "-c", activate]
            else:
                command = [shutil.which("python", path=env["PATH"]) or "python", "client.py"]
            client = subprocess.run(
                command, cwd=here, env=env, capture_output=True, text=True, timeout=timeout
            )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    return Outcome(shell_done, client, port)


def main() -> None:
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="dualtoken-quickstart-"))
    port = PORT if port_is_free(PORT) else free_port()
    outcome = run(work, install=True, port=port, timeout=600)
    for name, result in (("quick start", outcome.shell), ("client snippet", outcome.client)):
        if result is None:
            continue
        print(f"--- {name}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
        if result.returncode != 0:
            raise SystemExit(f"the README's {name} failed")
    # curl exits 0 on a 401 too: the answers the README shows must be the ones printed.
    shown = re.findall(r"# (\{.*\})$", extract().shell, re.M)
    for answer in shown:
        if answer not in outcome.shell.stdout:
            raise SystemExit(f"the quick start did not answer {answer}")
    shutil.rmtree(work, ignore_errors=True)
    print("the README's quick start and client snippet ran as written")


if __name__ == "__main__":
    main()
