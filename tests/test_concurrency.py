"""Many tabs refreshing at once with the same pair: exactly one rotation, one answer."""

from __future__ import annotations

import threading
from typing import Any

import jwt
import pytest
from flask import Flask
from helpers import Api, Clock, bearer, session_hash

from flask_dualtoken.store import SessionStore

THREADS = 50


def reissue_in_parallel(app: Flask, pair: dict[str, Any]) -> list[tuple[int, bytes]]:
    barrier = threading.Barrier(THREADS)
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def worker() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post(
            "/auth/reissue",
            headers=bearer(pair["access_token"]),
            json={"refresh_token": pair["refresh_token"]},
        )
        with lock:
            results.append((response.status_code, response.data))

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_fifty_concurrent_reissues_rotate_once_and_all_get_the_same_pair(
    app: Flask, api: Api, store: SessionStore
) -> None:
    pair = api.login()
    results = reissue_in_parallel(app, pair)
    assert len(results) == THREADS
    assert {status for status, _ in results} == {200}
    assert len({body for _, body in results}) == 1, "every response is the same new pair"
    c = jwt.decode(pair["refresh_token"], options={"verify_signature": False})
    assert session_hash(store, c["sub"], c["sid"])["gen"] == "1"


def test_without_grace_concurrent_reissues_end_the_session(make_app: Any) -> None:
    app = make_app(DUALTOKEN_REUSE_GRACE=0)
    api = Api(app)
    pair = api.login()
    results = reissue_in_parallel(app, pair)
    statuses = sorted(status for status, _ in results)
    assert statuses.count(200) == 1
    assert statuses.count(401) == THREADS - 1


@pytest.mark.parametrize(("grace", "rounds"), [(0, 15), (1, 3)])
def test_reuse_racing_a_rotation_always_ends_with_the_session_revoked(
    make_app: Any, clock: Clock, grace: int, rounds: int
) -> None:
    # The thief replays generation 0 after the grace window while the owner rotates
    # generation 1. Whichever runs first, the session must end up revoked and whatever
    # pair the owner got must not work any more.
    app = make_app(DUALTOKEN_REUSE_GRACE=grace)
    api = Api(app)
    for _ in range(rounds):
        stolen = api.login()
        owned = api.reissue(stolen).json
        if grace:
            clock.advance(grace + 0.1)
        barrier = threading.Barrier(2)
        results: dict[str, Any] = {}

        def present(
            name: str,
            pair: dict[str, Any],
            barrier: threading.Barrier = barrier,
            results: dict[str, Any] = results,
        ) -> None:
            client = app.test_client()
            barrier.wait()
            results[name] = client.post(
                "/auth/reissue",
                headers=bearer(pair["access_token"]),
                json={"refresh_token": pair["refresh_token"]},
            )

        threads = [
            threading.Thread(target=present, args=("thief", stolen)),
            threading.Thread(target=present, args=("owner", owned)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert results["thief"].json["error"] == "refresh_token_reused"
        owner = results["owner"]
        if owner.status_code == 200:
            assert api.reissue(owner.json).json["error"] == "session_revoked"
        else:
            assert owner.json["error"] == "session_revoked"
