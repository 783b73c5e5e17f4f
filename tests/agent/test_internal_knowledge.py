"""Internal knowledge grounds answers but never reaches a customer as a quote or a citation:
a Markdown source (internal unless marked customer-facing) holding an agent-only procedure,
beside the customer-facing policy pages, with the real embedder, FAISS and the tiny LLM."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.agent.conversations import TurnResult
from appliance.agent.grounding import QUOTE_RUN
from appliance.brands import Persona, Policy
from appliance.db.models import Brand, KnowledgeSource, TurnTrace
from appliance.services import Services

PERSONA = Persona(agent_name="Juniper", tone="Warm and brief.", greeting="Hi, I'm Juniper!")
NO_ANSWER = "I can't find that in our help center; shall I ask a colleague at Acme Lamps?"
PROCEDURE = (
    "Agents may refund a lamp returned after the return window when the customer has "
    "ordered more than twice. Open the order in the back office, choose Goodwill refund and "
    "note the reason in the ticket before you confirm it."
)
POLICY = (
    "Lamps can be returned within 30 days of delivery for a full refund. Print the prepaid "
    "return label from your order page and drop the parcel at any carrier location."
)
QUESTIONS = (
    "Can I still get a refund for a lamp after the return window?",
    "Can agents give a goodwill refund for a lamp returned after the return window?",
    "How do I return a lamp for a refund?",
)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.casefold())


def _quotes(reply: str, passage: str) -> bool:
    """Whether the reply repeats QUOTE_RUN words in a row of the passage."""
    said = _words(reply)
    runs = {tuple(said[i:i + QUOTE_RUN]) for i in range(len(said) - QUOTE_RUN + 1)}
    words = _words(passage)
    return any(tuple(words[i:i + QUOTE_RUN]) in runs for i in range(len(words) - QUOTE_RUN + 1))


@pytest.fixture
def brand(services: Services, tmp_path: Path) -> Brand:
    """Acme with its policy pages (customer-facing) and an agents' procedures export (Markdown,
    left at its kind's default visibility), both in its import folder, published."""
    brand = services.brands.create("acme", "Acme Lamps", PERSONA,
                                   Policy(no_answer_message=NO_ANSWER), actor="test")
    for name, title, text in (("policies", "Returns", POLICY),
                              ("procedures", "Goodwill refunds", PROCEDURE)):
        folder = tmp_path / "acme" / name
        folder.mkdir(parents=True)
        (folder / "page.md").write_text(f"# {title}\n\n{text}\n")
    services.knowledge.add_source(brand, {
        "kind": "markdown", "location": str(tmp_path / "acme" / "policies"),
        "owner": "policy@acme.example", "visibility": "customer"}, actor="test")
    services.knowledge.add_source(brand, {
        "kind": "markdown", "location": str(tmp_path / "acme" / "procedures"),
        "owner": "cx-ops@acme.example"}, actor="test")
    services.knowledge.ingest(brand, publish=True)
    return brand


def _ask(services: Services, brand: Brand, text: str) -> tuple[TurnResult, TurnTrace]:
    conversation, _ = services.conversations.start(brand, {}, "web")
    result = list(services.conversations.reply(brand, conversation.public_id, text))[-1]
    assert isinstance(result, TurnResult)
    return result, TurnTrace.get(TurnTrace.agent_message == result.message.id)


def test_an_internal_procedure_in_a_markdown_source_is_never_quoted_or_cited(
    services: Services, brand: Brand
) -> None:
    procedures = KnowledgeSource.get(KnowledgeSource.owner == "cx-ops@acme.example")
    assert procedures.visibility == "internal", "Markdown is internal unless marked"
    grounded_in_it = 0
    for question in QUESTIONS:
        result, trace = _ask(services, brand, question)

        reply = result.message.text
        assert not _quotes(reply, PROCEDURE), (question, reply)
        cited = {c["article"].split("/")[0] for c in result.message.citations or []}
        assert str(procedures.id) not in cited, (question, result.message.citations)
        _, hits = services.knowledge.search(brand, question)
        internal = {h.chunk_id for h in hits if not h.customer_facing}
        grounded_in_it += bool(internal & set(trace.knowledge["used"]))
    assert grounded_in_it, "the procedure was relevant: it may ground an answer"


def test_a_question_only_internal_knowledge_answers_is_offered_a_colleague(
    services: Services, brand: Brand
) -> None:
    KnowledgeSource.update(visibility="internal").execute()  # nothing customer-facing left

    result, trace = _ask(services, brand, QUESTIONS[1])

    assert not _quotes(result.message.text, PROCEDURE)
    assert not result.message.citations
    if trace.decision["action"] != "answer_from_knowledge":
        # The draft failed its checks, and nothing customer-facing may be quoted instead.
        assert (trace.decision["action"], trace.decision["rule"]) == (
            "no_answer", "internal_knowledge_only")
        assert result.message.text == NO_ANSWER
