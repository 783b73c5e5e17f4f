"""The chat widget when the API is busy, in a real headless Chromium against a real gunicorn:
a 503 with Retry-After shows "Busy, retrying", and the widget sends the same message again,
with the same Idempotency-Key, until it is answered."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

pytestmark = pytest.mark.browser
LiveServer = Any
#: The tiny CPU model answers in 1-3 s; leave room for a loaded machine.
REPLY_TIMEOUT_MS = 60_000
BUSY = {"error": {"message": "model busy", "type": "server_error", "param": None,
                  "code": "overloaded"}, "request_id": "req_test"}
# Records every text the status line shows.
WATCH_STATUS = """
(status) => {
  window.statusTexts = [];
  new MutationObserver(() => window.statusTexts.push(status.textContent))
    .observe(status, {childList: true, characterData: true, subtree: true});
}
"""


def test_the_widget_says_busy_and_retries_the_same_message(
        page: Page, live_server: LiveServer) -> None:
    keys: list[str | None] = []

    def first_busy(route: Route) -> None:
        keys.append(route.request.headers.get("idempotency-key"))
        if len(keys) == 1:  # the network's answer to the first try: the box is saturated
            route.fulfill(status=503, headers={"Retry-After": "1"},
                          content_type="application/json", body=json.dumps(BUSY))
        else:
            route.continue_()

    page.route("**/v1/conversations/*/messages", first_busy)
    page.goto(f"{live_server.url}/chat/lumen-goods")
    widget = page.locator("#switchboard-chat")
    expect(widget).to_have_attribute("data-state", "ready", timeout=30_000)
    page.locator(".sbw-status").evaluate(WATCH_STATUS)

    page.get_by_label("Message Juniper").fill("Hello there!")
    page.get_by_role("button", name="Send").click()
    expect(widget).to_have_attribute("data-state", "ready", timeout=REPLY_TIMEOUT_MS)

    assert any(text.startswith("Busy, retrying") for text in page.evaluate("window.statusTexts"))
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]
    assert page.locator(".sbw-error").count() == 0
    expect(page.locator(".sbw-agent .sbw-text")).to_have_count(2)
