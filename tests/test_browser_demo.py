"""The browser demo in a real, headless Chromium: the example app served by ``flask run``
on a loopback port, three-second access tokens, and Playwright clicking through the page.
Every page must load without a script error, a CSP violation or a 404 (the browser's own
``/favicon.ico`` request included).

Needs Debian's ``chromium`` (``/usr/bin/chromium``, or the path in DUALTOKEN_CHROMIUM);
skipped with that reason where it is missing, which ``.ci/run`` refuses, so CI always runs
it (it installs the browser).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving import Served, serve_example

CHROMIUM = os.environ.get("DUALTOKEN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: apt-get install chromium (or set DUALTOKEN_CHROMIUM)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect

ACCESS_SECONDS = 3
# Debian's Chromium, as root, on a machine with no way out: no sandbox, no GPU, and none of
# the background connections to Google's hosts.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    """A fresh app (store and database) per test, so each starts with no session; a test
    parametrized indirectly on ``served`` gives its own access token lifetime, or a dict
    of settings (``FLASK_DUALTOKEN_*`` variables)."""
    param = getattr(request, "param", ACCESS_SECONDS)
    settings = dict(param) if isinstance(param, dict) else {"ACCESS_EXPIRES": str(param)}
    settings.setdefault("ACCESS_EXPIRES", str(ACCESS_SECONDS))
    env = {f"FLASK_DUALTOKEN_{key}": value for key, value in settings.items()}
    with serve_example(tmp_path, **env) as served:
        yield served


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


class Device:
    """One browser profile (its own cookies and localStorage) with the pages it opened,
    recording every script error, CSP violation and 404 on them."""

    def __init__(self, chromium: Any, url: str) -> None:
        self.url = url
        self.context = chromium.new_context()
        self.context.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.not_found: list[str] = []
        self.pages: list[Any] = []

    def open(self) -> Any:
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)
        page.on("response", self._response)
        page.goto(self.url + "/")
        self.pages.append(page)
        return page

    def _console(self, message: Any) -> None:
        # A 401 or 403 the page handles still shows as "Failed to load resource". So does a
        # 404, and for the browser's own requests (the /favicon.ico it asks for when the
        # page names no icon) that message is the only trace: no response event fires.
        if message.type != "error":
            return
        if "status of 404" in message.text:
            self.not_found.append(message.location.get("url") or message.text)
        elif "Failed to load resource" not in message.text:
            self.errors.append(message.text)

    def _response(self, response: Any) -> None:
        if response.status == 404:
            self.not_found.append(response.url)

    def login(self, username: str = "alice", password: str = "alice-password") -> Any:
        page = self.open()
        page.fill("#username", username)
        page.fill("#password", password)
        page.click("#login")
        expect(page.locator("#who")).to_have_text(username)
        return page

    def cookies(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(c["name"], c["path"]): c for c in self.context.cookies()}

    def close(self) -> None:
        self.context.close()
        assert self.errors == []
        assert self.not_found == []


@pytest.fixture
def devices(chromium: Any, served: Served) -> Iterator[Any]:
    opened: list[Device] = []

    def make() -> Device:
        device = Device(chromium, served.url)
        opened.append(device)
        return device

    yield make
    for device in opened:
        device.close()


def log_of(page: Any) -> str:
    return str(page.locator("#log").inner_text())


def reissues(page: Any) -> int:
    return int(page.locator("#reissues").inner_text())


def entries(page: Any, text: str) -> Any:
    """The entries of the page's event log that contain ``text``."""
    return page.locator("#log li", has_text=text)


def expect_logged(page: Any, text: str) -> None:
    expect(entries(page, text).first).to_be_visible()


def last_used(page: Any) -> Any:
    """The "Last used" cell of this browser's own row in the sessions table."""
    return page.locator("#sessions tr.current td").nth(2)


def wait_for_reissues(page: Any, count: int) -> None:
    deadline = time.monotonic() + 4 * ACCESS_SECONDS * max(count, 1)
    while reissues(page) < count:
        assert time.monotonic() < deadline, log_of(page)
        page.wait_for_timeout(100)


def test_login_keeps_every_token_out_of_the_pages_reach(devices: Any) -> None:
    device = devices()
    page = device.login()
    jar = device.cookies()
    assert set(jar) == {
        ("__Host-dualtoken_at", "/"),
        ("__Host-dualtoken_csrf", "/"),
        ("__Secure-dualtoken_rt", "/auth/reissue"),
        ("__Secure-dualtoken_rt", "/auth/logout"),
    }
    for (name, _), cookie in jar.items():
        assert cookie["secure"] and cookie["sameSite"] == "Strict", name
        assert cookie["httpOnly"] == (name != "__Host-dualtoken_csrf"), name
    readable = page.evaluate("document.cookie")
    assert readable.startswith("__Host-dualtoken_csrf=")
    assert "dualtoken_at" not in readable and "dualtoken_rt" not in readable
    assert "alice" in page.locator("#me").inner_text()


def test_the_access_token_counts_down_and_is_reissued_by_itself(devices: Any) -> None:
    device = devices()
    page = device.login()
    first = int(page.locator("#expires-in").inner_text())
    assert 0 < first <= ACCESS_SECONDS
    used = last_used(page).inner_text()
    for count in (1, 2):
        # Each rotation is a use of the session: the table follows without a Refresh click.
        wait_for_reissues(page, count)
        expect(last_used(page)).not_to_have_text(used)
        used = last_used(page).inner_text()
    assert "reissued (access token expired): new access token for 3 seconds" in log_of(page)
    assert "refused" not in log_of(page)
    calls = entries(page, "GET /me: alice (admin)").count()
    page.click("#call-me")
    expect(entries(page, "GET /me: alice (admin)")).to_have_count(calls + 1)
    # Still the one session the login started, rotated.
    page.click("#refresh-sessions")
    expect(page.locator("#sessions tr")).to_have_count(1)
    expect(page.locator("#sessions tr.current")).to_have_count(1)


def test_a_reissue_shows_in_the_sessions_last_used_column(devices: Any) -> None:
    device = devices()
    page = device.login()
    expect(page.locator("#sessions tr.current")).to_have_count(1)
    at_login = last_used(page).inner_text()
    assert at_login
    # The store keeps the last use in whole seconds: a reissue in the next second shows.
    page.wait_for_timeout(1100)
    page.click("#reissue-now")
    expect_logged(page, "reissued (button)")
    expect(last_used(page)).not_to_have_text(at_login)
    expect(page.locator("#sessions tr")).to_have_count(1)


@pytest.mark.parametrize(
    ("served", "access"), [(ACCESS_SECONDS, "3 seconds"), (60, "1 minute")], indirect=["served"]
)
def test_durations_are_logged_in_words(devices: Any, access: str) -> None:
    device = devices()
    page = device.login()
    expect_logged(page, f"logged in: access token for {access}, session for 14 days")
    page.click("#reissue-now")
    expect_logged(page, f"reissued (button): new access token for {access}")
    assert not re.search(r"\d s\b", log_of(page)), log_of(page)


def test_a_throttled_login_says_when_to_retry_in_words(devices: Any) -> None:
    page = devices().open()
    page.fill("#username", "nobody")
    page.fill("#password", "wrong")
    for count in range(1, 6):  # DUALTOKEN_LOGIN_MAX_ATTEMPTS: 5 per username per 5 minutes
        page.click("#login")
        expect(entries(page, "login refused: invalid_credentials")).to_have_count(count)
    page.click("#login")
    expect_logged(page, "login refused: too_many_attempts, retry in ")
    assert re.search(r"retry in (5 minutes|4 minutes( \d+ seconds?)?)$", log_of(page), re.M)


def test_the_page_has_an_icon_and_no_request_of_it_is_a_404(devices: Any) -> None:
    device = devices()
    page = device.login()  # time for the browser to ask for an icon
    icon = page.locator('link[rel="icon"]')
    expect(icon).to_have_count(1)
    href = page.evaluate("document.querySelector('link[rel=\"icon\"]').href")
    assert href.startswith(device.url + "/static/")  # same origin: the CSP's 'self' allows it
    response = page.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert device.not_found == []  # no /favicon.ico, nor any other 404
    assert device.errors == []  # and no CSP violation


def test_a_second_tab_shares_the_session_and_both_stay_signed_in(devices: Any) -> None:
    device = devices()
    first = device.login()
    second = device.open()
    expect(second.locator("#who")).to_have_text("alice")
    for _ in range(2):
        # Both tabs reissue at the same instant with the same refresh cookie: the second
        # request gets the first one's new pair back (the grace window), not a reuse alarm.
        done = [entries(page, "reissued (button)").count() for page in (first, second)]
        at = first.evaluate("Date.now() + 300")
        for page in (first, second):
            page.evaluate(
                "at => setTimeout(() => document.getElementById('reissue-now').click(),"
                " at - Date.now())",
                at,
            )
        for page, before in zip((first, second), done, strict=True):
            expect(entries(page, "reissued (button)")).to_have_count(before + 1)
    wait_for_reissues(first, 3)  # and the automatic reissues go on
    for page in (first, second):
        assert "refused" not in log_of(page)
        calls = entries(page, "GET /me: alice").count()
        page.click("#call-me")
        expect(entries(page, "GET /me: alice")).to_have_count(calls + 1)
        expect(page.locator("#logged-in")).to_be_visible()
    first.click("#refresh-sessions")
    expect(first.locator("#sessions tr")).to_have_count(1)


def test_logout_signs_out_every_tab_and_clears_the_cookies(devices: Any) -> None:
    device = devices()
    first = device.login()
    second = device.open()
    expect(second.locator("#who")).to_have_text("alice")
    first.click("#logout")
    expect(first.locator("#logged-out")).to_be_visible()
    expect(second.locator("#logged-out")).to_be_visible()
    assert [c for c in device.context.cookies() if "dualtoken" in c["name"]] == []
    again = device.open()  # a reload: nothing left to sign in with
    expect(again.locator("#logged-out")).to_be_visible()


def test_sessions_can_be_listed_and_ended_from_another_device(devices: Any) -> None:
    laptop, phone = devices(), devices()
    laptop_page = laptop.login()
    phone_page = phone.login()
    laptop_page.click("#refresh-sessions")
    expect(laptop_page.locator("#sessions tr")).to_have_count(2)
    laptop_page.click("#sessions .end-session")
    expect(laptop_page.locator("#sessions tr")).to_have_count(1)
    # The phone finds out at its next reissue, at the latest one access token later.
    expect(phone_page.locator("#logged-out")).to_be_visible(timeout=4 * ACCESS_SECONDS * 1000)
    assert re.search(r"reissue refused: 401 session_revoked", log_of(phone_page))
    expect(laptop_page.locator("#logged-in")).to_be_visible()


def test_log_out_everywhere_ends_the_other_devices_too(devices: Any) -> None:
    laptop, phone = devices(), devices()
    laptop_page = laptop.login()
    phone_page = phone.login()
    laptop_page.click("#logout-all")
    expect(laptop_page.locator("#logged-out")).to_be_visible()
    expect(phone_page.locator("#logged-out")).to_be_visible(timeout=4 * ACCESS_SECONDS * 1000)
    assert "session_revoked" in log_of(phone_page)


def test_roles_and_wrong_passwords_show_as_errors(devices: Any) -> None:
    device = devices()
    page = device.open()
    page.fill("#username", "bob")
    page.fill("#password", "wrong")
    page.click("#login")
    expect_logged(page, "login refused: invalid_credentials")
    page = device.login("bob", "bob-password")
    page.click("#call-admin")
    expect_logged(page, "GET /admin: 403 insufficient_role")


# -- sensitive actions -----------------------------------------------------------------------


def test_the_page_shows_when_the_user_last_proved_who_they_are(devices: Any) -> None:
    page = devices().login()
    shown = page.locator("#auth-time")
    expect(shown).to_contain_text(" ago)")
    assert re.fullmatch(r"\S.* \((\d+ seconds?) ago\)", shown.inner_text()), shown.inner_text()
    assert '"auth_time":' in page.locator("#me").inner_text()


def test_a_password_change_keeps_this_browser_and_signs_out_the_others(devices: Any) -> None:
    laptop, phone = devices(), devices()
    laptop_page = laptop.login()
    phone_page = phone.login()
    laptop_page.fill("#new-password", "a-new-password")
    laptop_page.click("#change-password")
    expect_logged(laptop_page, "password changed; every other session has ended")
    expect(laptop_page.locator("#sessions tr")).to_have_count(1)
    # The phone finds out at its next reissue, at the latest one access token later.
    expect(phone_page.locator("#logged-out")).to_be_visible(timeout=4 * ACCESS_SECONDS * 1000)
    assert "reissue refused: 401 session_revoked" in log_of(phone_page)
    before = reissues(laptop_page)
    wait_for_reissues(laptop_page, before + 1)  # the laptop carries on
    expect(laptop_page.locator("#logged-in")).to_be_visible()
    # The old password is gone, the new one works.
    again = devices().open()
    again.fill("#password", "alice-password")
    again.click("#login")
    expect_logged(again, "login refused: invalid_credentials")
    devices().login(password="a-new-password")


@pytest.mark.parametrize("served", [{"FRESH_MAX_AGE": "2"}], indirect=True)
def test_an_old_login_must_reauthenticate_before_changing_the_password(devices: Any) -> None:
    page = devices().login()
    expect(page.locator("#auth-time")).to_contain_text(" ago)")
    logged_in_at = page.locator("#auth-time").inner_text().split(" (")[0]
    page.wait_for_timeout(2600)  # older than DUALTOKEN_FRESH_MAX_AGE
    page.fill("#new-password", "a-new-password")
    page.click("#change-password")
    expect_logged(
        page, "password change refused: insufficient_user_authentication: re-authenticate first"
    )
    page.fill("#reauth-password", "wrong")
    page.click("#reauth")
    expect_logged(page, "re-authentication refused: invalid_credentials")
    page.fill("#reauth-password", "alice-password")
    page.click("#reauth")
    expect_logged(page, "re-authenticated: new access token for 3 seconds")
    expect(page.locator("#auth-time")).not_to_contain_text(logged_in_at)
    assert page.locator("#reauth-password").input_value() == ""
    page.click("#change-password")
    expect_logged(page, "password changed; every other session has ended")
    expect(page.locator("#sessions tr")).to_have_count(1)
    wait_for_reissues(page, reissues(page) + 1)  # the same session, rotating on
    expect(page.locator("#logged-in")).to_be_visible()
