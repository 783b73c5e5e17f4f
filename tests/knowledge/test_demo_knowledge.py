"""The demo brands' knowledge end to end, through the real gunicorn server the demo seed set up
(its knowledge ingested and published): search finds the help-center articles customers need,
replies cite them, questions the knowledge cannot answer get the no-answer message, and review
lists exactly what appliance/demo/knowledge/README.md says was planted."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest

from appliance.brands import Policy

#: Customer questions from scripts/bench/data/rho_bank_questions.jsonl, with the source ids of
#: the article that must come first (checked against the seeded demo).
QUESTIONS = {
    "depositing a check through the app — how long till I can actually use the money?":
        ["doc_bank_accounts_bank_accounts_(general)_011"],
    "my rho credit card keeps getting declined even though im way under my limit, whats going "
    "on": ["doc_credit_cards_credit_cards_(general)_023"],
    "can I raise the $300 daily spending cap on my teenager's account? he needs to buy a laptop":
        ["doc_checking_accounts_light_green_account_011"],
}
#: The planted duplicate (README.md): a Zendesk macro that copies a help-center article.
DUPLICATE = ("if I get a new credit card because mine got skimmed, do I have to update all my "
             "autopays? does the account number change too?",
             ["26010427101", "doc_credit_cards_credit_card_replacements_003"])
#: From scripts/bench/data/rho_bank_unanswerable.jsonl: nothing in the sources answers it.
UNANSWERABLE = "can I get a home equity line of credit to pay for a kitchen remodel?"
#: The planted contradiction and stale page of each brand (README.md, "Planted in ...").
PLANTED = {
    "rho-bank": {
        "contradiction": ("usd", {15.0, 25.0}, {"cards-faq.html", "98321"}),
        "stale": "65601",
    },
    "lumen-goods": {
        "contradiction": ("day", {30.0, 14.0}, {"returns-and-exchanges.html", "229391"}),
        "stale": "returns-and-refunds-policy-2021.pdf",
    },
}
#: README.md: every other demo document is dated 2026-05-12 or later, so none of them is
#: older than the default stale threshold before this day.
OTHERS_STAY_FRESH_UNTIL = dt.date(2027, 5, 12)


def appliance_json(live_server: Any, *args: str) -> Any:
    done = live_server.appliance(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("question", list(QUESTIONS))
def test_it_finds_the_help_center_article_for_a_customer_question(
    live_server: Any, question: str
) -> None:
    found = appliance_json(live_server, "knowledge", "search", "--brand", "rho-bank", question)

    assert found["version"] == 1
    best = found["hits"][0]
    assert best["source_ids"] == QUESTIONS[question]
    assert best["score"] >= Policy().knowledge_min_score
    assert best["text"]


def test_it_merges_the_planted_duplicate_into_one_article(live_server: Any) -> None:
    question, merged = DUPLICATE

    found = appliance_json(live_server, "knowledge", "search", "--brand", "rho-bank", "--k",
                           "5", question)

    sources = [hit["source_ids"] for hit in found["hits"]]
    assert merged in sources
    assert all(ids == merged or not set(ids) & set(merged) for ids in sources), sources


def _ask(live_server: Any, text: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {live_server.key('rho-bank')}"}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=120) as http:
        opened = http.post("/v1/conversations", json={})
        assert opened.status_code == 201, opened.text
        replied = http.post(f"/v1/conversations/{opened.json()['id']}/messages",
                            json={"text": text})
    assert replied.status_code == 200, replied.text
    message: dict[str, Any] = replied.json()["message"]
    return message


def test_it_answers_a_customer_with_citations(live_server: Any) -> None:
    question = "depositing a check through the app — how long till I can actually use the money?"

    message = _ask(live_server, question)

    assert message["text"].strip()
    assert message["model"] != "template"
    cited = [source_id for c in message["citations"] for source_id in c["source_ids"]]
    assert "doc_bank_accounts_bank_accounts_(general)_011" in cited
    assert all(c["title"] and c["article"] for c in message["citations"])


def test_it_says_so_when_neither_the_knowledge_nor_the_brands_intents_cover_it(
    live_server: Any
) -> None:
    message = _ask(live_server, UNANSWERABLE)

    # Out of the brand's scope and nothing in its knowledge: it says so and offers a human.
    assert message["text"] == Policy().out_of_scope_message
    assert (message["model"], message["citations"]) == ("template", [])


@pytest.mark.parametrize("slug", list(PLANTED))
def test_it_lists_exactly_the_planted_contradiction_and_stale_page(
    live_server: Any, slug: str
) -> None:
    findings = appliance_json(live_server, "knowledge", "findings", "--brand", slug)

    contradictions = [f for f in findings if f["kind"] == "contradiction"]
    stale = [f["detail"]["external_id"] for f in findings if f["kind"] == "stale"]
    unit, values, sources = PLANTED[slug]["contradiction"]
    assert len(contradictions) == 1, [f["detail"]["passages"] for f in contradictions]
    detail = contradictions[0]["detail"]
    assert (detail["unit"], set(detail["values"])) == (unit, values)
    assert {p["external_id"] for p in detail["passages"]} == sources
    assert PLANTED[slug]["stale"] in stale
    if dt.date.today() < OTHERS_STAY_FRESH_UNTIL:
        assert stale == [PLANTED[slug]["stale"]]
    assert {f["kind"] for f in findings} == {"contradiction", "stale"}


def test_it_seeds_the_demo_knowledge_only_once(live_server: Any) -> None:
    before = {slug: live_server.appliance("knowledge", "versions", "--brand", slug).stdout
              for slug in ("rho-bank", "lumen-goods")}

    again = live_server.appliance("demo", "seed", "--json")

    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["knowledge"] == {"lumen-goods": 1, "rho-bank": 1}
    for slug, listing in before.items():
        assert live_server.appliance("knowledge", "versions", "--brand", slug).stdout == listing
