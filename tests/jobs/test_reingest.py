"""The nightly `knowledge.reingest` job: only sources scheduled nightly are read, and a draft is
published only where the brand allows it and the run found no new contradiction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.brands import Persona, Policy
from appliance.db.models import Brand, Document, IngestRun, KnowledgeSource
from appliance.jobs import run_job
from appliance.services import Services

REINGEST = "knowledge.reingest"
PERSONA = Persona(agent_name="Juniper", tone="Warm.", greeting="Hi!")
RETURNS = ("Items can be returned within 30 days of delivery for a full refund to the original "
           "payment method.")
SHIPPING = "Express shipping costs $12 and arrives the next business day."


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Acme's import folder: sources are registered only from there."""
    path = tmp_path / "acme"
    path.mkdir()
    return path


def write_articles(path: Path, **articles: str) -> Path:
    path.write_text("".join(json.dumps({"id": key, "title": key.title(), "content": text})
                            + "\n" for key, text in articles.items()))
    return path


def add_source(services: Services, brand: Brand, path: Path, *,
               nightly: bool) -> KnowledgeSource:
    return services.knowledge.add_source(brand, {
        "kind": "jsonl", "location": str(path), "owner": f"{path.stem}@acme.example",
        "schedule": "nightly" if nightly else None}, actor="test")


def stored_text(source: KnowledgeSource, external_id: str) -> str:
    document = Document.get((Document.source == source) & (Document.external_id == external_id))
    return str(document.sections[0][1])


def test_it_reingests_only_nightly_sources(services: Services, folder: Path) -> None:
    brand = services.brands.create("acme", "Acme", PERSONA, actor="test")
    nightly = add_source(services, brand, write_articles(folder / "nightly.jsonl",
                                                         shipping=SHIPPING), nightly=True)
    manual = add_source(services, brand, write_articles(folder / "manual.jsonl",
                                                        returns=RETURNS), nightly=False)
    services.knowledge.ingest(brand, publish=True)
    write_articles(folder / "nightly.jsonl", shipping=SHIPPING.replace("$12", "$15"))
    write_articles(folder / "manual.jsonl", returns=RETURNS.replace("30 days", "60 days"))

    run = run_job(services, REINGEST)

    assert run.status == "ok"
    assert run.detail == {str(nightly.id): {"status": "ok", "errors": 0, "version": 2,
                                            "published": False}}
    assert [r.source_id for r in IngestRun.select().order_by(IngestRun.id)] == [None,
                                                                               nightly.id]
    assert "$15" in stored_text(nightly, "shipping")
    assert "30 days" in stored_text(manual, "returns"), "the manual source was not read"
    version = services.knowledge.version(brand, 2)
    assert version.status == "draft", "auto-publishing is off by default"
    assert version.diff["changed"] == [f"{nightly.id}/shipping"]
    assert services.knowledge.published(brand).number == 1  # type: ignore[union-attr]


def test_it_auto_publishes_only_drafts_without_a_new_contradiction(
    services: Services, folder: Path
) -> None:
    brand = services.brands.create("acme", "Acme", PERSONA,
                                   Policy(knowledge_auto_publish=True), actor="test")
    policies = add_source(services, brand, write_articles(folder / "policies.jsonl",
                                                          returns=RETURNS), nightly=True)
    services.knowledge.ingest(brand, publish=True)
    write_articles(folder / "policies.jsonl", returns=RETURNS, shipping=SHIPPING)

    clean = run_job(services, REINGEST)

    assert clean.detail[str(policies.id)]["published"] is True
    assert services.knowledge.published(brand).number == 2  # type: ignore[union-attr]

    wiki = add_source(services, brand, write_articles(
        folder / "wiki.jsonl", quick=RETURNS.replace("30 days", "14 days")), nightly=True)

    contradicted = run_job(services, REINGEST)

    assert contradicted.status == "ok"
    drafted = contradicted.detail[str(wiki.id)]
    assert drafted["published"] is False
    draft = services.knowledge.version(brand, drafted["version"])
    assert (draft.status, draft.stats["contradictions"]) == ("draft", 1)
    published = services.knowledge.published(brand)
    assert published is not None
    assert published.stats["contradictions"] == 0
    _, hits = services.knowledge.search(brand, "how long do I have to return an item")
    assert all("14 days" not in hit.text for hit in hits), "the contradiction is not served"

    again = run_job(services, REINGEST)

    # The contradiction is no longer new: it is in every later draft, but it was never
    # published, so those drafts stay drafts too.
    assert {d["published"] for d in again.detail.values()} == {False}
