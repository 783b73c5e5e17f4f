"""Ingestion end to end on a real database: sources become a draft version of deduplicated
articles; re-ingestion diffs and reuses; publish, rollback, findings, failures that keep what
was good, runs that die without changing answers, and one run per brand at a time."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from appliance.brands import Persona, Policy
from appliance.db.models import (
    Article,
    Brand,
    Chunk,
    Document,
    IngestRun,
    KnowledgeSource,
    KnowledgeVersion,
    VersionArticle,
)
from appliance.errors import Conflict, InvalidRequest, NotFound
from appliance.knowledge import ingest as ingest_module
from appliance.knowledge.index import VectorIndex
from appliance.llm.base import Health
from appliance.services import Services
from appliance.signals.base import Embedder, Vectors

REPO = Path(__file__).resolve().parents[2]
PERSONA = Persona(agent_name="Juniper", tone="Warm and brief.", greeting="Hi!")
POLICY_OWNER = "policy@acme.example"
HELP_OWNER = "help-center@acme.example"

RETURNS = ("Items can be returned within 30 days of delivery for a full refund to the original "
           "payment method. Start a return from your order page and print the prepaid label.\n\n"
           "## Refund timing\n\nRefunds reach your card within 5 business days after the "
           "warehouse receives the parcel.")
SHIPPING = ("Standard shipping usually takes 3 to 5 business days. Express shipping costs $12 "
            "and arrives the next business day when ordered before noon.")
WARRANTY = ("Every lamp carries a two-year warranty against manufacturing defects. Contact "
            "support with a photo of the fault and your order number to make a claim.")
GIFT_CARDS = ("Gift cards never expire and can be used on any order. A gift card balance cannot "
              "be exchanged for cash.")


@dataclass
class Kb:
    """A brand with a Markdown folder and a JSON Lines file as its knowledge sources."""

    brand: Brand
    policies: Path
    help_center: Path
    markdown: KnowledgeSource
    jsonl: KnowledgeSource

    def key(self, source: KnowledgeSource, external_id: str) -> str:
        return f"{source.id}/{external_id}"


def write_page(folder: Path, name: str, title: str, body: str, *,
               age_days: float | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / name
    page.write_text(f"# {title}\n\n{body}\n")
    if age_days is not None:
        then = (dt.datetime.now(dt.UTC) - dt.timedelta(days=age_days)).timestamp()
        os.utime(page, (then, then))
    return page


def write_jsonl(path: Path, records: Sequence[dict[str, Any] | str]) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in records))


def help_records(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    """The help center: a copy of the returns page, the gift-card article, and `extra`."""
    return [{"id": "hc-returns", "title": "Returns", "content": RETURNS},
            {"id": "hc-gift", "title": "Gift cards", "content": GIFT_CARDS}, *extra]


def make_kb(services: Services, root: Path, slug: str = "acme",
            policy: Policy | None = None) -> Kb:
    """Brand `slug` with two sources in its import folder under `root` (root / slug)."""
    brand = services.brands.create(slug, slug.title(), PERSONA, policy, actor="test")
    policies = root / slug / "policies"
    write_page(policies, "returns.md", "Returns", RETURNS)
    write_page(policies, "shipping.md", "Shipping", SHIPPING)
    write_page(policies, "warranty.md", "Warranty", WARRANTY)
    help_center = root / slug / "help-center.jsonl"
    write_jsonl(help_center, help_records())
    markdown = services.knowledge.add_source(
        brand, {"kind": "markdown", "location": str(policies), "owner": POLICY_OWNER},
        actor="test")
    jsonl = services.knowledge.add_source(
        brand, {"kind": "jsonl", "location": str(help_center), "owner": HELP_OWNER},
        actor="test")
    return Kb(brand, policies, help_center, markdown, jsonl)


@pytest.fixture
def kb(services: Services, tmp_path: Path) -> Kb:
    return make_kb(services, tmp_path)


def documents() -> dict[tuple[int, str], str]:
    return {(d.source_id, d.external_id): d.content_hash for d in Document.select()}


def version_articles(version: KnowledgeVersion) -> dict[str, int]:
    """Article key -> Article id, for the articles of `version`."""
    rows = (Article.select(Article.key, Article.id).join(VersionArticle)
            .where(VersionArticle.version == version).tuples())
    return dict(cast(list[tuple[str, int]], list(rows)))


def answers(services: Services, brand: Brand, query: str) -> tuple[int | None, list[Any]]:
    version, hits = services.knowledge.search(brand, query)
    return (version.number if version else None,
            [(h.chunk_id, h.article_key, h.text, h.provenance) for h in hits])


def knowledge_dirs(services: Services, slug: str) -> set[str]:
    return {p.name for p in (services.settings.data_dir / "knowledge" / slug).iterdir()}


# --- a first run ------------------------------------------------------------------------------


def test_it_ingests_the_sources_into_a_draft_version(services: Services, kb: Kb) -> None:
    outcome = services.knowledge.ingest(kb.brand)

    version = outcome.version
    assert version is not None
    assert (outcome.run.status, outcome.errors) == ("ok", [])
    assert (version.number, version.status) == (1, "draft")
    assert services.knowledge.published(kb.brand) is None
    assert set(documents()) == {
        (kb.markdown.id, "returns.md"), (kb.markdown.id, "shipping.md"),
        (kb.markdown.id, "warranty.md"), (kb.jsonl.id, "hc-returns"), (kb.jsonl.id, "hc-gift"),
    }
    keys = {kb.key(kb.markdown, "returns.md"), kb.key(kb.markdown, "shipping.md"),
            kb.key(kb.markdown, "warranty.md"), kb.key(kb.jsonl, "hc-gift")}
    assert set(version_articles(version)) == keys
    assert version.diff == {"added": sorted(keys), "changed": [], "removed": []}
    chunks = Chunk.select().join(Article).where(Article.brand == kb.brand).count()
    assert version.stats == {"articles": 4, "chunks": chunks, "contradictions": 0, "stale": 0}
    assert outcome.run.stats["documents"] == 5
    assert all(s.last_status == "ok" and s.last_run_at for s in services.knowledge.sources(
        kb.brand))


def test_it_merges_an_exact_duplicate_across_sources_into_one_article(
    services: Services, kb: Kb
) -> None:
    version = services.knowledge.ingest(kb.brand).version

    article = Article.get(Article.key == kb.key(kb.markdown, "returns.md"))
    membership = VersionArticle.get((VersionArticle.version == version)
                                    & (VersionArticle.article == article))
    assert [(p["kind"], p["external_id"], p["owner"]) for p in membership.provenance] == [
        ("markdown", "returns.md", POLICY_OWNER), ("jsonl", "hc-returns", HELP_OWNER),
    ]
    assert article.title == "Returns"
    assert "within 30 days of delivery" in article.text
    assert Article.select().where(Article.key.contains("hc-returns")).count() == 0


def test_it_refuses_a_source_that_does_not_exist(services: Services, kb: Kb,
                                                 tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        services.knowledge.add_source(kb.brand, {
            "kind": "markdown", "location": str(tmp_path / "acme" / "nowhere"),
            "owner": POLICY_OWNER,
        }, actor="test")


# --- re-ingesting, publishing, rolling back ----------------------------------------------------


def test_it_diffs_a_reingest_and_reembeds_only_what_changed(
    services: Services, kb: Kb, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = services.knowledge.ingest(kb.brand, publish=True).version
    assert first is not None
    write_page(kb.policies, "shipping.md", "Shipping", SHIPPING.replace("$12", "$15"))
    write_page(kb.policies, "care.md", "Lamp care", "Dust lamps with a dry cloth. Never use "
               "water or polish on the shade or the base.")
    (kb.policies / "warranty.md").unlink()
    embedded: list[str] = []
    real_embed = services.embedder.embed

    def spy(texts: Sequence[str]) -> Any:
        embedded.extend(texts)
        return real_embed(texts)

    monkeypatch.setattr(services.embedder, "embed", spy)

    second = services.knowledge.ingest(kb.brand).version

    assert second is not None
    changes = {"added": [kb.key(kb.markdown, "care.md")],
               "changed": [kb.key(kb.markdown, "shipping.md")],
               "removed": [kb.key(kb.markdown, "warranty.md")]}
    assert second.diff == changes
    assert services.knowledge.diff(kb.brand, None, 2) == changes
    assert services.knowledge.diff(kb.brand, 1, 2) == changes
    assert services.knowledge.diff(kb.brand, 2, 1) == {
        "added": changes["removed"], "changed": changes["changed"],
        "removed": changes["added"]}
    before, after = version_articles(first), version_articles(second)
    for unchanged in (kb.key(kb.markdown, "returns.md"), kb.key(kb.jsonl, "hc-gift")):
        assert after[unchanged] == before[unchanged], "an unchanged article keeps its row"
    assert after[kb.key(kb.markdown, "shipping.md")] != before[kb.key(kb.markdown,
                                                                       "shipping.md")]
    assert sorted(t.split("\n", 1)[0] for t in embedded) == ["Lamp care", "Shipping"]
    assert (kb.markdown.id, "warranty.md") not in documents()


def test_it_publishes_and_rolls_back(services: Services, kb: Kb) -> None:
    services.knowledge.ingest(kb.brand, publish=True)
    write_page(kb.policies, "shipping.md", "Shipping", SHIPPING.replace("$12", "$15"))
    services.knowledge.ingest(kb.brand, publish=True)
    question = "How much does express shipping cost?"
    assert "$15" in answers(services, kb.brand, question)[1][0][2]

    rolled_back = services.knowledge.rollback(kb.brand, actor="test")

    assert rolled_back.number == 1
    assert [(v.number, v.status) for v in services.knowledge.versions(kb.brand)] == [
        (2, "archived"), (1, "published")]
    number, hits = answers(services, kb.brand, question)
    assert number == 1
    assert "$12" in hits[0][2]
    # Rolling back again returns to the version rolled back from.
    assert services.knowledge.rollback(kb.brand, actor="test").number == 2


def test_it_refuses_to_roll_back_or_publish_what_does_not_exist(
    services: Services, kb: Kb
) -> None:
    services.knowledge.ingest(kb.brand, publish=True)

    with pytest.raises(Conflict) as nothing:
        services.knowledge.rollback(kb.brand, actor="test")
    with pytest.raises(NotFound):
        services.knowledge.publish(kb.brand, 7, actor="test")

    assert nothing.value.code == "nothing_to_roll_back"
    assert services.knowledge.published(kb.brand).number == 1  # type: ignore[union-attr]


def test_it_builds_each_version_its_own_index_and_switches_on_publish(
    services: Services, kb: Kb
) -> None:
    first = services.knowledge.ingest(kb.brand, publish=True)
    question = "How much does express shipping cost?"
    served = answers(services, kb.brand, question)
    write_page(kb.policies, "shipping.md", "Shipping", SHIPPING.replace("$12", "$15"))

    second = services.knowledge.ingest(kb.brand)

    assert first.version is not None
    assert second.version is not None
    root = services.settings.data_dir / "knowledge" / "acme"
    assert Path(first.version.index_path) == root / f"run-{first.run.id}"
    assert Path(second.version.index_path) == root / f"run-{second.run.id}"
    assert (root / f"run-{first.run.id}" / "index.faiss").is_file()
    assert (root / f"run-{second.run.id}" / "index.faiss").is_file()
    assert answers(services, kb.brand, question) == served, "a draft changes no answer"

    services.knowledge.publish(kb.brand, 2, actor="test")

    number, hits = answers(services, kb.brand, question)
    assert number == 2
    assert "$15" in hits[0][2]
    assert all("$12" not in hit[2] for hit in hits)


def test_it_leaves_the_published_citations_alone_until_a_draft_is_published(
    services: Services, kb: Kb
) -> None:
    services.knowledge.ingest(kb.brand, publish=True)
    question = "How many days do I have to return an item?"
    served = answers(services, kb.brand, question)
    assert served[1][0][3][1]["external_id"] == "hc-returns", "the duplicate is cited"
    write_jsonl(kb.help_center, [{"id": "hc-gift", "title": "Gift cards",
                                  "content": GIFT_CARDS}])

    draft = services.knowledge.ingest(kb.brand).version

    assert draft is not None
    assert answers(services, kb.brand, question) == served
    services.knowledge.publish(kb.brand, draft.number, actor="test")
    assert [p["external_id"] for p in answers(services, kb.brand, question)[1][0][3]] == [
        "returns.md"]
    services.knowledge.rollback(kb.brand, actor="test")
    assert answers(services, kb.brand, question) == served


class OtherEmbedder(Embedder):
    """The real embedder's vectors with their dimensions shuffled: another vector space, as a
    different embedding model would give."""

    def __init__(self, real: Embedder) -> None:
        self._real = real
        self.model_id = f"{real.model_id}-shuffled"
        self.dim = real.dim
        self._order = np.random.default_rng(7).permutation(real.dim)

    def embed(self, texts: Sequence[str]) -> Vectors:
        vectors: Vectors = self._real.embed(texts)[:, self._order]
        return vectors

    def check_health(self) -> Health:
        return self._real.check_health()


def test_it_embeds_every_article_again_when_the_embedder_changes(
    services: Services, kb: Kb
) -> None:
    services.knowledge.ingest(kb.brand, publish=True)
    other = OtherEmbedder(services.embedder)
    services.knowledge.embedder = other

    version = services.knowledge.ingest(kb.brand, publish=True).version

    assert version is not None
    assert version.embedder == other.model_id
    chunks = list(Chunk.select(Chunk, Article).join(Article).join(VersionArticle).where(
        VersionArticle.version == version))
    stored = np.stack([np.frombuffer(bytes(c.embedding), dtype="<f4") for c in chunks])
    expected = other.embed([f"{c.article.title}\n{c.heading}\n{c.text}" for c in chunks])
    similarity = (stored * expected).sum(axis=1)
    assert similarity.min() > 0.99, "every vector of the version is the new embedder's"


# --- findings ---------------------------------------------------------------------------------


def test_it_flags_a_contradiction_between_sources(services: Services, kb: Kb) -> None:
    write_jsonl(kb.help_center, help_records({
        "id": "hc-quick", "title": "Returns quick guide",
        "content": "Items can be returned within 14 days of delivery for a full refund to the "
                   "original payment method. Keep the receipt in a safe place."}))

    version = services.knowledge.ingest(kb.brand).version

    assert version is not None
    assert version.stats["contradictions"] == 1
    (finding,) = services.knowledge.findings(kb.brand)
    assert finding.kind == "contradiction"
    assert finding.detail["unit"] == "day"
    assert sorted(finding.detail["values"]) == [14, 30]
    passages = {p["external_id"]: p for p in finding.detail["passages"]}
    assert set(passages) == {"returns.md", "hc-quick"}
    assert passages["returns.md"]["owner"] == POLICY_OWNER
    assert passages["hc-quick"]["owner"] == HELP_OWNER
    assert "within 14 days" in passages["hc-quick"]["text"]
    assert finding.other_article is not None
    assert {finding.article.key, finding.other_article.key} == {
        kb.key(kb.markdown, "returns.md"), kb.key(kb.jsonl, "hc-quick")}


def test_it_does_not_flag_parallel_pages_of_one_source(services: Services, kb: Kb) -> None:
    card = ("With the {} card you earn {} cashback on every grocery purchase made in our "
            "partner stores.")
    write_page(kb.policies, "silver-card.md", "Silver card", card.format("Silver", "2%"))
    write_page(kb.policies, "gold-card.md", "Gold card", card.format("Gold", "5%"))

    version = services.knowledge.ingest(kb.brand).version

    assert version is not None
    assert version.stats["contradictions"] == 0


def test_it_flags_pages_older_than_the_brands_stale_days(services: Services, kb: Kb) -> None:
    write_page(kb.policies, "warranty.md", "Warranty", WARRANTY, age_days=400)
    write_page(kb.policies, "shipping.md", "Shipping", SHIPPING, age_days=100)

    services.knowledge.ingest(kb.brand, publish=True)

    (stale,) = services.knowledge.findings(kb.brand)
    assert (stale.kind, stale.article.key, stale.owner) == (
        "stale", kb.key(kb.markdown, "warranty.md"), POLICY_OWNER)
    assert stale.detail["external_id"] == "warranty.md"
    assert stale.detail["age_days"] == 400

    brand = services.brands.update("acme", policy=Policy(knowledge_stale_days=90),
                                   actor="test")
    services.knowledge.ingest(brand, publish=True)

    assert sorted(f.detail["external_id"] for f in services.knowledge.findings(brand)) == [
        "shipping.md", "warranty.md"]


def test_it_lists_the_findings_of_one_owner(services: Services, kb: Kb) -> None:
    write_page(kb.policies, "warranty.md", "Warranty", WARRANTY, age_days=400)
    services.knowledge.ingest(kb.brand, publish=True)

    assert [f.kind for f in services.knowledge.findings(kb.brand, owner=POLICY_OWNER)] == [
        "stale"]
    assert services.knowledge.findings(kb.brand, owner=HELP_OWNER) == []
    assert services.knowledge.findings(kb.brand, owner="nobody@acme.example") == []


def test_it_shows_a_contradiction_to_the_owners_of_both_sources(
    services: Services, kb: Kb
) -> None:
    """Each source's owner is told about contradictions found in it: the page that is wrong
    may be in either source."""
    write_jsonl(kb.help_center, help_records({
        "id": "hc-quick", "title": "Returns quick guide",
        "content": "Items can be returned within 14 days of delivery for a full refund to the "
                   "original payment method. Keep the receipt in a safe place."}))
    services.knowledge.ingest(kb.brand, publish=True)

    for owner in (POLICY_OWNER, HELP_OWNER):
        found = services.knowledge.findings(kb.brand, owner=owner)
        assert [f.kind for f in found] == ["contradiction"], owner


# --- failures that keep what was good ---------------------------------------------------------


@pytest.mark.parametrize("broken", [
    '{"id": "hc-gift", "title": "Gift cards", "content": "Gift cards never',
    '{"id": "hc-gift", "title": "Gift cards"}',
], ids=["invalid json", "content missing"])
def test_it_keeps_the_previous_copy_of_a_document_that_fails(
    services: Services, kb: Kb, broken: str
) -> None:
    services.knowledge.ingest(kb.brand, publish=True)
    good = documents()
    write_jsonl(kb.help_center, [
        {"id": "hc-returns", "title": "Returns", "content": RETURNS}, broken,
        {"id": "hc-new", "title": "Store hours", "content": "Our stores open at nine and "
                                                            "close at six on weekdays."},
    ])

    outcome = services.knowledge.ingest(kb.brand)

    assert outcome.run.status == "partial"
    assert len(outcome.errors) == 1
    assert outcome.errors[0]["source"] == str(kb.jsonl.id)
    assert "line 2" in outcome.errors[0]["error"]
    assert outcome.run.errors == outcome.errors
    assert outcome.version is not None
    assert outcome.version.diff == {"added": [kb.key(kb.jsonl, "hc-new")], "changed": [],
                                    "removed": []}
    stored = documents()
    assert stored[(kb.jsonl.id, "hc-gift")] == good[(kb.jsonl.id, "hc-gift")]
    assert (kb.jsonl.id, "hc-new") in stored
    assert KnowledgeSource.get_by_id(kb.jsonl.id).last_status == "partial"


def test_it_keeps_the_documents_of_a_source_whose_path_vanished(
    services: Services, kb: Kb
) -> None:
    services.knowledge.ingest(kb.brand, publish=True)
    good = documents()
    shutil.rmtree(kb.policies)
    write_jsonl(kb.help_center, help_records({"id": "hc-new", "title": "Store hours",
                                              "content": "Our stores open at nine."}))

    outcome = services.knowledge.ingest(kb.brand)

    assert outcome.run.status == "partial"
    assert [(e["source"], e["document"]) for e in outcome.errors] == [(str(kb.markdown.id), "")]
    assert "does not exist" in outcome.errors[0]["error"]
    assert outcome.version is not None
    assert outcome.version.diff == {"added": [kb.key(kb.jsonl, "hc-new")], "changed": [],
                                    "removed": []}
    assert {k: v for k, v in documents().items() if k[0] == kb.markdown.id} == {
        k: v for k, v in good.items() if k[0] == kb.markdown.id}
    statuses = {s.kind: s.last_status for s in services.knowledge.sources(kb.brand)}
    assert statuses == {"markdown": "failed", "jsonl": "partial"}


# --- runs that die ----------------------------------------------------------------------------


def _fail_recording(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("killed while recording the version")


def _fail_saving(self: VectorIndex, staging: Path) -> None:
    (staging / "index.faiss").write_bytes(b"half an index")
    raise RuntimeError("killed while saving the index")


@pytest.mark.parametrize("late_step", ["record_version", "index save"])
def test_it_leaves_answers_unchanged_when_a_run_dies(
    services: Services, kb: Kb, monkeypatch: pytest.MonkeyPatch, late_step: str
) -> None:
    published = services.knowledge.ingest(kb.brand, publish=True).version
    question = "How much does express shipping cost?"
    served, stored = answers(services, kb.brand, question), documents()
    write_page(kb.policies, "shipping.md", "Shipping", SHIPPING.replace("$12", "$15"))
    (kb.policies / "warranty.md").unlink()
    with monkeypatch.context() as patch:
        if late_step == "record_version":
            patch.setattr(ingest_module, "record_version", _fail_recording)
        else:
            patch.setattr(VectorIndex, "_write_files", _fail_saving)
        with pytest.raises(RuntimeError, match="killed"):
            services.knowledge.ingest(kb.brand, publish=True)

    assert published is not None
    assert services.knowledge.published(kb.brand) == published
    assert [v.number for v in services.knowledge.versions(kb.brand)] == [1]
    assert answers(services, kb.brand, question) == served
    assert documents() == stored
    died = services.knowledge.runs(kb.brand)[0]
    assert died.status == "running"

    after = services.knowledge.ingest(kb.brand, publish=True)

    assert IngestRun.get_by_id(died.id).status == "interrupted"
    assert after.version is not None
    assert after.version.diff["changed"] == [kb.key(kb.markdown, "shipping.md")]
    assert "$15" in answers(services, kb.brand, question)[1][0][2]
    indexes = {Path(v.index_path).name for v in services.knowledge.versions(kb.brand)}
    assert knowledge_dirs(services, "acme") == indexes | {"ingest.lock"}


_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from appliance.config import load_settings
    from appliance.knowledge import ingest
    from appliance.knowledge.index import VectorIndex
    from appliance.services import build_services

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if sys.argv[1] == "index save":
        def write_files(self, staging):
            (staging / "index.faiss").write_bytes(b"half an index")
            die()
        VectorIndex._write_files = write_files
    else:
        record = ingest.record_version
        def record_then_die(*args, **kwargs):
            record(*args, **kwargs)  # inside the final transaction, before its commit
            die()
        ingest.record_version = record_then_die
    services = build_services(load_settings())
    services.db.connect()
    services.knowledge.ingest(services.brands.get("acme"), publish=True)
""")


@pytest.mark.parametrize("late_step", ["index save", "final transaction"])
def test_it_leaves_answers_unchanged_when_the_process_is_killed(
    services: Services, kb: Kb, late_step: str
) -> None:
    services.knowledge.ingest(kb.brand, publish=True)
    question = "How much does express shipping cost?"
    served, stored = answers(services, kb.brand, question), documents()
    write_page(kb.policies, "shipping.md", "Shipping", SHIPPING.replace("$12", "$15"))
    settings = services.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")} | {
        "APPLIANCE_CONFIG": str(REPO / "tests" / "empty-config.toml"),
        "APPLIANCE_DATA_DIR": str(settings.data_dir),
        "APPLIANCE_DATABASE_URL": settings.database_url,
    }

    killed = subprocess.run([sys.executable, "-c", _KILLED_RUN, late_step], env=env,
                            capture_output=True, text=True, timeout=120, check=False)

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [v.number for v in services.knowledge.versions(kb.brand)] == [1]
    assert answers(services, kb.brand, question) == served
    assert documents() == stored

    services.knowledge.ingest(kb.brand, publish=True)

    assert "$15" in answers(services, kb.brand, question)[1][0][2]
    indexes = {Path(v.index_path).name for v in services.knowledge.versions(kb.brand)}
    assert knowledge_dirs(services, "acme") == indexes | {"ingest.lock"}


# --- one run per brand ------------------------------------------------------------------------


def test_it_refuses_a_second_ingestion_of_the_same_brand(
    services: Services, kb: Kb, tmp_path: Path
) -> None:
    other = make_kb(services, tmp_path, slug="globex")

    with services.knowledge._brand_lock(kb.brand):
        with pytest.raises(Conflict) as refused:
            services.knowledge.ingest(kb.brand)
        assert services.knowledge.ingest(other.brand).version is not None

    assert refused.value.code == "ingestion_running"
    assert services.knowledge.runs(kb.brand) == []
    assert services.knowledge.ingest(kb.brand).run.status == "ok"
