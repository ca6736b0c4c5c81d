"""The example app served for real by ``flask --app example_app run`` on a loopback port,
from a copy of it in a temporary folder (its instance folder lands there too)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from servers import free_port

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Served:
    url: str
    work: Path
    output: list[str] = field(default_factory=list)  # filled in when the server stops


@contextmanager
def serve_example(work: Path, **env_settings: str) -> Iterator[Served]:
    shutil.copytree(REPO / "example_app", work / "example_app")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), **env_settings}
    env.pop("FLASK_DUALTOKEN_REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "example_app", "run", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    served = Served(f"http://127.0.0.1:{port}", work)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(served.url + "/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("flask run did not start")
                time.sleep(0.1)
        yield served
    finally:
        died = process.poll()
        process.terminate()
        served.output.append(process.communicate(timeout=10)[0].decode())
        if died is not None:  # shown with the failing test's output
            print(f"flask run exited early with status {died}:\n{served.output[-1]}")
