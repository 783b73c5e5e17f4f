"""The reports dashboard in a real headless Chromium against a real gunicorn: a customer of
Lumen Goods asks for a person over the API; the CX lead opens the brand's report, sees the
charts (drawn by the server, nothing fetched from elsewhere), picks a date range, and follows
the escalations figure to the conversation behind it.

The `browser`, `page`, `screenshot` and `browser_sign_in` fixtures are in
tests/web/conftest.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Request, expect
from test_handoff_browser import ask_for_a_person

pytestmark = pytest.mark.browser
LiveServer = Any
Screenshot = Callable[[Page, str], Path]
BrowserSignIn = Callable[[Page, LiveServer], None]


def test_the_report_charts_its_figures_and_links_them_to_conversations(
    page: Page, live_server: LiveServer, screenshot: Screenshot,
    browser_sign_in: BrowserSignIn,
) -> None:
    conversation_id = ask_for_a_person(live_server)
    elsewhere: list[str] = []

    def note(request: Request) -> None:
        if urlsplit(request.url).netloc != urlsplit(live_server.url).netloc:
            elsewhere.append(request.url)

    page.on("request", note)
    browser_sign_in(page, live_server)
    page.get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", name="Reports: every brand")).to_be_visible()

    today = dt.datetime.now(dt.UTC).date()
    page.get_by_label("Brand").select_option(label="Lumen Goods")
    page.get_by_label("From").fill((today - dt.timedelta(days=6)).isoformat())
    page.get_by_label("To (inclusive)").fill(today.isoformat())
    page.get_by_role("button", name="Show").click()

    expect(page.get_by_role("heading", name="Reports: Lumen Goods")).to_be_visible()
    by_day = page.get_by_role("img", name="Conversations per day, by outcome")
    expect(by_day).to_be_visible()
    expect(page.get_by_role("img", name="Ratings (latest per conversation)")).to_be_visible()
    # Today's bar at least, split by outcome, each part a link to its conversations.
    expect(by_day.locator("a rect")).not_to_have_count(0)
    escalated = page.locator('[data-figure="outcomes.escalated"]')
    count = int(escalated.inner_text())
    assert count >= 1
    screenshot(page, "report")

    escalated.click()
    expect(page.get_by_role("heading", name="Conversations")).to_be_visible()
    expect(page.locator("[data-count]")).to_have_text(str(count))
    expect(page.get_by_role("link", name=conversation_id)).to_be_visible()
    assert elsewhere == []
