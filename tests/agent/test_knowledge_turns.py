"""Turns grounded in a brand's published knowledge, with the real embedder and the real tiny
LLM: cited replies whose numbers all come from the cited passages, the brand's no-answer
message when nothing is relevant, no retrieval for small talk, and citations in the stream."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from appliance.agent.conversations import TEMPLATE_MODEL, TurnResult
from appliance.brands import Persona, Policy
from appliance.db.models import Article, Brand, Chunk, Conversation, Handoff, TurnTrace
from appliance.services import Services

PERSONA = Persona(agent_name="Juniper", tone="Warm and brief.", greeting="Hi, I'm Juniper!")
NO_ANSWER = "I can't find that in our help center; shall I ask a colleague at Acme Lamps?"
ARTICLES = [
    {"id": "hc-returns", "title": "Returns",
     "content": "Items can be returned within 30 days of delivery for a full refund. Print the "
                "prepaid return label from your order page and drop the parcel at any carrier "
                "location."},
    {"id": "hc-refunds", "title": "Refund timing",
     "content": "Refunds reach your card within 5 business days after the warehouse receives "
                "the parcel. Gift card refunds arrive within 24 hours."},
    {"id": "hc-shipping", "title": "Shipping",
     "content": "Standard shipping takes 3 to 5 business days and is free over $75. Express "
                "shipping costs $12 and arrives the next business day when ordered before "
                "noon."},
    {"id": "hc-warranty", "title": "Warranty",
     "content": "Every lamp has a 2-year warranty against manufacturing defects. Send a photo "
                "of the fault and your order number to make a claim."},
]
QUESTIONS = [
    "How many days do I have to return an item?",
    "How long does a refund take to reach my card?",
    "How much does express shipping cost?",
    "How long does standard shipping take?",
    "How long is the warranty on a lamp?",
]
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")


def numbers(text: str) -> set[float]:
    return {float(n.rstrip(",").replace(",", "")) for n in _NUMBER.findall(text)}


def knowledge_brand(services: Services, tmp_path: Path) -> Brand:
    """Brand acme with the ARTICLES as one JSON Lines source, ingested and published."""
    brand = services.brands.create("acme", "Acme Lamps", PERSONA,
                                   Policy(no_answer_message=NO_ANSWER), actor="test")
    path = tmp_path / "acme" / "help-center.jsonl"  # the brand's import folder
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(json.dumps(article) + "\n" for article in ARTICLES))
    services.knowledge.add_source(brand, {"kind": "jsonl", "location": str(path),
                                          "owner": "kb@acme.example", "visibility": "customer"},
                                  actor="test")
    services.knowledge.ingest(brand, publish=True)
    return brand


@pytest.fixture
def brand(services: Services, tmp_path: Path) -> Brand:
    return knowledge_brand(services, tmp_path)


def say(services: Services, brand: Brand, conversation: Conversation,
        text: str) -> tuple[TurnResult, TurnTrace]:
    result = list(services.conversations.reply(brand, conversation.public_id, text))[-1]
    assert isinstance(result, TurnResult)
    return result, TurnTrace.get(TurnTrace.agent_message == result.message.id)


def turn(services: Services, brand: Brand, text: str) -> tuple[TurnResult, TurnTrace]:
    """One message in a new conversation."""
    conversation, _ = services.conversations.start(brand, {}, "web")
    return say(services, brand, conversation, text)


def cited_passages(trace: TurnTrace, citations: list[dict[str, Any]]) -> list[str]:
    """Texts of the chunks the turn used that belong to the articles it cites."""
    cited = {c["article"] for c in citations}
    used = Chunk.select(Chunk, Article).join(Article).where(
        Chunk.id.in_(trace.knowledge["used"]))
    return [c.text for c in used if c.article.key in cited]


def test_it_answers_from_the_knowledge_with_citations(services: Services, brand: Brand) -> None:
    result, trace = turn(services, brand, "How much does express shipping cost?")

    message = result.message
    assert message.text.strip()
    source = services.knowledge.sources(brand)[0]
    assert message.citations
    assert message.citations[0] == {
        "article": f"{source.id}/hc-shipping", "title": "Shipping",
        "location": "help-center.jsonl#hc-shipping", "source_ids": ["hc-shipping"],
    }
    # Answered from the knowledge, or the draft was not supported by it and was replaced by
    # a quote of the passage.
    assert (trace.decision["action"], trace.decision["rule"]) in (
        ("answer_from_knowledge", "knowledge"), ("extractive_answer", "ungrounded_draft"))
    version = services.knowledge.published(brand)
    assert version is not None
    knowledge = trace.knowledge
    assert (knowledge["version_id"], knowledge["version"]) == (version.id, 1)
    assert knowledge["mode"] == trace.decision["action"]
    retrieved = [chunk_id for chunk_id, _ in knowledge["chunks"]]
    assert knowledge["used"] and set(knowledge["used"]) <= set(retrieved)
    scores = [score for _, score in knowledge["chunks"]]
    assert scores == sorted(scores, reverse=True)
    shipping = Chunk.select().join(Article).where(Article.key == f"{source.id}/hc-shipping")
    assert knowledge["used"][0] == shipping.get().id


def test_it_states_no_number_the_cited_passages_do_not(services: Services,
                                                       brand: Brand) -> None:
    for question in QUESTIONS:
        result, trace = turn(services, brand, question)

        text, citations = result.message.text, result.message.citations
        assert citations, question
        passages = cited_passages(trace, citations)
        assert passages, question
        invented = numbers(text) - numbers(" ".join(passages))
        assert not invented, f"{question!r} -> {text!r} states {invented}"
        if trace.decision["action"] == "extractive_answer":
            assert len(citations) == 1
            assert trace.decision["ungrounded"]


def test_it_sends_the_brands_no_answer_message_when_nothing_is_relevant(
    services: Services, brand: Brand
) -> None:
    result, trace = turn(services, brand, "What is the capital of Mongolia?")

    assert result.message.text == NO_ANSWER
    assert result.message.model == TEMPLATE_MODEL
    assert result.message.citations is None
    assert result.usage == {"prompt_tokens": 0, "completion_tokens": 0}
    assert trace.decision == {"action": "no_answer", "rule": "knowledge_below_threshold",
                              "task": "reply", "evidence": {}}
    assert trace.knowledge["mode"] == "no_answer"
    assert trace.knowledge["used"] == []
    assert trace.knowledge["chunks"], "what was retrieved is kept for review"


def test_it_reads_small_talk_once_and_does_not_look_it_up(services: Services, brand: Brand,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up: list[str] = []

    def spy(name: str, real: Any) -> Any:
        def called(*args: Any, **kwargs: Any) -> Any:
            looked_up.append(name)
            return real(*args, **kwargs)
        return called

    for name in ("search", "search_vector"):
        monkeypatch.setattr(services.knowledge, name,
                            spy(name, getattr(services.knowledge, name)))
    monkeypatch.setattr(services.embedder, "embed", spy("embed", services.embedder.embed))

    result, trace = turn(services, brand, "Hi!")

    # One embedding, for the signals (a greeting may still ask for a human); no search.
    assert looked_up == ["embed"]
    assert trace.knowledge is None
    assert trace.decision["rule"] == "small_talk"
    assert result.message.citations is None
    assert result.message.model != TEMPLATE_MODEL


def test_it_chats_without_knowledge_when_none_is_published(services: Services) -> None:
    brand = services.brands.create("plain", "Plain", PERSONA, actor="test")

    result, trace = turn(services, brand, "How much does express shipping cost?")

    assert trace.knowledge is None
    assert trace.decision["rule"] == "no_knowledge"
    assert result.message.citations is None


def test_it_streams_citations_in_the_final_message(
    services: Services, brand: Brand, client: FlaskClient
) -> None:
    _, token = services.brands.create_key("acme", "test", actor="test")
    headers = {"Authorization": f"Bearer {token}"}
    opened = client.post("/v1/conversations", json={}, headers=headers)
    conversation_id = opened.get_json()["id"]

    streamed = client.post(f"/v1/conversations/{conversation_id}/messages",
                           json={"text": "How long does a refund take to reach my card?"},
                           headers={**headers, "Accept": "text/event-stream"})

    assert streamed.status_code == 200
    events = [(block.split("\n")[0].removeprefix("event: "),
               json.loads(block.split("\n")[1].removeprefix("data: ")))
              for block in streamed.get_data(as_text=True).split("\n\n") if block.strip()]
    assert [name for name, _ in events][-1] == "message"
    final = events[-1][1]["message"]
    source = services.knowledge.sources(brand)[0]
    assert final["citations"]
    assert final["citations"][0]["article"] == f"{source.id}/hc-refunds"
    assert final["citations"][0]["source_ids"] == ["hc-refunds"]
    transcript = client.get(f"/v1/conversations/{conversation_id}", headers=headers)
    assert transcript.get_json()["messages"][-1]["citations"] == final["citations"]


def test_asking_the_same_question_a_third_time_hands_off(services: Services,
                                                         brand: Brand) -> None:
    conversation, _ = services.conversations.start(brand, {}, "web")
    turns = [say(services, brand, conversation, text) for text in [
        "How much does express shipping cost?", "What is the price of express shipping?",
        "How much is express shipping?"]]

    (_, first), (_, second), (result, third) = turns
    assert first.decision["action"] in ("answer_from_knowledge", "extractive_answer")
    assert second.decision["action"] in ("answer_from_knowledge", "extractive_answer")
    assert first.knowledge["used"][0] == second.knowledge["used"][0]
    assert (third.decision["action"], third.decision["rule"]) == ("escalate", "repeated_question")
    assert third.decision["evidence"]["passage"] == first.knowledge["used"][0]
    assert (result.conversation.status, result.conversation.status_reason) == (
        "pending_human", "repeated_question")
    handoff = Handoff.get(Handoff.conversation == conversation.id)
    assert handoff.packet["reason"] == "repeated_question"
