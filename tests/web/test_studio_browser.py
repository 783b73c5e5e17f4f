"""The Agent Studio in a real headless Chromium against a real gunicorn: create a workflow
from YAML, try it in the test chat, publish, publish a second version and roll back; read a
sentence with one of Rho-Bank's slot formats and see a broken format refused on its line.

The `browser`, `page`, `screenshot` and `browser_sign_in` fixtures are in
tests/web/conftest.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser
#: The session fixture `live_server` (tests/conftest.py LiveServer).
LiveServer = Any
#: The fixtures of tests/web/conftest.py.
Screenshot = Callable[[Page, str], Path]
BrowserSignIn = Callable[[Page, LiveServer], None]

#: A test-chat turn embeds the message and may call the tiny CPU model: leave room.
TURN_TIMEOUT_MS = 60_000
#: The gate plays a suite's conversations twice (draft and live) within one request.
GATE_TIMEOUT_MS = 300_000
NAME = "studio_store_hours"
SOURCE = f"""\
name: {NAME}
title: Store hours
description: When the stores are open.
triggers:
  examples:
    - what are your store hours
    - when are you open
    - what time do you close today
requires_identity: false
outcome: informed
tools: []
steps:
  - say: Our stores are open 9am to 6pm, Monday to Saturday.
"""
SECOND = SOURCE.replace("9am to 6pm", "8am to 8pm")


def version_row(page: Page, number: int) -> Any:
    versions = page.get_by_role("region", name="Versions")
    return versions.get_by_role("row").filter(
        has=page.get_by_role("link", name=f"Version {number}", exact=True))


def test_it_builds_tries_publishes_and_rolls_back_a_workflow(
    page: Page, live_server: LiveServer, screenshot: Screenshot,
    browser_sign_in: BrowserSignIn,
) -> None:
    browser_sign_in(page, live_server)
    # Rho-Bank: no suite covers store hours, and its new triggers take none of the knowledge
    # suite's questions, so the release gate has nothing to run (the gate refusing a draft is
    # the next test); the bank's test system is the session's.
    page.goto(f"{live_server.url}/admin/brands/rho-bank/workflows")
    expect(page.get_by_role("link", name="report_card")).to_be_visible()
    page.get_by_role("link", name="New workflow").click()

    page.get_by_label("YAML").fill(SOURCE)
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", name=f"Workflow {NAME}")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Saved version 1 as a draft")
    expect(version_row(page, 1)).to_contain_text("draft")
    screenshot(page, "studio-draft")

    page.get_by_label("Test message").fill("when are you open?")
    page.get_by_role("button", name="Send").click()
    transcript = page.get_by_role("list", name="Test chat transcript")
    expect(transcript).to_contain_text("Our stores are open 9am to 6pm, Monday to Saturday.",
                                       timeout=TURN_TIMEOUT_MS)
    expect(transcript).to_contain_text("rule workflow_done")
    screenshot(page, "studio-test-chat")

    expect(page.get_by_role("button", name="Publish version 1")).to_be_disabled()
    page.get_by_role("button", name="Check evals").click()
    expect(page.locator(".gate-verdict")).to_contain_text("no suite covers this change")
    page.get_by_role("button", name="Publish version 1").click()
    expect(page.get_by_role("status")).to_contain_text("retrained")
    expect(version_row(page, 1)).to_contain_text("published")

    page.get_by_label("YAML").fill(SECOND)
    page.get_by_label("Note").fill("longer hours")
    page.get_by_role("button", name="Save draft").click()
    expect(version_row(page, 2)).to_contain_text("draft")
    page.get_by_role("button", name="Check evals").click()
    page.get_by_role("button", name="Publish version 2").click()
    expect(version_row(page, 2)).to_contain_text("published")
    expect(version_row(page, 1)).to_contain_text("retired")

    page.get_by_role("link", name="Diff of version 2 against 1").click()
    expect(page.locator(".udiff-add")).to_contain_text(["+  - say: Our stores are open 8am"])
    expect(page.locator(".udiff-del")).to_contain_text(["-  - say: Our stores are open 9am"])
    screenshot(page, "studio-diff")
    page.go_back()

    page.get_by_role("button", name="Roll back").click()
    expect(page.get_by_role("status")).to_contain_text("Rolled back: version 1 is published")
    expect(version_row(page, 1)).to_contain_text("published")
    expect(version_row(page, 2)).to_contain_text("retired")
    expect(version_row(page, 2)).to_contain_text("longer hours")
    screenshot(page, "studio-rolled-back")

    # The live server is shared with the other browser tests: leave the agent as it was.
    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status")).to_contain_text("Disabled")


def test_the_release_gate_refuses_a_draft_whose_write_is_wrong_before_it_can_be_published(
    page: Page, live_server: LiveServer, screenshot: Screenshot,
    browser_sign_in: BrowserSignIn,
) -> None:
    """Rho-Bank's limit increase asking for half the amount the customer gave: its suite
    runs on the draft and on the live version against the bank's test system."""
    browser_sign_in(page, live_server)
    page.goto(f"{live_server.url}/admin/brands/rho-bank/workflows/request_limit_increase")
    editor = page.get_by_label("YAML")
    live = editor.input_value()
    amount = "requested_increase_amount: \"{{ increase | replace(',', '') | int }}\""
    assert amount in live
    editor.fill(live.replace(amount, "requested_increase_amount: "
                             "\"{{ (increase | replace(',', '') | int) // 2 }}\""))
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_contain_text("as a draft")
    publish = page.get_by_role("button", name=re.compile(r"^Publish version \d+$"))
    expect(publish).to_be_disabled()

    page.get_by_role("button", name="Check evals").click()

    verdict = page.locator(".gate-verdict")
    expect(verdict).to_have_attribute("data-verdict", "refused", timeout=GATE_TIMEOUT_MS)
    expect(verdict).to_contain_text("below the brand's floor 0.90")
    failing = page.get_by_role("list", name="Failing cases")
    expect(failing).to_contain_text("request_limit_increase / an increase within the tier's "
                                    "largest: writes: expected")
    expect(publish).to_be_disabled()
    expect(page.get_by_role("button", name="Publish anyway")).to_be_visible()
    screenshot(page, "studio-gate-refused")
    expect(version_row(page, 1)).to_contain_text("published")

    # The live server is shared with the other browser tests: the draft goes back to live.
    page.get_by_label("YAML").fill(live)
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_contain_text("as a draft")


def test_it_tries_and_edits_rho_banks_slot_formats(
    page: Page, live_server: LiveServer, screenshot: Screenshot,
    browser_sign_in: BrowserSignIn,
) -> None:
    browser_sign_in(page, live_server)
    page.goto(f"{live_server.url}/admin/brands/rho-bank/workflows")
    page.get_by_role("link", name="Tools and formats").click()
    expect(page.get_by_role("heading", name="Tools and formats", exact=True)).to_be_visible()
    formats = page.get_by_role("region", name="Slot formats")
    expect(formats).to_contain_text("the last four digits of a card")

    page.get_by_label("Format", exact=True).select_option("card_last_four")
    page.get_by_label("Customer's sentence").fill("Hi, my debit card ending in 4417 was stolen")
    page.get_by_role("button", name="Read it").click()
    expect(page.locator("#try-result")).to_contain_text("reads card_last_four as 4417")
    screenshot(page, "studio-try-format")

    editor = page.get_by_label("YAML")
    saved = editor.input_value()
    pattern = "    pattern: '^[0-9]{4}$'"
    assert pattern in saved
    broken = saved.replace(pattern, "    pattern: '^[0-9{4}$'", 1)
    line = broken.splitlines().index("    pattern: '^[0-9{4}$'") + 1
    editor.fill(broken)
    page.get_by_role("button", name="Save tools and formats").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(f"Line {line} · formats.card_last_four.pattern")
    expect(page.locator(f"#line-{line}")).to_have_class("gutter-error")
    expect(page.get_by_label("YAML")).to_have_value(broken)
    screenshot(page, "studio-format-error")

    # The live server is shared with the other browser tests: store the document unchanged.
    page.get_by_label("YAML").fill(saved)
    page.get_by_role("button", name="Save tools and formats").click()
    expect(page.get_by_role("status")).to_contain_text("Saved the tools and formats")
    expect(page.get_by_label("YAML")).to_have_value(saved)
