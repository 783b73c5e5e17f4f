"""Replies in the admin look like what they say: the transcript with its traces, the handoff
console and the Studio's test chat render a message's Markdown through the `message_html`
filter, and a hostile reply comes out as text.

The replies are real: Lumen Goods' handoff messages, sent when a customer asks for a person,
and a workflow's `say` step run in the test chat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.brands import policy_of
from appliance.db.models import Conversation, Handoff
from appliance.services import Services

SLUG = "lumen-goods"
ASKS_FOR_HUMAN = "I want to talk to a real person right now"
RICH = "**Good news:** a colleague will take it from here.\n\n- They see this conversation"
HOSTILE = 'Thanks! <script>alert("x")</script> [track it](javascript:alert(2))'
STUDIO = f"/admin/brands/{SLUG}/workflows/store_hours"
STORE_HOURS = """\
name: store_hours
title: Store hours
description: When the stores are open.
triggers:
  examples:
    - what are your store hours
    - when are you open
requires_identity: false
outcome: informed
tools: []
steps:
  - say: |-
      Our stores are open **9am to 6pm**:

      - Monday to Saturday
      - not on holidays

      See you soon.
"""
Submit = Callable[[FlaskClient, str, str, dict[str, str]], TestResponse]


def page_of(response: TestResponse) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)
    body: str = response.get_data(as_text=True)
    return body


def assert_inert(page: str) -> None:
    assert '&lt;script&gt;alert("x")&lt;/script&gt;' in page, "the script shows as text"
    assert '<script>alert("x")' not in page
    assert "[track it](javascript:alert(2))" in page, "no link to javascript:"
    assert 'href="javascript' not in page


@pytest.fixture
def handed_off(services: Services, seeded: dict[str, Any]) -> Conversation:
    """A Lumen Goods customer asked for a person (reply RICH), then wrote again (HOSTILE)."""
    policy = policy_of(services.brands.get(SLUG)).model_copy(
        update={"handoff_message": RICH, "awaiting_human_message": HOSTILE})
    brand = services.brands.update(SLUG, policy=policy, actor="test")
    conversation, _ = services.conversations.start(brand, {}, "web")
    for text in (ASKS_FOR_HUMAN, "**hello?** <b>anyone</b>"):
        for _ in services.conversations.reply(brand, conversation.public_id, text):
            pass
    return conversation


def test_it_renders_replies_in_the_transcript(
    admin_client: FlaskClient, handed_off: Conversation,
) -> None:
    page = page_of(admin_client.get(f"/admin/conversations/{handed_off.public_id}"))

    assert ('<div class="turn-text markup"><p><strong>Good news:</strong> a colleague will '
            "take it from here.</p>\n<ul>\n<li>They see this conversation</li>\n</ul></div>"
            ) in page
    assert ('<div class="turn-text markup"><p>**hello?** &lt;b&gt;anyone&lt;/b&gt;</p></div>'
            in page), "the customer's words as typed"
    assert_inert(page)


def test_it_renders_replies_in_the_handoff_console(
    admin_client: FlaskClient, handed_off: Conversation,
) -> None:
    handoff = Handoff.get(Handoff.conversation == handed_off.id)

    page = page_of(admin_client.get(f"/admin/handoffs/{handoff.public_id}"))

    assert "<strong>Good news:</strong>" in page
    assert "<li>They see this conversation</li>" in page
    assert_inert(page)


def test_it_renders_replies_in_the_studio_test_chat(
    admin_client: FlaskClient, services: Services, seeded: dict[str, Any], submit: Submit,
) -> None:
    services.workflows.save_draft(services.brands.get(SLUG), STORE_HOURS, "test")

    response = submit(admin_client, STUDIO, f"{STUDIO}/sandbox", {"text": "when are you open?"})

    assert response.status_code == 302, response.get_data(as_text=True)
    page = page_of(admin_client.get(STUDIO))
    assert ("<p>Our stores are open <strong>9am to 6pm</strong>:</p>\n"
            "<ul>\n<li>Monday to Saturday</li>\n<li>not on holidays</li>\n</ul>\n<p>See you soon."
            ) in page
