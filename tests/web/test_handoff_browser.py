"""A human agent takes over a conversation in a real headless Chromium against a real
gunicorn: the customer asks Lumen Goods' agent for a person over the API, the agent takes the
handoff from the queue, answers in the console and hands the conversation back; the customer
sees the person's message through the API. Then the CX team marks the handoff as one the agent
should have handled and gets its eval case.

The `browser`, `page`, `screenshot` and `browser_sign_in` fixtures are in
tests/web/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser
#: The session fixture `live_server` (tests/conftest.py LiveServer): url, key(slug), credentials.
LiveServer = Any
#: The fixtures of tests/web/conftest.py.
Screenshot = Callable[[Page, str], Path]
BrowserSignIn = Callable[[Page, LiveServer], None]

#: A turn may embed the message and read its signals on the CPU: leave room.
TURN_TIMEOUT_S = 60
REPLY = "Hi, this is a person from the Lumen Goods team. How can I help?"


def ask_for_a_person(live_server: LiveServer) -> str:
    """A Lumen Goods conversation in which the customer asked for a person; its id."""
    headers = {"Authorization": f"Bearer {live_server.key('lumen-goods')}"}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=TURN_TIMEOUT_S) as api:
        started = api.post("/v1/conversations", json={})
        assert started.status_code in (200, 201), started.text
        conversation_id: str = started.json()["id"]
        turn = api.post(f"/v1/conversations/{conversation_id}/messages",
                        json={"text": "let me talk to a person"})
        assert turn.status_code == 200, turn.text
    return conversation_id


def transcript(live_server: LiveServer, conversation_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{live_server.url}/v1/conversations/{conversation_id}",
        headers={"Authorization": f"Bearer {live_server.key('lumen-goods')}"}, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_it_lets_a_human_agent_take_answer_and_hand_back_a_conversation(
    page: Page, live_server: LiveServer, screenshot: Screenshot,
    browser_sign_in: BrowserSignIn,
) -> None:
    conversation_id = ask_for_a_person(live_server)
    assert transcript(live_server, conversation_id)["status"] == "pending_human"
    browser_sign_in(page, live_server)

    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Queue").click()
    queue = page.get_by_role("region", name="Waiting for a human")
    expect(queue).to_contain_text("the customer asked for a person")
    # The live server is shared: other tests may have left handoffs; take the newest one.
    row = queue.get_by_role("row").filter(has_text="Lumen Goods").last
    expect(row).to_contain_text("waiting")
    screenshot(page, "handoff-queue")
    row.get_by_role("button", name="Take").click()

    expect(page.get_by_role("heading", name="Summary")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("You have taken this conversation")
    handoff_id = page.url.rsplit("/", 1)[-1]
    expect(page.get_by_role("link", name=conversation_id)).to_be_visible()
    expect(page.get_by_role("complementary", name="Handoff packet")).to_contain_text(
        "Why it was handed off")
    page.get_by_label("Message", exact=True).fill(REPLY)
    page.get_by_role("button", name="Send").click()

    conversation = page.get_by_role("list", name="Conversation transcript")
    human = conversation.locator(".turn-human")
    expect(human).to_contain_text(REPLY)
    expect(human).to_contain_text(live_server.credentials["admin"]["username"])
    screenshot(page, "handoff-console")
    page.get_by_role("button", name="Hand back to the agent").click()
    expect(page.get_by_role("status")).to_contain_text("Handed back to the agent")
    expect(page.get_by_label("Message", exact=True)).to_have_count(0)
    screenshot(page, "handoff-returned")

    seen = transcript(live_server, conversation_id)
    assert seen["status"] == "active"
    roles = [message["role"] for message in seen["messages"]]
    assert roles[-2:] == ["human", "agent"], roles  # the person, then the agent is back
    person = seen["messages"][-2]
    assert person["text"] == REPLY
    assert person["author"] == live_server.credentials["admin"]["username"]

    page.goto(f"{live_server.url}/admin/brands/lumen-goods/handoffs")
    page.locator(f"#{handoff_id}").get_by_role(
        "button", name="Agent should have handled it").click()
    expect(page.get_by_role("status")).to_contain_text(f"Reviewed {handoff_id}")
    expect(page.get_by_label(f"Eval case YAML for {handoff_id}")).to_contain_text(
        "let me talk to a person")
    screenshot(page, "handoff-review")
