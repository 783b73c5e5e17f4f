"""Turns under the supervisor with the shipped ONNX classifiers, the real embedder and the
real tiny LLM: a customer who asks for a human or grows angry is handed off with the rule, its
signals and thresholds on the trace; the conversation then waits for a human; odd input still
gets signals and a reply."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from appliance.agent.conversations import PENDING_HUMAN, TEMPLATE_MODEL, TurnResult
from appliance.brands import Persona, Policy
from appliance.db.models import Brand, Conversation, Handoff, TurnTrace
from appliance.services import Services

PERSONA = Persona(agent_name="Juniper", tone="Warm and brief.", greeting="Hi, I'm Juniper!")
POLICY = Policy()


@pytest.fixture
def brand(services: Services) -> Brand:
    return services.brands.create("acme", "Acme Lamps", PERSONA, POLICY, actor="test")


def say(services: Services, brand: Brand, conversation: Conversation,
        text: str) -> tuple[TurnResult, TurnTrace]:
    result = list(services.conversations.reply(brand, conversation.public_id, text))[-1]
    assert isinstance(result, TurnResult)
    return result, TurnTrace.get(TurnTrace.agent_message == result.message.id)


@pytest.mark.parametrize("text", ["Can I talk to a real person please?",
                                  "agent", "I want a human, not a bot"])
def test_a_customer_who_asks_for_a_human_is_handed_off(
    services: Services, brand: Brand, text: str
) -> None:
    conversation, _ = services.conversations.start(brand, {}, "web")

    result, trace = say(services, brand, conversation, text)

    assert result.message.text == POLICY.handoff_message
    assert result.message.model == TEMPLATE_MODEL
    assert result.usage["completion_tokens"] == 0, "no model is asked to phrase a handoff"
    assert (result.conversation.status, result.conversation.status_reason) == (
        PENDING_HUMAN, "human_request")
    assert Conversation.get_by_id(conversation.id).status == PENDING_HUMAN
    assert (trace.decision["action"], trace.decision["rule"]) == ("escalate", "human_request")
    evidence = trace.decision["evidence"]
    assert evidence["threshold"] == POLICY.supervision.human_request_threshold
    assert evidence["human_request"] >= evidence["threshold"]
    assert trace.signals["human_request"] == evidence["human_request"]
    assert set(trace.signals["models"]) == {"human_request", "sentiment"}
    assert all("@" in version for version in trace.signals["models"].values())


def test_a_customer_who_grows_angry_is_handed_off_with_the_rule_on_the_trace(
    services: Services, brand: Brand
) -> None:
    conversation, _ = services.conversations.start(brand, {}, "web")
    messages = [
        "Hi, my lamp arrived with a broken shade.",
        "This is really disappointing, it is the second time this happens.",
        "THIS IS RIDICULOUS. Worst service ever, I am done with your useless company!!!",
    ]

    traces = [say(services, brand, conversation, text)[1] for text in messages]

    last = traces[-1]
    assert last.decision["action"] == "escalate"
    assert last.decision["rule"] in ("frustration_high", "frustration_rising")
    assert last.signals["sentiment"] == "angry"
    frustration = [trace.signals["frustration"] for trace in traces]
    assert frustration[-1] >= POLICY.supervision.frustration_rising_min
    assert all(trace.decision["action"] != "escalate" for trace in traces[:-1])
    assert Conversation.get_by_id(conversation.id).status_reason == last.decision["rule"]


def test_a_conversation_waiting_for_a_human_is_acknowledged_without_a_model(
    services: Services, brand: Brand
) -> None:
    conversation, _ = services.conversations.start(brand, {}, "web")
    say(services, brand, conversation, "Please connect me to a human agent")

    result, trace = say(services, brand, conversation, "My order number is 12345.")

    assert result.message.text == POLICY.awaiting_human_message
    assert result.message.model == TEMPLATE_MODEL
    assert trace.decision["rule"] == "pending_human"
    assert result.conversation.status == PENDING_HUMAN
    texts = [m.text for m in services.conversations.messages(conversation)]
    assert "My order number is 12345." in texts, "the customer's message is kept for the human"


@pytest.mark.parametrize("text", [
    "\x00\x01\x02\ufffd\x7f binary \x1b[31m junk",
    "😀😀😀🎉",
    "¿Dónde está mi pedido? Lo pedí hace dos semanas.",
    "我的订单在哪里",
    "a" * 3000,
])
def test_odd_input_still_gets_signals_and_a_reply(
    services: Services, brand: Brand, text: str
) -> None:
    conversation, _ = services.conversations.start(brand, {}, "web")

    result, trace = say(services, brand, conversation, text)

    assert result.message.text.strip()
    assert set(trace.signals["models"]) == {"human_request", "sentiment"}
    assert 0.0 <= trace.signals["human_request"] <= 1.0
    assert 0.0 <= trace.signals["frustration"] <= 1.0
    assert trace.decision["rule"] != "human_request"


def test_the_trace_records_what_reading_the_signals_cost(services: Services, brand: Brand) -> None:
    conversation, _ = services.conversations.start(brand, {}, "web")

    _, trace = say(services, brand, conversation, "Hello there")

    assert trace.latency_ms["signals"] >= 0
    assert trace.latency_ms["embed"] > 0
    assert trace.signals["latency_ms"] >= 0


def test_the_api_shows_a_handed_off_conversation(client: FlaskClient, services: Services,
                                                  seeded: dict[str, object]) -> None:
    keys = seeded["keys"]
    assert isinstance(keys, dict)
    headers = {"Authorization": f"Bearer {keys['lumen-goods']}"}
    created = client.post("/v1/conversations", json={}, headers=headers).get_json()

    reply = client.post(f"/v1/conversations/{created['id']}/messages",
                        json={"text": "I need to speak with a representative"}, headers=headers)

    assert reply.status_code == 200
    body = reply.get_json()
    assert body["conversation"]["status"] == PENDING_HUMAN
    transcript = client.get(f"/v1/conversations/{created['id']}", headers=headers).get_json()
    assert transcript["status"] == PENDING_HUMAN


def demo_turn(services: Services, slug: str, texts: list[str]) -> list[TurnTrace]:
    brand = services.brands.get(slug)
    conversation, _ = services.conversations.start(brand, {}, "web")
    return [say(services, brand, conversation, text)[1] for text in texts]


@pytest.mark.parametrize(("slug", "text", "intent"), [
    ("rho-bank", "I think someone stole my card, what do I do?", "lost_or_stolen_card"),
    ("rho-bank", "Why was I charged twice for the same coffee?", "transaction_charged_twice"),
    ("lumen-goods", "I want to cancel the order I placed yesterday", "cancel_order"),
    ("lumen-goods", "where is my package? it hasn't arrived", "track_order"),
])
def test_each_demo_brand_reads_its_own_intents(
    services: Services, seeded: dict[str, object], slug: str, text: str, intent: str
) -> None:
    (trace,) = demo_turn(services, slug, [text])

    assert trace.signals["intent"] == intent
    assert trace.signals["out_of_scope"] is False
    assert trace.signals["intent_confidence"] >= Policy().supervision.intent_min_confidence
    assert trace.signals["models"]["intent"].startswith(f"intent-{slug}@")


def test_out_of_scope_is_said_and_accepting_the_offered_human_hands_off(
    services: Services, seeded: dict[str, object]
) -> None:
    traces = demo_turn(services, "rho-bank", [
        "Can you book me a table for two at an Italian restaurant tonight?", "yes please"])

    first, second = traces
    assert first.signals["out_of_scope"] is True
    assert (first.decision["action"], first.decision["rule"]) == ("out_of_scope", "out_of_scope")
    assert (second.decision["action"], second.decision["rule"]) == (
        "escalate", "accepted_human_offer")


def test_not_understanding_three_times_in_a_row_hands_off(
    services: Services, seeded: dict[str, object]
) -> None:
    traces = demo_turn(services, "lumen-goods", [
        "what is the boiling point of mercury", "how tall is mount everest",
        "who won the world cup in 1998"])

    assert [t.decision["rule"] for t in traces] == [
        "out_of_scope", "unclear_again", "unclear_repeated"]
    assert traces[-1].decision["action"] == "escalate"


def test_an_unclear_intent_is_never_named_in_the_handoff(
    services: Services, seeded: dict[str, object]
) -> None:
    traces = demo_turn(services, "rho-bank", [
        "can you tell me a joke about cats", "what is the boiling point of mercury",
        "who won the world cup in 1998"])

    last = traces[-1]
    assert last.decision["rule"] == "unclear_repeated"
    assert last.signals["unclear"] is True
    guessed = str(last.signals["intent"])
    assert last.decision["evidence"]["intent"] == "unclear"
    handoff = Handoff.get(Handoff.conversation == last.conversation_id)
    assert handoff.packet["intent"]["name"] is None
    assert handoff.packet["intent"]["unclear"] is True
    assert "unclear" in handoff.packet["summary"]
    assert guessed not in handoff.packet["summary"]
    assert guessed.replace("_", " ") not in handoff.packet["summary"]


def test_calm_off_topic_messages_are_not_handed_off_as_frustrated(
    services: Services, seeded: dict[str, object]
) -> None:
    (trace,) = demo_turn(services, "rho-bank", ["can you tell me a joke about cats"])

    assert trace.decision["rule"] not in ("frustration_high", "frustration_rising")
    assert trace.signals["frustration"] < Policy().supervision.frustration_threshold


def test_order_numbers_and_emails_do_not_read_as_a_mood(
    services: Services, seeded: dict[str, object]
) -> None:
    (trace,) = demo_turn(services, "lumen-goods", [
        "cancel order #W5442520, I'm olivia.ito5204@example.com"])

    assert trace.decision["rule"] not in ("frustration_high", "frustration_rising")
    assert trace.signals["frustration"] < Policy().supervision.frustration_threshold
