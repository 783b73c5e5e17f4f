"""Replies in the chat widget look like what they say, and a hostile one does nothing: a real
headless Chromium against a real gunicorn.

The test brand's persona and policy are written in Markdown: its greeting, the handoff message
a customer gets on asking for a person, and a hostile message for while they wait (what a
model or a poisoned knowledge source could write). The replies go through the real turn
pipeline and the real SSE stream; the widget swaps the streamed text for the final `html`.

The `browser`, `page` and `screenshot` fixtures are in tests/web/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from appliance.brands import BrandService, Persona, Policy
from appliance.config import load_settings
from appliance.db import database_proxy, open_database

pytestmark = pytest.mark.browser
#: The session fixture `live_server` (tests/conftest.py LiveServer): url, key(slug), credentials.
LiveServer = Any
Screenshot = Callable[[Page, str], Path]

#: A turn embeds the message and reads its signals on the CPU: leave room on a loaded machine.
REPLY_TIMEOUT_MS = 60_000
SLUG = "markup-check"
GREETING = "Hi, I'm **Mia**. I can help with:\n- orders\n- returns"
RICH = ("**Good news:** a colleague will take it from here.\n\n"
        "- They see this conversation\n- You won't need to repeat yourself")
HOSTILE = ('Thanks! <script>window.pwned = "script"</script>'
           '<img src="x" onerror="window.pwned = \'img\'">'
           "[track your order](javascript:window.pwned='link') "
           '<a href="javascript:window.pwned=\'anchor\'">here</a>')


@pytest.fixture(scope="module")
def markdown_brand(live_server: LiveServer) -> Iterator[str]:
    """A brand on the live server whose greeting and handoff messages are Markdown."""
    bound = database_proxy.obj
    db = open_database(load_settings(env=live_server.env).database_url)
    try:
        with db.connection_context():
            BrandService(db).create(
                SLUG, "Markup Check",
                Persona(agent_name="Mia", tone="Friendly and brief.", greeting=GREETING),
                Policy(handoff_message=RICH, awaiting_human_message=HOSTILE), actor="test")
    finally:
        db.close()
        # Other tests in this process bind the proxy to their own database.
        if bound is not None:
            database_proxy.initialize(bound)
    yield SLUG


def send(page: Page, text: str) -> Locator:
    """Send `text` in the widget; the agent's reply bubble once the turn is over."""
    replies = page.locator(".sbw-agent")
    before = replies.count()
    page.get_by_label("Message Mia").fill(text)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#switchboard-chat")).to_have_attribute(
        "data-state", "ready", timeout=REPLY_TIMEOUT_MS)
    expect(replies).to_have_count(before + 1)
    return replies.nth(before)


def expect_rich(bubble: Locator) -> None:
    text = bubble.locator(".sbw-text")
    expect(text.locator("strong")).to_have_text("Good news:")
    expect(text.locator("ul > li")).to_have_text(
        ["They see this conversation", "You won't need to repeat yourself"])
    assert "**" not in (text.text_content() or "")


def expect_inert(page: Page, bubble: Locator) -> None:
    text = bubble.locator(".sbw-text")
    expect(text).to_contain_text('<script>window.pwned = "script"</script>')
    expect(text).to_contain_text("[track your order](javascript:window.pwned='link')")
    expect(page.locator(".sbw-log script, .sbw-log img, .sbw-log iframe")).to_have_count(0)
    expect(text.locator("a")).to_have_count(0)
    assert page.evaluate("window.pwned") is None


def test_it_renders_markdown_replies_and_keeps_hostile_ones_inert(
    page: Page, live_server: LiveServer, markdown_brand: str, screenshot: Screenshot,
) -> None:
    page.goto(f"{live_server.url}/chat/{markdown_brand}")
    widget = page.locator("#switchboard-chat")
    expect(widget).to_have_attribute("data-state", "ready", timeout=30_000)
    greeting = page.locator(".sbw-agent .sbw-text").first
    expect(greeting.locator("strong")).to_have_text("Mia")
    expect(greeting.locator("ul > li")).to_have_text(["orders", "returns"])

    expect_rich(send(page, "I want to talk to a real person right now"))
    hostile = send(page, "hello? **anyone there**")
    expect_inert(page, hostile)
    expect(page.locator(".sbw-customer .sbw-text").last).to_have_text(
        "hello? **anyone there**")
    hostile.locator(".sbw-text").click()  # an event handler that survived would run now
    assert page.evaluate("window.pwned") is None
    screenshot(page, "chat-markdown")

    # After a reload the widget rebuilds the conversation from the transcript's `html`.
    page.reload()
    expect(widget).to_have_attribute("data-state", "ready", timeout=30_000)
    bubbles = page.locator(".sbw-agent")
    expect(bubbles).to_have_count(3)
    expect_rich(bubbles.nth(1))
    expect_inert(page, bubbles.nth(2))
