"""The questions the agent could not answer, grouped by meaning with the real embedder: the
reporting service, `GET /v1/metrics/unanswered` and the reports dashboard, which links each
group to its example conversations. A real turn keeps its supervisor's action as the column
the report looks up."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from appliance.agent.supervisor import CLARIFY, NO_ANSWER, OUT_OF_SCOPE
from appliance.cli import cli
from appliance.cli.context import CliContext
from appliance.db.models import Brand, Conversation, Message, TurnTrace, utcnow
from appliance.reporting import DateRange
from appliance.services import Services

BRAND = "lumen-goods"
#: Unanswered messages, oldest first, with what the supervisor did.
ASKED = [
    ("do you have a student discount?", NO_ANSWER),
    ("can I pay with crypto?", NO_ANSWER),
    ("do you gift wrap?", NO_ANSWER),
    ("any discounts for students?", CLARIFY),
    ("tell me a joke", OUT_OF_SCOPE),
    ("can i pay in ethereum", NO_ANSWER),
    ("can you wrap it as a gift", NO_ANSWER),
    ("student discount please", NO_ANSWER),
]


def _asked(services: Services, brand: Brand, text: str, action: str,
           channel: str = "web") -> str:
    """One customer message and the agent's reply, traced as the turn pipeline traces them."""
    conversation, _ = services.conversations.start(brand, {}, channel)
    customer = Message.create(public_id=f"{conversation.public_id}_c", role="customer",
                              conversation=conversation, text=text)
    agent = Message.create(public_id=f"{conversation.public_id}_a", role="agent",
                           conversation=conversation, text="Sorry.", model="template")
    TurnTrace.create(conversation=conversation, customer_message=customer, agent_message=agent,
                     model="template", prompt_tokens=0, completion_tokens=0, latency_ms={},
                     decision={"action": action, "rule": "test"}, action=action)
    return conversation.public_id


@pytest.fixture
def asked(services: Services, seeded: dict[str, Any]) -> tuple[DateRange, list[str]]:
    """The range and conversation ids of ASKED at Lumen Goods, beside what must not count:
    an answered question, another brand's and a Studio test chat's unanswered ones."""
    started = utcnow() - dt.timedelta(seconds=1)
    brand = services.brands.get(BRAND)
    ids = [_asked(services, brand, text, action) for text, action in ASKED]
    _asked(services, brand, "do you offer a student discount?", "answer")
    _asked(services, services.brands.get("rho-bank"), "student discount?", NO_ANSWER)
    _asked(services, brand, "student discounts?", NO_ANSWER, channel="studio")
    return DateRange(started, utcnow() + dt.timedelta(seconds=1)), ids


def test_the_unanswered_questions_are_grouped_by_meaning_biggest_first(
        services: Services, asked: tuple[DateRange, list[str]]) -> None:
    period, ids = asked

    found = services.reports.unanswered(services.brands.get(BRAND), period).as_json()

    assert (found["total"], found["clustered"]) == (len(ASKED), len(ASKED))
    groups = [(q["count"], {e["text"] for e in q["examples"]}) for q in found["questions"]]
    assert groups == [
        (3, {"do you have a student discount?", "any discounts for students?",
             "student discount please"}),
        (2, {"do you gift wrap?", "can you wrap it as a gift"}),  # asked last of the pairs
        (2, {"can I pay with crypto?", "can i pay in ethereum"}),
        (1, {"tell me a joke"}),
    ]
    students = found["questions"][0]
    assert students["question"] in groups[0][1]
    assert students["actions"] == {CLARIFY: 1, NO_ANSWER: 2}
    assert [e["conversation"] for e in students["examples"]] == [ids[7], ids[3], ids[0]]
    box = services.reports.unanswered(None, period).as_json()
    assert box["total"] == len(ASKED) + 1  # the bank's too; never the Studio's


def test_the_api_and_the_cli_serve_the_groups_and_the_dashboard_links_their_examples(
        services: Services, asked: tuple[DateRange, list[str]], admin_client: FlaskClient,
        seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    period, ids = asked
    expected = services.reports.unanswered(services.brands.get(BRAND), period).as_json()
    monkeypatch.setattr(CliContext, "services", property(lambda self: services))
    query = period.query()
    printed = CliRunner().invoke(cli, ["report", "--brand", BRAND, "--since", query["since"],
                                       "--until", query["until"], "--unanswered", "--json"])
    listed = CliRunner().invoke(cli, ["report", "--brand", BRAND, "--since", query["since"],
                                      "--until", query["until"], "--unanswered"])

    served = admin_client.get("/v1/metrics/unanswered", query_string=period.query(),
                              headers={"Authorization": f"Bearer {seeded['keys'][BRAND]}"})
    page = admin_client.get("/admin/reports", query_string={**period.query(), "brand": BRAND})

    assert served.status_code == 200, served.get_data(as_text=True)
    assert served.get_json() == expected
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == expected
    assert listed.exit_code == 0, listed.output
    top = re.escape(expected["questions"][0]["question"])
    assert re.search(rf"^3\s+{CLARIFY} 1, {NO_ANSWER} 2\s+{top}$", listed.output, re.M)
    assert page.status_code == 200
    shown = html.unescape(page.get_data(as_text=True))
    table = shown[shown.index('id="unanswered"'):]
    assert expected["questions"][0]["question"] in table
    for conversation in ids:
        assert f'href="/admin/conversations/{conversation}"' in table


@pytest.mark.usefixtures("seeded")
def test_a_widget_token_cannot_read_them(client: FlaskClient) -> None:
    opened = client.post(f"/v1/widget/{BRAND}/conversations", json={})
    assert opened.status_code == 201, opened.get_data(as_text=True)

    response = client.get("/v1/metrics/unanswered",
                          headers={"Authorization": f"Bearer {opened.get_json()['token']}"})

    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "key_required"


def test_a_real_turn_keeps_its_supervisors_action_as_a_column(
        client: FlaskClient, seeded: dict[str, Any]) -> None:
    key = {"Authorization": f"Bearer {seeded['keys'][BRAND]}"}
    opened = client.post("/v1/conversations", json={}, headers=key).get_json()

    reply = client.post(f"/v1/conversations/{opened['id']}/messages",
                        json={"text": "what's the weather on mars tomorrow?"}, headers=key)

    assert reply.status_code == 200, reply.get_data(as_text=True)
    trace = (TurnTrace.select().join(Conversation)
             .where(Conversation.public_id == opened["id"]).get())
    assert trace.action == trace.decision["action"]
