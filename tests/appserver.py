"""A gunicorn process serving tests/multiserver_app.py, and an HTTP client for it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from helpers import SECRET
from servers import free_port

HERE = Path(__file__).resolve().parent


class Server:
    def __init__(
        self,
        name: str,
        redis_url: str,
        grace: int = 30,
        *,
        options: tuple[str, ...] = ("--workers", "2", "--threads", "8"),
        revocation: str = "push",
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable))
        if gunicorn is None:
            pytest.fail("gunicorn is part of the test extras and must be installed")
        env = {
            **os.environ,
            "DUALTOKEN_TEST_SECRET": SECRET,
            "DUALTOKEN_TEST_REDIS_URL": redis_url,
            "DUALTOKEN_TEST_GRACE": str(grace),
            "DUALTOKEN_TEST_REVOCATION": revocation,
            "SERVER_NAME_FOR_TEST": name,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)]),
        }
        self.process = subprocess.Popen(
            [
                gunicorn,
                "--bind",
                f"127.0.0.1:{self.port}",
                *options,
                "multiserver_app:create_app()",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/me", timeout=1)
            except urllib.error.HTTPError:
                break  # 401: the server is up
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    pytest.fail(f"gunicorn {name} did not start")
                time.sleep(0.1)

    def post(self, path: str, body: dict[str, Any], token: str | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def get(self, path: str, token: str) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def login(self) -> dict[str, Any]:
        status, body = self.post("/auth/login", {"username": "alice", "password": "correct horse"})
        assert status == 200, body
        pair: dict[str, Any] = json.loads(body)
        return pair

    def reissue(self, pair: dict[str, Any]) -> tuple[int, bytes]:
        return self.post(
            "/auth/reissue", {"refresh_token": pair["refresh_token"]}, pair["access_token"]
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)
