"""Every message in /v1 carries `html` beside its `text`: the reply's Markdown rendered and
sanitized (appliance/web/markup.py), in the JSON reply, the SSE `message` event, the transcript
and the greeting.

The replies are the brand's own handoff messages, sent for real when a customer asks for a
person (the supervisor's rule, no model phrasing), so their text is known to the test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from appliance.brands import persona_of, policy_of
from appliance.services import Services

A = "lumen-goods"
ASKS_FOR_HUMAN = "I want to talk to a real person right now"
RICH = ("**Good news:** a colleague will take it from here.\n\n"
        "- They see this conversation\n- You won't need to repeat yourself")
HOSTILE = ('Thanks! <script>alert("x")</script> <img src=x onerror="alert(1)"> '
           "[track your order](javascript:alert(2))")
#: HOSTILE as it must show: every tag as visible text, the javascript: link not a link.
HOSTILE_HTML = ('<p>Thanks! &lt;script&gt;alert("x")&lt;/script&gt; '
                '&lt;img src=x onerror="alert(1)"&gt; [track your order](javascript:alert(2))</p>')
SseParser = Callable[[str], list[tuple[str, dict[str, Any]]]]
Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def markdown_replies(services: Services, seeded: dict[str, Any]) -> None:
    """Lumen Goods hands off with RICH and, while waiting for a person, answers HOSTILE."""
    policy = policy_of(services.brands.get(A)).model_copy(
        update={"handoff_message": RICH, "awaiting_human_message": HOSTILE})
    services.brands.update(A, policy=policy, actor="test")


def say(client: FlaskClient, conversation_id: str, auth: Auth, text: str,
        *, stream: bool = False) -> Any:
    accept = "text/event-stream" if stream else "application/json"
    response = client.post(f"/v1/conversations/{conversation_id}/messages", json={"text": text},
                           headers={**auth(A), "Accept": accept})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


@pytest.mark.usefixtures("markdown_replies")
def test_it_sends_a_replys_markdown_as_sanitized_html(
    client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str], sse: SseParser,
) -> None:
    conversation_id = open_conversation(A)

    handed_off = say(client, conversation_id, auth, ASKS_FOR_HUMAN).get_json()["message"]
    assert handed_off["text"] == RICH
    assert handed_off["html"] == (
        "<p><strong>Good news:</strong> a colleague will take it from here.</p>\n"
        "<ul>\n<li>They see this conversation</li>\n"
        "<li>You won't need to repeat yourself</li>\n</ul>")

    events = sse(say(client, conversation_id, auth, "hello? **anyone**", stream=True)
                 .get_data(as_text=True))
    name, final = events[-1]
    assert name == "message"
    waiting = final["message"]
    assert waiting["text"] == HOSTILE
    assert waiting["html"] == HOSTILE_HTML


@pytest.mark.usefixtures("markdown_replies")
def test_it_gives_every_transcript_message_its_html(
    client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str],
) -> None:
    conversation_id = open_conversation(A)
    say(client, conversation_id, auth, ASKS_FOR_HUMAN)
    say(client, conversation_id, auth, "**still** <b>there</b>?\nhello")

    messages = client.get(f"/v1/conversations/{conversation_id}",
                          headers=auth(A)).get_json()["messages"]

    assert [m["role"] for m in messages] == ["agent", "customer", "agent", "customer", "agent"]
    assert messages[0]["html"].startswith("<p>")
    assert "<strong>Good news:</strong>" in messages[2]["html"]
    assert messages[3]["html"] == "<p>**still** &lt;b&gt;there&lt;/b&gt;?<br>\nhello</p>", (
        "a customer's words show as typed")
    assert messages[4]["html"] == HOSTILE_HTML


def test_it_gives_the_greeting_its_html(
    client: FlaskClient, services: Services, seeded: dict[str, Any],
) -> None:
    persona = persona_of(services.brands.get(A)).model_copy(
        update={"greeting": "Hi, I'm **Juniper**. I can help with:\n- orders"})
    services.brands.update(A, persona=persona, actor="test")

    body = client.post(f"/v1/widget/{A}/conversations", json={}).get_json()

    assert body["greeting"]["html"] == (
        "<p>Hi, I'm <strong>Juniper</strong>. I can help with:</p>\n<ul>\n<li>orders</li>\n</ul>")


def test_it_documents_the_html_field(client: FlaskClient) -> None:
    schemas = client.get("/v1/openapi.json").get_json()["components"]["schemas"]

    for name in ("AgentMessage", "MessageOut", "Greeting"):
        assert "html" in schemas[name]["required"], name
        assert "sanitized HTML" in schemas[name]["properties"]["html"]["description"]
