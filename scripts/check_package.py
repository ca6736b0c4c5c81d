"""Build the sdist and wheel, check them with twine, install the wheel into a fresh
virtual environment, and run the example app from it; then run the README's quick start
and client snippet exactly as written, installs included, in another fresh virtual
environment (``scripts/quickstart.py``): ``python scripts/check_package.py``.

The example app is copied out of the source tree first, so that the installed wheel,
not the checkout, is what it imports. Talks to 127.0.0.1 only and stops by itself.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import quickstart  # noqa: E402


def run(*args: str | Path, cwd: Path | None = None) -> None:
    print("+", " ".join(map(str, args)), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=cwd)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="dualtoken-package-"))
    dist = work / "dist"
    run(sys.executable, "-m", "build", "--outdir", dist, ROOT)
    files = sorted(dist.iterdir())
    run(sys.executable, "-m", "twine", "check", "--strict", *files)
    wheel = next(f for f in files if f.suffix == ".whl")
    venv = work / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "-q", f"{wheel}[example]")

    app_dir = work / "app"
    shutil.copytree(ROOT / "example_app", app_dir / "example_app")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FLASK_"))}
    server = subprocess.Popen(
        [str(venv / "bin" / "flask"), "--app", "example_app", "run", "--port", str(port)],
        cwd=app_dir,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        request = urllib.request.Request(
            url + "/auth/login",
            data=json.dumps({"username": "alice", "password": "alice-password"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            pair = json.load(response)
        me = urllib.request.Request(
            url + "/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
        )
        with urllib.request.urlopen(me, timeout=5) as response:
            assert json.load(response)["username"] == "alice"
        probe = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import flask_dualtoken, sys; print(flask_dualtoken.__file__)",
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=app_dir,
            env=env,
        )
        assert str(venv) in probe.stdout, probe.stdout
    finally:
        server.terminate()
        server.wait(timeout=10)
    shutil.rmtree(work, ignore_errors=True)
    quickstart.main()
    print(
        "package check passed: sdist and wheel build, twine accepts them, the example "
        "app runs from the installed wheel, and the README's quick start runs as written"
    )


if __name__ == "__main__":
    main()
