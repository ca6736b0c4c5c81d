"""Throughput under load: ``python benchmarks/load.py`` (needs ``wrk`` and ``redis-server``).

gunicorn with 2 workers serves tests/multiserver_app.py on a loopback port, on a real
Redis of its own; wrk drives login -> 8 protected requests -> reissue cycles for a fixed
time (bounded: it stops by itself) and the script reports requests/s, p50/p99 latency
and every kind of failure: non-200 answers, false reuse detections, lost sessions.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from run import redis_server

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SECRET = "benchmark-secret-" + "x" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    run_load(args.seconds, args.connections)


def run_load(seconds: int, connections: int) -> None:
    wrk = shutil.which("wrk")
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable))
    if wrk is None or gunicorn is None:
        sys.exit("needs wrk (apt-get install wrk) and gunicorn (pip install gunicorn)")
    with redis_server() as client:
        port = client.connection_pool.connection_kwargs["port"]
        app_port = free_port()
        env = {
            **os.environ,
            "DUALTOKEN_TEST_SECRET": SECRET,
            "DUALTOKEN_TEST_REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "SERVER_NAME_FOR_TEST": "load",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]),
        }
        server = subprocess.Popen(  # noqa: S603
            [
                gunicorn,
                "--bind",
                f"127.0.0.1:{app_port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--log-level",
                "warning",
                "multiserver_app:create_app()",
            ],
            env=env,
        )
        try:
            url = f"http://127.0.0.1:{app_port}"
            for _ in range(300):
                try:
                    urllib.request.urlopen(url + "/me", timeout=1)  # noqa: S310
                except urllib.error.HTTPError:
                    break
                except OSError:
                    time.sleep(0.1)
            run = subprocess.run(  # noqa: S603
                [
                    wrk,
                    "-t",
                    str(connections),
                    "-c",
                    str(connections),
                    "-d",
                    f"{seconds}s",
                    "--timeout",
                    "5s",
                    "-s",
                    str(HERE / "load.lua"),
                    url,
                ],
                capture_output=True,
                text=True,
                check=True,
                timeout=seconds + 60,
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT"))
    result = dict(re.findall(r"(\w+)=([\d.]+)", line))
    rate = float(result["requests"]) / float(result["seconds"])
    print(
        f"\n6. Load: gunicorn (2 workers x 4 threads) + Redis, wrk {connections} "
        f"connections for {seconds} s"
    )
    print(
        f"{'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'logins':>7} "
        f"{'reissues':>9} {'protected':>10} {'failures':>9} {'reused':>7} {'lost':>5} "
        f"{'socket errors':>14}"
    )
    print(
        f"{rate:>11.0f} {float(result['p50_ms']):>8.2f} {float(result['p99_ms']):>8.2f} "
        f"{result['requests']:>9} {result['logins']:>7} {result['reissues']:>9} "
        f"{result['protected']:>10} {result['failures']:>9} {result['reused']:>7} "
        f"{result['lost']:>5} {result['socket_errors']:>14}"
    )


if __name__ == "__main__":
    main()
