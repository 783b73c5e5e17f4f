"""The handoff pages through the Flask test client, with CSRF on as in production: the human
agent's queue and console (take, reply, hand back, resolve) and the CX team's review page.

Handoffs are made for real: the demo is seeded and a customer asks the agent for a person, so
the supervisor escalates and the conversation service opens the handoff with its packet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.db.models import Conversation, Handoff, Message, utcnow
from appliance.services import Services

ASKS_FOR_HUMAN = "I want to talk to a real person right now"
REASON = "the customer asked for a person"
NOT_ASSIGNED = "this conversation is not assigned to you"
TAKEN = "another agent has taken this conversation"
PASSWORD = "a long enough password"
Login = Callable[[FlaskClient, str, str], TestResponse]
Submit = Callable[[FlaskClient, str, str, dict[str, str]], TestResponse]


@pytest.fixture
def handoff(services: Services, seeded: dict[str, Any]) -> Handoff:
    """A Lumen Goods customer asked for a person: a handoff waiting for a human."""
    return escalate(services, "lumen-goods")


@pytest.fixture
def user_client(
    app: Flask, services: Services, seeded: dict[str, Any], login: Login,
) -> Callable[..., FlaskClient]:
    """user_client(username, role="human_agent", brand="lumen-goods"): a new test client
    signed in as a new user; each its own browser, so several agents can work at once. A
    viewer may pass brand=None for every brand (a human agent or cx_editor works for one)."""

    def make(username: str, role: str = "human_agent",
             brand: str | None = "lumen-goods") -> FlaskClient:
        scope = services.brands.get(brand) if brand else None
        services.users.create(username, PASSWORD, role, scope, actor="test")
        client = app.test_client()
        assert login(client, username, PASSWORD).status_code == 302
        return client

    return make


def escalate(services: Services, slug: str, text: str = ASKS_FOR_HUMAN) -> Handoff:
    brand = services.brands.get(slug)
    conversation, _ = services.conversations.start(brand, {}, "web")
    for _ in services.conversations.reply(brand, conversation.public_id, text):
        pass
    found: Handoff = Handoff.get(Handoff.conversation == conversation.id)
    return found


def html(response: TestResponse, status: int = 200) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body: str = response.get_data(as_text=True)
    return body


def fresh(handoff: Handoff) -> Handoff:
    found: Handoff = Handoff.get_by_id(handoff.id)
    return found


def assignee(handoff: Handoff) -> str | None:
    """The username of the agent the handoff is assigned to now."""
    user = fresh(handoff).assigned_to
    return None if user is None else str(user.username)


def console(handoff: Handoff) -> str:
    return f"/admin/handoffs/{handoff.public_id}"


def take(client: FlaskClient, submit: Submit, handoff: Handoff) -> TestResponse:
    return submit(client, "/admin/queue", f"{console(handoff)}/take", {"back": "queue"})


def human_messages(handoff: Handoff) -> list[Message]:
    return list(Message.select().where(
        (Message.conversation == handoff.conversation_id) & (Message.role == "human")))


def test_it_lists_a_waiting_handoff_with_its_reason_and_wait(
    user_client: Callable[..., FlaskClient], handoff: Handoff,
) -> None:
    Handoff.update(created_at=utcnow() - dt.timedelta(minutes=7, seconds=20)).where(
        Handoff.id == handoff.id).execute()
    agent = user_client("ana")

    page = html(agent.get("/admin/queue"))

    assert f'<tr id="{handoff.public_id}">' in page
    assert "Lumen Goods" in page
    assert REASON in page
    assert "<strong>7 min</strong>" in page
    assert "neutral" in page  # the sentiment the packet recorded
    assert "waiting" in page
    assert f'href="{console(handoff)}"' in page
    assert f'action="{console(handoff)}/take"' in page


def test_it_lists_the_oldest_handoff_first(
    user_client: Callable[..., FlaskClient], services: Services, handoff: Handoff,
) -> None:
    newer = escalate(services, "lumen-goods")
    Handoff.update(created_at=utcnow() - dt.timedelta(hours=2)).where(
        Handoff.id == handoff.id).execute()

    page = html(user_client("ana").get("/admin/queue"))

    assert page.index(handoff.public_id) < page.index(newer.public_id)
    assert "<strong>2 h</strong>" in page


def test_it_assigns_a_handoff_to_the_agent_who_takes_it(
    user_client: Callable[..., FlaskClient], submit: Submit, handoff: Handoff,
) -> None:
    agent = user_client("ana")

    response = take(agent, submit, handoff)

    assert response.status_code == 302
    assert response.headers["Location"] == console(handoff)
    assert fresh(handoff).status == "assigned"
    assert assignee(handoff) == "ana"
    page = html(agent.get(console(handoff)))
    assert "You have taken this conversation" in page
    assert "taken by you" in page
    assert "Reply to the customer" in page
    assert "Hand back to the agent" in page
    queue = html(agent.get("/admin/queue"))
    assert "taken by ana" in queue
    assert f'action="{console(handoff)}/take"' not in queue


def test_it_tells_the_second_agent_that_another_has_taken_it(
    user_client: Callable[..., FlaskClient], csrf_token: Callable[[str], str],
    handoff: Handoff,
) -> None:
    first, second = user_client("ana"), user_client("ben")
    # Both see the handoff waiting before either takes it.
    tokens = [csrf_token(html(client.get("/admin/queue"))) for client in (first, second)]

    won = first.post(f"{console(handoff)}/take", data={"csrf_token": tokens[0], "back": "queue"})
    lost = second.post(f"{console(handoff)}/take",
                       data={"csrf_token": tokens[1], "back": "queue"}, follow_redirects=True)

    assert won.status_code == 302
    page = html(lost)
    assert f"{TAKEN} (ana)" in page
    assert 'class="flash flash-error"' in page
    assert assignee(handoff) == "ana"


def test_it_refuses_a_reply_from_an_agent_it_is_not_assigned_to(
    user_client: Callable[..., FlaskClient], submit: Submit, handoff: Handoff,
) -> None:
    first, second = user_client("ana"), user_client("ben")
    reply = f"{console(handoff)}/reply"
    # Not taken yet: nobody may answer.
    page = html(submit(first, console(handoff), reply, {"text": "Hello?"}), 403)
    assert NOT_ASSIGNED in page
    take(first, submit, handoff)

    response = submit(second, console(handoff), reply, {"text": "Hi, Ben here."})

    page = html(response, 403)
    assert 'role="alert"' in page
    assert NOT_ASSIGNED in page
    assert "Reply to the customer" not in page
    assert human_messages(handoff) == []
    for action in ("hand-back", "resolve"):
        refused = submit(second, console(handoff), f"{console(handoff)}/{action}",
                         {"outcome": "resolved"})
        assert NOT_ASSIGNED in html(refused, 403)
    assert fresh(handoff).status == "assigned"


def test_it_stores_the_assigned_agents_reply_as_a_human_message(
    user_client: Callable[..., FlaskClient], submit: Submit, handoff: Handoff,
) -> None:
    agent = user_client("ana")
    take(agent, submit, handoff)

    response = submit(agent, console(handoff), f"{console(handoff)}/reply",
                      {"text": "Hi, I'm Ana. I can help with that."})

    assert response.status_code == 302
    [message] = human_messages(handoff)
    assert message.text == "Hi, I'm Ana. I can help with that."
    assert message.author == "ana"
    page = html(agent.get(console(handoff)))
    assert '<li class="turn turn-human">' in page
    assert "ana <span class=\"muted\">(human agent)</span>" in page
    assert '<div class="turn-text markup"><p>Hi, I\'m Ana. I can help with that.</p></div>' in page


def test_it_keeps_an_empty_reply_out_and_says_why(
    user_client: Callable[..., FlaskClient], submit: Submit, handoff: Handoff,
) -> None:
    agent = user_client("ana")
    take(agent, submit, handoff)

    page = html(submit(agent, console(handoff), f"{console(handoff)}/reply", {"text": "  "}),
                400)

    assert "must not be empty" in page
    assert 'aria-invalid="true"' in page
    assert human_messages(handoff) == []


def test_it_hands_the_conversation_back_to_the_agent(
    user_client: Callable[..., FlaskClient], submit: Submit, handoff: Handoff,
) -> None:
    agent = user_client("ana")
    take(agent, submit, handoff)

    response = submit(agent, console(handoff), f"{console(handoff)}/hand-back", {})

    assert response.status_code == 302
    assert fresh(handoff).status == "returned"
    assert Conversation.get_by_id(handoff.conversation_id).status == "active"
    page = html(agent.get(console(handoff)))
    assert "Handed back to the agent" in page
    assert "handed back to the agent" in page
    assert "Reply to the customer" not in page


def test_it_resolves_a_handoff_with_an_outcome(
    user_client: Callable[..., FlaskClient], submit: Submit, handoff: Handoff,
) -> None:
    agent = user_client("ana")
    take(agent, submit, handoff)
    refused = submit(agent, console(handoff), f"{console(handoff)}/resolve",
                     {"outcome": "vanished"})
    assert "outcome: one of" in html(refused, 400)

    response = submit(agent, console(handoff), f"{console(handoff)}/resolve",
                      {"outcome": "saved"})

    assert response.status_code == 302
    resolved = fresh(handoff)
    assert (resolved.status, resolved.outcome) == ("resolved", "saved")
    conversation = Conversation.get_by_id(handoff.conversation_id)
    assert (conversation.status, conversation.status_reason) == ("closed", "human:saved")
    assert "resolved: saved" in html(agent.get(console(handoff)))


def test_it_shows_the_packet_in_readable_sections(
    user_client: Callable[..., FlaskClient], handoff: Handoff,
) -> None:
    page = html(user_client("ana").get(console(handoff)))

    assert handoff.summary.replace("'", "&#39;") in page
    for heading in ("Customer", "Request", "What the agent did", "Why it was handed off",
                    "Sentiment", "Suggested next step", "Transcript"):
        assert f">{heading}</h" in page, heading
    assert "not verified" in page
    assert ASKS_FOR_HUMAN in page
    assert '<li class="turn turn-customer">' in page
    assert '<li class="turn turn-agent">' in page
    assert '<li class="handoff-marker">' in page


def test_it_shows_a_workflow_packet_with_its_slots_actions_and_trajectory(
    user_client: Callable[..., FlaskClient], handoff: Handoff,
) -> None:
    packet = {
        **handoff.packet,
        "reason": "tool_failure", "reason_text": "the brand's system failed to answer",
        "customer": {"id": "yusuf_rossi_9620", "verified": True, "name": "Yusuf Rossi",
                     "email": "yusuf.rossi7301@example.com"},
        "workflow": {"name": "cancel_order", "status": "in progress",
                     "slots": {"order_id": "#W2378156", "reason": "ordered by mistake",
                               "address": {"city": "Austin", "zip": None}},
                     "asked": "Shall I cancel it?"},
        "actions": [{"tool": "cancel_pending_order", "status": "error", "code": "timeout",
                     "at": "2026-11-25T10:00:00"}],
        "knowledge": [{"title": "Cancelling an order", "location": "kb/cancel.md"}],
        "sentiment": {"label": "negative", "trajectory": [0.2, 0.5, 0.86]},
        "suggested_next_step": "Check the order system, then finish the request.",
    }
    Handoff.update(packet=packet).where(Handoff.id == handoff.id).execute()

    page = html(user_client("ana").get(console(handoff)))

    for shown in ("Yusuf Rossi", "yusuf_rossi_9620", "verified", "cancel order",
                  "#W2378156", "ordered by mistake", "city: Austin", "Shall I cancel it?",
                  "cancel_pending_order", "timeout", "Cancelling an order",
                  "The brand&#39;s system failed to answer", "frustration rising",
                  'value="0.86"', "Check the order system"):
        assert shown in page, shown


def test_it_renders_a_packet_that_lacks_every_section(
    user_client: Callable[..., FlaskClient], handoff: Handoff,
) -> None:
    Handoff.update(packet={}).where(Handoff.id == handoff.id).execute()

    page = html(user_client("ana").get(console(handoff)))

    assert REASON in page  # from the handoff's reason
    assert "Name unknown" in page


def test_it_shows_the_queue_and_console_read_only_to_viewers(
    user_client: Callable[..., FlaskClient], submit: Submit, handoff: Handoff,
) -> None:
    viewer = user_client("vic", "viewer")

    queue = html(viewer.get("/admin/queue"))
    page = html(viewer.get(console(handoff)))

    assert handoff.public_id in queue
    assert "/take" not in queue + page
    refused = submit(viewer, "/admin/queue", f"{console(handoff)}/take", {})
    assert refused.status_code == 403
    assert fresh(handoff).status == "waiting"


def test_it_hides_another_brands_handoffs_from_a_brand_scoped_agent(
    user_client: Callable[..., FlaskClient], submit: Submit, services: Services,
    handoff: Handoff,
) -> None:
    rho_handoff = escalate(services, "rho-bank")
    rho_agent = user_client("rho-ana", "human_agent", "rho-bank")

    queue = html(rho_agent.get("/admin/queue"))

    assert rho_handoff.public_id in queue
    assert handoff.public_id not in queue
    assert "Lumen Goods" not in queue
    assert rho_agent.get(console(handoff)).status_code == 404
    assert take(rho_agent, submit, handoff).status_code == 404
    assert fresh(handoff).status == "waiting"
    rho_editor = user_client("rho-cx", "cx_editor", "rho-bank")
    assert 'href="/admin/brands/rho-bank/handoffs"' in html(rho_editor.get("/admin/queue"))
    assert rho_editor.get("/admin/brands/lumen-goods/handoffs").status_code == 404
    eval_case = f"/admin/brands/rho-bank/handoffs/{handoff.public_id}/eval-case.yaml"
    assert rho_editor.get(eval_case).status_code == 404


def test_it_refuses_a_post_without_csrf_token(
    user_client: Callable[..., FlaskClient], handoff: Handoff,
) -> None:
    agent = user_client("ana")

    response = agent.post(f"{console(handoff)}/take", data={"back": "queue"})

    assert "<h1>403: csrf failed</h1>" in html(response, 403)
    assert fresh(handoff).status == "waiting"


def test_it_turns_a_should_have_review_into_a_downloadable_eval_case(
    user_client: Callable[..., FlaskClient], submit: Submit, handoff: Handoff,
) -> None:
    editor = user_client("cara", "cx_editor", "lumen-goods")
    review = "/admin/brands/lumen-goods/handoffs"

    response = submit(editor, review, f"{review}/{handoff.public_id}/review",
                      {"verdict": "agent_should_have", "note": "a refund question"})

    assert response.status_code == 302
    reviewed = fresh(handoff)
    assert (reviewed.review, reviewed.reviewed_by, reviewed.review_note) == (
        "agent_should_have", "cara", "a refund question")
    page = html(editor.get(review))
    assert '<pre class="eval-case"' in page
    assert f"handoff {handoff.public_id}: human_request" in page
    assert f"<li>{ASKS_FOR_HUMAN}</li>" in page  # a candidate training utterance
    download = editor.get(f"{review}/{handoff.public_id}/eval-case.yaml")
    assert download.status_code == 200
    assert download.mimetype == "text/yaml"
    assert download.headers["Content-Disposition"] == (
        f'attachment; filename="{handoff.public_id}.yaml"')
    assert ASKS_FOR_HUMAN in download.get_data(as_text=True)
    assert f'href="{review}/{handoff.public_id}/eval-case.yaml"' in page


def test_a_should_have_handoff_joins_the_brands_evals_quarantined(
    user_client: Callable[..., FlaskClient], submit: Submit, handoff: Handoff,
    services: Services,
) -> None:
    editor = user_client("cara", "cx_editor", "lumen-goods")
    review = "/admin/brands/lumen-goods/handoffs"
    promote = f"{review}/{handoff.public_id}/promote"
    brand = services.brands.get("lumen-goods")

    early = submit(editor, review, promote, {})  # not reviewed yet: refused
    assert "Only a handoff the agent should have handled" in html(
        editor.get(early.headers["Location"]))
    submit(editor, review, f"{review}/{handoff.public_id}/review",
           {"verdict": "agent_should_have"})
    done = submit(editor, review, promote, {})

    assert "to the &#39;handoffs&#39; eval suite" in html(editor.get(done.headers["Location"]))
    [suite] = services.suites.suites(brand, "handoffs")
    [case] = suite.cases
    assert case.turns == (ASKS_FOR_HUMAN,) and case.expect.outcome == "resolved"
    assert case.quarantine and handoff.public_id in case.quarantine
    viewer = user_client("vic", "viewer")
    assert submit(viewer, review, promote, {}).status_code == 403


def test_it_records_a_correct_escalation_and_refuses_an_unknown_verdict(
    user_client: Callable[..., FlaskClient], submit: Submit, handoff: Handoff,
) -> None:
    editor = user_client("cara", "cx_editor", "lumen-goods")
    review = "/admin/brands/lumen-goods/handoffs"
    action = f"{review}/{handoff.public_id}/review"

    bad = submit(editor, review, action, {"verdict": "meh"})
    assert "Not reviewed: verdict:" in html(editor.get(bad.headers["Location"]))
    submit(editor, review, action, {"verdict": "correct"})

    assert fresh(handoff).review == "correct"
    page = html(editor.get(review))
    assert "Correct escalation</span>" in page
    assert '<pre class="eval-case"' not in page


def test_it_shows_the_handoff_numbers(
    user_client: Callable[..., FlaskClient], submit: Submit, services: Services,
    handoff: Handoff,
) -> None:
    services.conversations.start(services.brands.get("lumen-goods"), {}, "web")
    Handoff.update(created_at=utcnow() - dt.timedelta(minutes=3)).where(
        Handoff.id == handoff.id).execute()
    take(user_client("ana"), submit, handoff)
    escalate(services, "lumen-goods", "let me talk to a person")

    editor = user_client("cara", "cx_editor", "lumen-goods")
    page = html(editor.get("/admin/brands/lumen-goods/handoffs"))

    assert "<strong>66.7 %</strong>" in page  # two handoffs in three conversations
    assert "2 of 3 conversations" in page
    assert "The customer asked for a person <code" in page
    assert "<strong>3 min</strong>" in page  # median time to a human, over the one taken
    assert "Waiting now</dt><dd><strong>1</strong>" in page


def test_it_lets_viewers_read_the_review_page_but_not_label(
    user_client: Callable[..., FlaskClient], submit: Submit, handoff: Handoff,
) -> None:
    viewer = user_client("vic", "viewer")
    review = "/admin/brands/lumen-goods/handoffs"

    page = html(viewer.get(review))

    assert handoff.public_id in page
    assert "/review" not in page
    refused = submit(viewer, review, f"{review}/{handoff.public_id}/review",
                     {"verdict": "correct"})
    assert refused.status_code == 403
    assert fresh(handoff).review is None
    agent = user_client("ana")
    assert agent.get(review).status_code == 403


def test_it_links_the_dashboards_waiting_conversations_to_their_console(
    admin_client: FlaskClient, handoff: Handoff,
) -> None:
    page = html(admin_client.get("/admin/"))

    assert f'href="{console(handoff)}"' in page
    assert 'href="/admin/queue"' in page
