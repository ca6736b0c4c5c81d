"""Client helpers against the example app served for real on a loopback port, with
two-second access tokens (at least one second, counting the rounding of iat to whole
seconds) so that the reissue dance happens during the test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from serving import serve_example

from flask_dualtoken.client import DualTokenAuthError, HttpxAuth, Pair, RequestsAuth


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_example(
        tmp_path_factory.mktemp("client"),
        FLASK_DUALTOKEN_ACCESS_EXPIRES="2",
        FLASK_DUALTOKEN_LOGIN_MAX_ATTEMPTS="0",
    ) as example:
        yield example.url


def wait_out_the_access_token() -> None:
    time.sleep(2.1)


@pytest.fixture(params=["httpx", "requests"])
def make_client(request: pytest.FixtureRequest, served: str) -> Any:
    made: list[Any] = []

    def factory(**auth_options: Any) -> tuple[Any, Any]:
        if request.param == "httpx":
            auth: Any = HttpxAuth(base_url=served, **auth_options)
            client: Any = httpx.Client(base_url=served, auth=auth)
        else:
            auth = RequestsAuth(base_url=served, **auth_options)
            client = BaseUrlSession(served)
            client.auth = auth
        made.append(client)
        return client, auth

    yield factory
    for client in made:
        client.close()


class BaseUrlSession(requests.Session):
    """A requests session that takes paths, as httpx.Client(base_url=...) does."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        return super().request(method, self.base_url + url, *args, **kwargs)


def get(client: Any, path: str) -> Any:
    if isinstance(client, httpx.Client):
        return client.get(path)
    return client.get(path, timeout=30)


def test_the_client_logs_in_and_reissues_when_the_token_expires(make_client: Any) -> None:
    saved: list[Pair] = []
    client, auth = make_client(
        username="alice", password="alice-password", on_refresh=saved.append
    )
    assert get(client, "/me").json()["username"] == "alice"
    first = auth.pair
    wait_out_the_access_token()
    response = get(client, "/me")
    assert response.status_code == 200
    assert auth.pair != first
    assert saved == [first, auth.pair], "the hook saw the login pair and the reissued one"


def test_a_given_pair_is_used_without_logging_in(make_client: Any, served: str) -> None:
    body = httpx.post(
        served + "/auth/login", json={"username": "bob", "password": "bob-password"}
    ).json()
    client, _ = make_client(pair=Pair(body["access_token"], body["refresh_token"]))
    assert get(client, "/me").json()["username"] == "bob"


def test_concurrent_requests_share_one_reissue(make_client: Any) -> None:
    saved: list[Pair] = []
    client, _ = make_client(username="alice", password="alice-password", on_refresh=saved.append)
    get(client, "/me")
    wait_out_the_access_token()
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def worker() -> None:
        barrier.wait()
        statuses.append(get(client, "/me").status_code)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses == [200] * 8
    assert len(saved) == 2, "one login and exactly one reissue"


def test_a_failed_reissue_raises_instead_of_looping(make_client: Any, served: str) -> None:
    client, auth = make_client(username="alice", password="alice-password")
    get(client, "/me")
    pair = auth.pair
    httpx.post(
        served + "/auth/logout",
        headers={"Authorization": f"Bearer {pair.access_token}"},
        json={"refresh_token": pair.refresh_token},
    )
    wait_out_the_access_token()
    with pytest.raises(DualTokenAuthError) as failure:
        get(client, "/me")
    assert (failure.value.status, failure.value.error) == (401, "session_revoked")


def test_wrong_credentials_raise(make_client: Any) -> None:
    client, _ = make_client(username="alice", password="wrong")
    with pytest.raises(DualTokenAuthError) as failure:
        get(client, "/me")
    assert failure.value.error == "invalid_credentials"


def test_other_errors_pass_through(make_client: Any) -> None:
    client, _ = make_client(username="bob", password="bob-password")
    response = get(client, "/admin")
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_role"


def test_pairs_stay_out_of_repr() -> None:
    pair = Pair("header.payload.signature", "r.e.f")
    assert "signature" not in repr(pair)


def test_an_async_httpx_client_does_the_same_dance_with_one_reissue(served: str) -> None:
    import asyncio

    saved: list[Pair] = []
    auth = HttpxAuth(
        base_url=served, username="alice", password="alice-password", on_refresh=saved.append
    )

    async def scenario() -> list[int]:
        async with httpx.AsyncClient(base_url=served, auth=auth) as client:
            assert (await client.get("/me")).json()["username"] == "alice"
            await asyncio.sleep(2.1)  # wait out the access token
            responses = await asyncio.gather(*(client.get("/me") for _ in range(8)))
            return [r.status_code for r in responses]

    assert asyncio.run(scenario()) == [200] * 8
    assert len(saved) == 2, "one login and exactly one reissue"


PAIR = Pair("access.token.given", "refresh.token.given")


@pytest.mark.parametrize("helper", [HttpxAuth, RequestsAuth])
@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://example.test",
        "example.test:5000",
        "//example.test",
        "http://",
        "http://user:secret-pw@example.test",
        "http://:secret-pw@example.test",
        "http://example.test/?x=1",
        "http://example.test/#top",
        "http://example.test:99999",
        "http://example.test:port",
        "https://stra\u00dfe.example",
    ],
)
def test_a_base_url_that_is_not_one_origin_is_refused(helper: Any, base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url") as refused:
        helper(base_url=base_url, pair=PAIR)
    assert "secret-pw" not in str(refused.value)


@pytest.mark.parametrize("helper", [HttpxAuth, RequestsAuth])
def test_a_prefix_cannot_move_login_to_another_host(helper: Any) -> None:
    with pytest.raises(ValueError, match="prefix"):
        helper(base_url="http://example.test", prefix="@elsewhere.test", pair=PAIR)


def test_httpx_auth_needs_a_base_url() -> None:
    with pytest.raises(TypeError, match="base_url"):
        HttpxAuth(pair=PAIR)  # type: ignore[call-arg]


def sent_with_token(kind: str, base_url: str, url: str) -> bool:
    """Whether a request to ``url`` carries the token, over a fake transport."""
    seen: list[str | None] = []
    if kind == "httpx":

        def answer(request: httpx.Request) -> httpx.Response:
            seen.append(request.headers.get("Authorization"))
            return httpx.Response(200, json={})

        transport = httpx.MockTransport(answer)
        with httpx.Client(transport=transport, auth=HttpxAuth(base_url=base_url, pair=PAIR)) as c:
            c.get(url)
    else:

        class Adapter(requests.adapters.BaseAdapter):
            def send(self, request: requests.PreparedRequest, **kwargs: Any) -> Any:
                seen.append(request.headers.get("Authorization"))
                response = requests.Response()
                response.status_code, response.request, response.url = 200, request, request.url
                return response

            def close(self) -> None:
                pass

        with requests.Session() as session:
            session.mount("http://", Adapter())
            session.mount("https://", Adapter())
            session.auth = RequestsAuth(base_url=base_url, pair=PAIR)
            session.get(url, timeout=10)
    assert len(seen) == 1
    return seen[0] == f"Bearer {PAIR.access_token}"


@pytest.mark.parametrize("kind", ["httpx", "requests"])
@pytest.mark.parametrize(
    ("base_url", "url", "same_origin"),
    [
        ("http://example.test", "http://example.test:80/me", True),
        ("https://example.test/", "https://EXAMPLE.test:443/me", True),
        ("HTTPS://Example.Test:443/api", "https://example.test/elsewhere", True),
        ("http://[::1]:8080", "http://[::1]:8080/me", True),
        ("http://xn--bcher-kva.example", "http://b\u00fccher.example/me", True),
        # IDNA 2008 keeps sharp s (xn--strae-oqa); IDNA 2003 would make it strasse.
        ("https://xn--strae-oqa.example", "https://stra\u00dfe.example/me", True),
        ("https://xn--strae-oqa.example", "https://strasse.example/me", False),
        ("http://example.test", "https://example.test/me", False),
        ("https://example.test", "http://example.test:443/me", False),
        ("https://example.test", "https://example.test:8443/me", False),
        ("http://[::1]:8080", "http://[::1]:8081/me", False),
        ("http://example.test", "http://api.example.test/me", False),
        ("http://example.test", "http://example.test.evil/me", False),
        ("http://127.0.0.1:5000", "http://localhost:5000/me", False),
    ],
)
def test_the_token_goes_to_base_urls_origin_only(
    kind: str, base_url: str, url: str, same_origin: bool
) -> None:
    assert sent_with_token(kind, base_url, url) is same_origin


@pytest.mark.parametrize("helper", [HttpxAuth, RequestsAuth])
def test_a_pair_may_be_a_login_answers_dict_and_anything_else_fails_at_once(
    helper: Any,
) -> None:
    answer = {"access_token": "a.b.c", "refresh_token": "d.e.f", "token_type": "Bearer"}
    auth = helper(base_url="http://example.test", pair=answer)
    assert auth.pair == Pair("a.b.c", "d.e.f")
    with pytest.raises(ValueError, match="refresh_token"):
        helper(base_url="http://example.test", pair={"access_token": "a.b.c"})
    with pytest.raises(TypeError, match="Pair"):
        helper(base_url="http://example.test", pair=("a.b.c", "d.e.f"))


# -- failures are shared like successes; one auth object in several event loops ---------


@pytest.fixture(scope="module")
def served_throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_example(tmp_path_factory.mktemp("throttled")) as example:  # 5 tries a window
        yield example.url


@pytest.mark.parametrize("kind", ["httpx", "requests"])
def test_threads_waiting_on_a_failed_login_share_its_failure_instead_of_repeating_it(
    served_throttled: str, kind: str
) -> None:
    # A client with a stale password, used by 20 threads at once: one login attempt, not
    # 20 (which would use up the account's limit and lock its owner out).
    options: dict[str, Any] = {"username": "bob", "password": "stale-password"}
    if kind == "httpx":
        client: Any = httpx.Client(
            base_url=served_throttled, auth=HttpxAuth(base_url=served_throttled, **options)
        )
    else:
        client = BaseUrlSession(served_throttled)
        client.auth = RequestsAuth(base_url=served_throttled, **options)
    barrier = threading.Barrier(20)
    errors: list[str | None] = []

    def worker() -> None:
        barrier.wait()
        try:
            get(client, "/me")
        except DualTokenAuthError as exc:
            errors.append(exc.error)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    client.close()
    assert errors == ["invalid_credentials"] * 20
    owner = httpx.post(
        served_throttled + "/auth/login", json={"username": "bob", "password": "bob-password"}
    )
    assert owner.status_code == 200, owner.text


def test_a_login_answer_that_is_not_a_pair_raises_the_helpers_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>maintenance</html>")

    auth = HttpxAuth(base_url="http://app.test", username="a", password="b")
    with (
        httpx.Client(transport=httpx.MockTransport(answer), auth=auth) as client,
        pytest.raises(DualTokenAuthError) as failure,
    ):
        client.get("http://app.test/me")
    assert (failure.value.status, failure.value.error) == (200, "invalid_response")


def test_one_httpx_auth_serves_one_event_loop_after_another(served: str) -> None:
    import asyncio

    auth = HttpxAuth(base_url=served, username="alice", password="alice-password")

    async def scenario() -> list[int]:
        async with httpx.AsyncClient(base_url=served, auth=auth) as client:
            await client.get("/me")
            await asyncio.sleep(2.1)  # wait out the access token: all 8 need a reissue
            responses = await asyncio.gather(*(client.get("/me") for _ in range(8)))
            return [r.status_code for r in responses]

    assert asyncio.run(scenario()) == [200] * 8
    assert asyncio.run(scenario()) == [200] * 8  # a new loop, the same auth object
