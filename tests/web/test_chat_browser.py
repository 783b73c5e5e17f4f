"""The chat widget and the admin in a real headless Chromium against a real gunicorn.

The `browser`, `page` and `screenshot` fixtures are in tests/web/conftest.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from appliance.identity import signature

pytestmark = pytest.mark.browser
#: The session fixture `live_server` (tests/conftest.py LiveServer): url, key(slug), credentials.
LiveServer = Any

#: The tiny CPU model answers in 1-3 s; leave room for a loaded machine.
REPLY_TIMEOUT_MS = 60_000
#: screenshot(page, name), the fixture in tests/web/conftest.py.
Screenshot = Callable[[Page, str], Path]


# Records each state the widget goes through and whether the input was disabled in it, and
# the reply bubble's text every time it changes while the reply streams.
WATCH_WIDGET = """
(root) => {
  window.widgetStates = [];
  window.streamedTexts = [];
  new MutationObserver(() => {
    window.widgetStates.push(
      root.dataset.state + ':' + root.querySelector('textarea').disabled);
  }).observe(root, {attributes: true, attributeFilter: ['data-state']});
  new MutationObserver(() => {
    const bubbles = root.querySelectorAll('.sbw-agent .sbw-text');
    const last = bubbles[bubbles.length - 1];
    if (root.dataset.state === 'streaming' && last && last.textContent) {
      window.streamedTexts.push(last.textContent);
    }
  }).observe(root.querySelector('.sbw-log'),
             {childList: true, subtree: true, characterData: true});
}
"""


def test_it_streams_a_reply_in_the_chat_widget(
    page: Page, live_server: LiveServer, screenshot: Screenshot
) -> None:
    page.goto(f"{live_server.url}/chat/lumen-goods")
    widget = page.locator("#switchboard-chat")
    expect(widget).to_have_attribute("data-state", "ready", timeout=30_000)
    greeting = page.locator(".sbw-agent").first
    expect(greeting.locator(".sbw-who")).to_have_text("Juniper")
    expect(greeting.locator(".sbw-text")).to_contain_text("I'm Juniper from Lumen Goods")
    expect(page.get_by_role("log")).to_have_attribute("aria-live", "polite")

    widget.evaluate(WATCH_WIDGET)
    question = "Hello! How do I subscribe to the newsletter 1234?"
    page.get_by_label("Message Juniper").fill(question)
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".sbw-customer .sbw-text")).to_have_text(question)
    expect(widget).to_have_attribute("data-state", "ready", timeout=REPLY_TIMEOUT_MS)

    agent_bubbles = page.locator(".sbw-agent .sbw-text")
    expect(agent_bubbles).to_have_count(2)
    reply = agent_bubbles.nth(1).text_content() or ""
    assert reply.strip(), "the agent's reply bubble is empty"
    assert page.locator(".sbw-error").count() == 0
    states = page.evaluate("window.widgetStates")
    assert "streaming:true" in states, f"input not disabled while streaming: {states}"
    assert states[-1] == "ready:false"
    assert page.evaluate("window.streamedTexts"), "no text was shown before the reply ended"
    expect(page.get_by_label("Message Juniper")).to_be_enabled()
    screenshot(page, "chat")

    conversation_id = widget.get_attribute("data-conversation-id")
    assert conversation_id
    response = httpx.get(
        f"{live_server.url}/v1/conversations/{conversation_id}",
        headers={"Authorization": f"Bearer {live_server.key('lumen-goods')}"}, timeout=10,
    )
    assert response.status_code == 200, response.text
    messages = response.json()["messages"]
    assert [m["role"] for m in messages] == ["agent", "customer", "agent"]
    assert messages[1]["text"] == question
    assert messages[2]["text"] == reply, "the bubble shows the authoritative final text"


def test_it_shows_the_sources_of_a_grounded_reply(
    page: Page, live_server: LiveServer, screenshot: Screenshot
) -> None:
    page.goto(f"{live_server.url}/chat/lumen-goods")
    widget = page.locator("#switchboard-chat")
    expect(widget).to_have_attribute("data-state", "ready", timeout=30_000)

    page.get_by_label("Message Juniper").fill("How many days do I have to return an item?")
    page.get_by_role("button", name="Send").click()
    expect(widget).to_have_attribute("data-state", "ready", timeout=REPLY_TIMEOUT_MS)

    reply = page.locator(".sbw-agent").nth(1)
    sources = reply.locator(".sbw-sources")
    expect(sources).to_contain_text("Sources:")
    conversation_id = widget.get_attribute("data-conversation-id")
    transcript = httpx.get(
        f"{live_server.url}/v1/conversations/{conversation_id}",
        headers={"Authorization": f"Bearer {live_server.key('lumen-goods')}"}, timeout=10,
    ).json()
    citations = transcript["messages"][-1]["citations"]
    assert citations, "the demo's return policy grounds this answer"
    for citation in citations:
        expect(sources).to_contain_text(citation["title"])
    screenshot(page, "chat-sources")


def test_it_shows_an_api_error_readably(
    page: Page, live_server: LiveServer, screenshot: Screenshot
) -> None:
    page.goto(f"{live_server.url}/chat/rho-bank")
    widget = page.locator("#switchboard-chat")
    expect(widget).to_have_attribute("data-state", "ready", timeout=30_000)
    expect(page.locator(".sbw-agent .sbw-who").first).to_have_text("Ada")
    conversation_id = widget.get_attribute("data-conversation-id")
    closed = httpx.post(
        f"{live_server.url}/v1/conversations/{conversation_id}/close",
        headers={"Authorization": f"Bearer {live_server.key('rho-bank')}"}, timeout=10,
    )
    assert closed.status_code == 200, closed.text

    page.get_by_label("Message Ada").fill("Is my card blocked?")
    page.get_by_label("Message Ada").press("Enter")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("This conversation has ended.")
    expect(page.get_by_label("Message Ada")).to_have_value("Is my card blocked?")
    screenshot(page, "chat-error")

    page.get_by_role("button", name="Start a new conversation").click()
    expect(widget).to_have_attribute("data-state", "ready", timeout=30_000)
    assert widget.get_attribute("data-conversation-id") != conversation_id
    expect(page.locator(".sbw-agent .sbw-text").first).to_contain_text("I'm Ada")


def test_it_shows_both_demo_brands_on_the_dashboard(
    page: Page, live_server: LiveServer, screenshot: Screenshot
) -> None:
    page.goto(f"{live_server.url}/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    screenshot(page, "login")
    page.get_by_label("Username").fill(live_server.credentials["admin"]["username"])
    page.get_by_label("Password").fill(live_server.credentials["admin"]["password"])
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    brands = page.get_by_role("region", name="Brands")
    expect(brands.get_by_role("link", name="Lumen Goods", exact=True)).to_be_visible()
    expect(brands.get_by_role("link", name="Rho-Bank", exact=True)).to_be_visible()
    expect(page.get_by_role("region", name="Models")).to_contain_text("smollm2-135m-instruct")
    screenshot(page, "dashboard")

    brands.get_by_role("link", name="Lumen Goods", exact=True).click()
    expect(page.get_by_label("Agent name")).to_have_value("Juniper")
    screenshot(page, "brand")

    page.get_by_role("link", name="Dashboard").first.click()
    conversations = page.get_by_role("region", name="Recent conversations")
    lumen_row = conversations.get_by_role("row").filter(has_text="Lumen Goods")
    lumen_row.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="Transcript")).to_be_visible()
    page.locator(".trace summary").first.click()
    expect(page.locator(".trace").first).to_contain_text("smollm2-135m-instruct")
    screenshot(page, "transcript")

    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("table")).to_contain_text("admin.login")
    screenshot(page, "audit")
    page.get_by_role("link", name="Users").click()
    expect(page.get_by_role("table")).to_contain_text("admin")
    screenshot(page, "users")


def test_the_widget_opens_a_conversation_for_a_customer_the_brands_site_signed(
    page: Page, live_server: LiveServer
) -> None:
    made = live_server.appliance("brands", "identity-secret", "create", "rho-bank")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    # The brand's page, served from the appliance's origin so the widget's calls are
    # same-origin; its server computed the signature with the brand's identity secret.
    embed = f"{live_server.url}/signed-embed"
    page.route(embed, lambda route: route.fulfill(content_type="text/html", body=f"""
        <!doctype html><title>Rho-Bank</title>
        <div id="chat" data-customer-id="cust_42" data-customer-name="Ada"
             data-customer-signature="{signature(secret, 'cust_42')}"></div>
        <script src="/chat/static/widget.js" data-brand="rho-bank" data-target="chat"></script>
    """))

    page.goto(embed)

    widget = page.locator("#chat")
    expect(widget).to_have_attribute("data-state", "ready", timeout=30_000)
    conversation_id = widget.get_attribute("data-conversation-id")
    response = httpx.get(
        f"{live_server.url}/v1/conversations/{conversation_id}",
        headers={"Authorization": f"Bearer {live_server.key('rho-bank')}"}, timeout=10,
    )
    assert response.json()["customer"] == {"id": "cust_42", "name": "Ada",
                                           "assurance": "asserted"}


def test_the_widget_says_so_when_the_signature_is_wrong(
    page: Page, live_server: LiveServer
) -> None:
    embed = f"{live_server.url}/badly-signed-embed"
    page.route(embed, lambda route: route.fulfill(content_type="text/html", body=f"""
        <!doctype html><title>Rho-Bank</title>
        <div id="chat" data-customer-id="cust_42"
             data-customer-signature="{'0' * 64}"></div>
        <script src="/chat/static/widget.js" data-brand="rho-bank" data-target="chat"></script>
    """))

    page.goto(embed)

    widget = page.locator("#chat")
    expect(widget).to_have_attribute("data-state", "error", timeout=30_000)
    expect(widget).to_contain_text("We couldn't confirm that you're signed in")
    assert widget.get_attribute("data-conversation-id") is None


def test_the_customer_says_an_answer_solved_it_and_rates_the_chat(
    page: Page, live_server: LiveServer
) -> None:
    page.goto(f"{live_server.url}/chat/lumen-goods")
    widget = page.locator("#switchboard-chat")
    expect(widget).to_have_attribute("data-state", "ready", timeout=30_000)

    page.get_by_label("Message Juniper").fill("What is your return policy?")
    page.get_by_role("button", name="Send").click()
    expect(widget).to_have_attribute("data-state", "ready", timeout=REPLY_TIMEOUT_MS)
    ask = page.get_by_role("group", name="Did this solve it?")
    expect(ask).to_be_visible()
    ask.get_by_role("button", name="Yes").click()
    page.get_by_role("button", name="4 out of 5").click()
    expect(page.locator(".sbw-feedback")).to_have_text("Thanks for your rating!")

    conversation_id = widget.get_attribute("data-conversation-id")
    key = {"Authorization": f"Bearer {live_server.key('lumen-goods')}"}
    closed = httpx.post(f"{live_server.url}/v1/conversations/{conversation_id}/close",
                        headers=key, timeout=10)
    assert closed.status_code == 200
    outcome = httpx.get(f"{live_server.url}/v1/conversations/{conversation_id}",
                        headers=key, timeout=10).json()["outcome"]
    assert (outcome["type"], outcome["how"], outcome["evidence"]["rule"]) == (
        "resolved", "confirmed", "feedback_resolved")
    assert outcome["evidence"]["feedback"]["csat"] == 4
