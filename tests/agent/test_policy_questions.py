"""Questions about a policy get the policy; requests start the workflow.

"What is your return policy?" is answered from the brand's knowledge, citing it, with an offer
to start the returns workflow (a yes starts it); "I want to return my headphones" starts the
workflow at once. Real embedder, FAISS, tiny model, Lumen Goods' published workflows."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from appliance.agent.conversations import TurnResult
from appliance.agent.requests import asks_about_policy
from appliance.brands import policy_of
from appliance.db.models import Brand, Conversation, TurnTrace
from appliance.services import Services
from appliance.workflows.state import WorkflowState

DATA = Path(__file__).resolve().parent / "data"
POLICIES = Path(__file__).resolve().parents[2] / "appliance" / "demo" / "knowledge" / \
    "lumen-goods" / "policies"


@pytest.fixture
def store(services: Services, lumen: Brand, tmp_path: Path) -> Brand:
    """Lumen Goods with its workflows and its policy pages (Markdown, customer-facing) copied
    into its import folder, published."""
    pages = shutil.copytree(POLICIES, tmp_path / lumen.slug / "policies")
    services.knowledge.add_source(lumen, {"kind": "markdown", "location": str(pages),
                                          "owner": "policy@lumengoods.example",
                                          "visibility": "customer"}, actor="test")
    services.knowledge.ingest(lumen, publish=True)
    return lumen


def _say(services: Services, brand: Brand, conversation: Conversation,
         text: str) -> tuple[TurnResult, TurnTrace]:
    result = list(services.conversations.reply(brand, conversation.public_id, text))[-1]
    assert isinstance(result, TurnResult)
    return result, TurnTrace.get(TurnTrace.agent_message == result.message.id)


@pytest.mark.parametrize(("question", "fact"), [
    ("What is your return policy?", "30 days"),
    ("how long do refunds take?", "5 to 7 business days"),
    ("can I exchange for a different product?", "can't exchange for a different kind"),
])
def test_a_question_about_a_policy_is_answered_from_the_knowledge_with_an_offer(
    services: Services, store: Brand, question: str, fact: str
) -> None:
    conversation, _ = services.conversations.start(store, {}, "web")

    result, trace = _say(services, store, conversation, question)

    assert trace.decision["action"] in ("answer_from_knowledge", "extractive_answer"), (
        trace.decision, trace.knowledge)
    assert result.message.citations, "the answer cites the knowledge"
    assert trace.decision.get("offers_workflow") in ("return_items", "exchange_items")
    assert "Just say yes" in result.message.text
    if trace.decision["action"] == "extractive_answer":
        assert fact in result.message.text
    conversation = Conversation.get_by_id(conversation.id)
    assert WorkflowState.from_json(conversation.state).run is None, "no workflow started"


def test_a_sentence_that_answers_grounds_the_reply_where_its_passage_scores_low(
    services: Services, store: Brand
) -> None:
    """The account page's first section packs verification, the one-account rule and a
    family member's order: as a whole it is below the threshold for "how do you verify who I
    am?", while its first sentence answers it."""
    conversation, _ = services.conversations.start(store, {}, "web")

    result, trace = _say(services, store, conversation, "How do you verify who I am?")

    best_passage = trace.knowledge["chunks"][0][1]
    assert best_passage < policy_of(store).knowledge_min_score
    assert trace.decision["action"] in ("answer_from_knowledge", "extractive_answer"), (
        trace.decision, trace.knowledge)
    assert [citation["title"] for citation in result.message.citations or ()] == [
        "Your account and keeping it secure"]
    if trace.decision["action"] == "extractive_answer":
        # The sentence goes on into the list of what identifies the customer.
        assert "your full name and the zip code of your address" in result.message.text


def test_a_yes_to_the_offer_starts_the_workflow(services: Services, store: Brand) -> None:
    conversation, _ = services.conversations.start(store, {}, "web")
    _, first = _say(services, store, conversation, "What is your return policy?")
    offered = first.decision["offers_workflow"]

    result, trace = _say(services, store, conversation, "yes please")

    state = WorkflowState.from_json(Conversation.get_by_id(conversation.id).state)
    assert trace.decision["action"] == "workflow"
    assert state.running == offered
    assert state.offered is None
    assert "email" in result.message.text.lower(), "it asks who the customer is first"


def test_details_the_offered_workflow_needs_take_up_the_offer(
    services: Services, store: Brand
) -> None:
    conversation, _ = services.conversations.start(store, {}, "web")
    _, first = _say(services, store, conversation, "What is your return policy?")

    result, trace = _say(services, store, conversation, "olivia.ito5204@example.com")

    state = WorkflowState.from_json(Conversation.get_by_id(conversation.id).state)
    assert trace.decision["action"] == "workflow"
    assert state.running == first.decision["offers_workflow"]
    assert state.customer_id, "the email identified the customer"
    assert "email" not in result.message.text.lower()


def test_a_request_starts_the_workflow_at_once(services: Services, store: Brand) -> None:
    conversation, _ = services.conversations.start(store, {}, "web")

    _, trace = _say(services, store, conversation, "I want to return my headphones")

    state = WorkflowState.from_json(Conversation.get_by_id(conversation.id).state)
    assert trace.decision["action"] == "workflow"
    assert state.running == "return_items"


@pytest.mark.parametrize("text", [
    "What is your return policy?", "how long do refunds take?",
    "can I exchange for a different product?", "Hi! Do you charge a fee to cancel?",
    "I want to check how long the delivery takes",
])
def test_it_reads_questions_about_how_things_work(text: str) -> None:
    assert asks_about_policy(text)


@pytest.mark.parametrize("text", [
    "I want to return my headphones", "can you cancel my order?", "where is my order?",
    "I want to check on an order I placed",
    "Hi, I'm Mei Kovacs, zip 28236. In order #W1234567 I want to exchange the desk lamp",
    "please cancel order W2611340", "I need to change the address on my order",
])
def test_it_reads_requests_to_act(text: str) -> None:
    assert not asks_about_policy(text)


def test_it_recognises_most_public_phrasings_of_policy_questions() -> None:
    """Bitext's customer-support utterances (written by others, see data/README.md) of the
    intents that ask about a policy are read as questions. (Utterances of action intents are
    often how-to questions, "how can I change the shipping address?": those get the answer
    and the offer, one turn more than a request.)"""
    with (DATA / "bitext_policy_questions.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))

    recognised = sum(asks_about_policy(row["utterance"]) for row in rows) / len(rows)

    assert len(rows) == 300
    assert recognised >= 0.85
