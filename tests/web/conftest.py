"""Fixtures for the admin and chat pages: CSRF tokens read from the forms, signed-in clients,
and a real headless Chromium for the browser tests (`*_browser.py`).

Chromium comes from the system (Debian's `chromium` package), driven by Playwright's own
driver: no `playwright install`. Without Chromium the browser tests skip on a laptop and fail
in CI.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page, expect, sync_playwright
from werkzeug.test import TestResponse

from appliance.services import Services

#: The password of users made by `sign_in_as`.
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CHROMIUM = os.environ.get("APPLIANCE_TEST_CHROMIUM", "/usr/bin/chromium")
# Without the networking flags Chromium keeps trying to reach Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
#: Where screenshots go; they are also kept in the test's tmp dir.
SCREENSHOTS = os.environ.get("APPLIANCE_TEST_SCREENSHOTS", "")


def csrf_token(html: str) -> str:
    """The CSRF token of the first form in `html`, as a browser would send it."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def login(client: FlaskClient, username: str, password: str) -> TestResponse:
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    return client.post(
        "/admin/login", data={"csrf_token": token, "username": username, "password": password}
    )


def submit(
    client: FlaskClient, page: str, action: str, data: dict[str, str]
) -> TestResponse:
    """POST `data` to `action` with the CSRF token of the form on `page`, like a browser."""
    response = client.get(page)
    assert response.status_code == 200, response.get_data(as_text=True)
    token = csrf_token(response.get_data(as_text=True))
    return client.post(action, data={"csrf_token": token, **data})


Csrf = Callable[[str], str]
Login = Callable[[FlaskClient, str, str], TestResponse]
Submit = Callable[[FlaskClient, str, str, dict[str, str]], TestResponse]


@pytest.fixture(name="csrf_token")
def csrf_token_fixture() -> Csrf:
    return csrf_token


@pytest.fixture(name="login")
def login_fixture() -> Login:
    return login


@pytest.fixture(name="submit")
def submit_fixture() -> Submit:
    return submit


@pytest.fixture
def admin_client(client: FlaskClient, seeded: dict[str, Any]) -> FlaskClient:
    """The test client, signed in as the demo's it_admin."""
    response = login(client, seeded["admin"]["username"], seeded["admin"]["password"])
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture
def sign_in_as(
    client: FlaskClient, services: Services, seeded: dict[str, Any]
) -> Callable[..., FlaskClient]:
    """sign_in_as(role, brand=None): the client, signed in as a new user with that role."""

    def sign_in(role: str, brand: str | None = None) -> FlaskClient:
        username = f"{role}-{brand or 'all'}"
        scope = services.brands.get(brand) if brand else None
        services.users.create(username, PASSWORD, role, scope, actor="test")
        response = login(client, username, PASSWORD)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return sign_in


# --- A real browser (tests/web/test_*_browser.py) ----------------------------------------

#: screenshot(page, name): a full-page PNG in the test's tmp dir (and APPLIANCE_TEST_SCREENSHOTS).
Screenshot = Callable[[Page, str], Path]
#: browser_sign_in(page, live_server): sign in to the admin as the demo's it_admin.
BrowserSignIn = Callable[[Page, Any], None]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module, closed at its end."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in its own context (no cookies shared between tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def screenshot(tmp_path: Path) -> Screenshot:
    def take(page: Page, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(SCREENSHOTS) / path.name)
        return path

    return take


def _browser_sign_in(page: Page, live_server: Any) -> None:
    page.goto(f"{live_server.url}/admin/login")
    page.get_by_label("Username").fill(live_server.credentials["admin"]["username"])
    page.get_by_label("Password").fill(live_server.credentials["admin"]["password"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()


@pytest.fixture
def browser_sign_in() -> BrowserSignIn:
    return _browser_sign_in
