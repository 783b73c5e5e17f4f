"""The admin's privacy page: a brand's retention and legal holds, placed and released by an
it_admin through the same service as the CLI; customers appear by subject key, never by the
email typed; other roles are refused (the RBAC matrix checks every role); and the same in a
real browser."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from playwright.sync_api import Page, expect

from appliance.db.models import AuditLog, LegalHold
from appliance.services import Services

Submit = Callable[[FlaskClient, str, str, dict[str, str]], Any]
PAGE = "/admin/brands/rho-bank/privacy"
EMAIL = "kenji.tanaka@example.com"
BROWSER_EMAIL = "grace.hopper@example.com"


def test_an_it_admin_places_and_releases_a_hold_on_a_customer(
        admin_client: FlaskClient, submit: Submit, services: Services) -> None:
    page = admin_client.get(PAGE).get_data(as_text=True)
    assert "deleted 365 days after their last message" in page and "No legal holds" in page

    placed = submit(admin_client, PAGE, f"{PAGE}/holds",
                    {"customer": EMAIL, "conversation": "", "reason": "matter 2026-31"})

    assert placed.status_code == 302
    hold = LegalHold.get()
    assert hold.subject_key == services.privacy.subjects.key(services.brands.get("rho-bank"),
                                                             EMAIL.upper())
    page = admin_client.get(PAGE).get_data(as_text=True)
    assert "matter 2026-31" in page and hold.subject_key[:16] in page and EMAIL not in page
    released = submit(admin_client, PAGE, f"{PAGE}/holds/release",
                      {"customer": EMAIL, "conversation": "", "reason": ""})
    assert released.status_code == 302 and LegalHold.select().count() == 0
    actions = [e.action for e in AuditLog.select().where(AuditLog.action.startswith("privacy"))]
    assert actions == ["privacy.hold", "privacy.release"]


def test_a_hold_without_a_reason_or_a_target_is_refused_on_the_page(
        admin_client: FlaskClient, submit: Submit) -> None:
    no_reason = submit(admin_client, PAGE, f"{PAGE}/holds",
                       {"customer": EMAIL, "conversation": "", "reason": ""})
    assert no_reason.status_code == 400
    assert "needs a reason" in no_reason.get_data(as_text=True)
    no_target = submit(admin_client, PAGE, f"{PAGE}/holds",
                       {"customer": "", "conversation": "", "reason": "x"})
    assert no_target.status_code == 400
    assert "either a customer or a conversation" in no_target.get_data(as_text=True)
    unknown = submit(admin_client, PAGE, f"{PAGE}/holds/release",
                     {"customer": EMAIL, "conversation": "", "reason": ""})
    assert unknown.status_code == 404 and LegalHold.select().count() == 0


def test_a_cx_editor_cannot_open_the_privacy_page(
        sign_in_as: Callable[..., FlaskClient]) -> None:
    editor = sign_in_as("cx_editor", "rho-bank")
    assert editor.get(PAGE).status_code == 403


@pytest.mark.browser
def test_in_a_browser_an_it_admin_holds_and_releases_a_customer(
        page: Page, live_server: Any, screenshot: Callable[[Page, str], Path],
        browser_sign_in: Callable[[Page, Any], None]) -> None:
    """In a real Chromium against a real gunicorn (fixtures in tests/web/conftest.py), from
    the brand's page: a hold placed by email is listed by subject key, then released."""
    browser_sign_in(page, live_server)
    page.goto(f"{live_server.url}/admin/brands/rho-bank")
    page.get_by_role("link", name="Privacy").click()
    expect(page.get_by_role("heading", name="Privacy · Rho-Bank")).to_be_visible()
    expect(page.get_by_text("deleted 365 days after their last message")).to_be_visible()

    page.get_by_label("Customer email or id").fill(BROWSER_EMAIL)
    page.get_by_label("Reason").fill("matter 2026-77")
    page.get_by_role("button", name="Place hold").click()

    expect(page.get_by_text("Legal hold placed.")).to_be_visible()
    row = page.get_by_role("row", name="matter 2026-77")
    expect(row).to_contain_text("customer")
    assert BROWSER_EMAIL not in page.content()
    screenshot(page, "privacy-hold")

    page.get_by_label("Customer email or id").fill(BROWSER_EMAIL)
    page.get_by_role("button", name="Release holds on this customer or conversation").click()
    expect(page.get_by_text("1 legal hold(s) released.")).to_be_visible()
    expect(page.get_by_text("No legal holds.")).to_be_visible()
