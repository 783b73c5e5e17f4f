"""Retrieval from a brand's published version: ranked hits that name their article and sources,
nothing before a version is published, and never another brand's knowledge."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from appliance.brands import Persona
from appliance.db.models import Article, Brand, Chunk
from appliance.errors import ApplianceError
from appliance.llm.base import Health
from appliance.services import Services
from appliance.signals.base import Embedder, Vectors

PERSONA = Persona(agent_name="Juniper", tone="Warm.", greeting="Hi!")
LAMPS = {
    "returns": ("Returns", "Items can be returned within 30 days of delivery for a full refund. "
                           "Print the prepaid return label from your order page."),
    "shipping": ("Shipping", "Standard shipping takes 3 to 5 business days. Express shipping "
                             "costs $12 and arrives the next business day."),
    "warranty": ("Warranty", "Every lamp has a two-year warranty against manufacturing "
                             "defects. Send a photo of the fault to make a claim."),
}
BANK = {
    "cards": ("Lost cards", "Freeze a lost debit card at once in the app, then order a "
                            "replacement card; it arrives in 5 to 7 business days."),
    "wires": ("Wire transfers", "International wire transfers cost $35 and arrive within two "
                                "business days when sent before 4 pm."),
}


def brand_with(services: Services, tmp_path: Path, slug: str,
               articles: dict[str, tuple[str, str]], *, publish: bool = True) -> Brand:
    """A brand whose knowledge is one JSON Lines source holding `articles` (id -> title, text),
    ingested and (by default) published."""
    brand = services.brands.create(slug, slug.title(), PERSONA, actor="test")
    path = tmp_path / slug / f"{slug}.jsonl"  # in the brand's import folder
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(json.dumps({"id": key, "title": title, "content": text}) + "\n"
                            for key, (title, text) in articles.items()))
    services.knowledge.add_source(brand, {"kind": "jsonl", "location": str(path),
                                          "owner": f"kb@{slug}.example"}, actor="test")
    services.knowledge.ingest(brand, publish=publish)
    return brand


def test_it_returns_ranked_hits_with_their_article_and_sources(
    services: Services, tmp_path: Path
) -> None:
    brand = brand_with(services, tmp_path, "lumen", LAMPS)

    version, hits = services.knowledge.search(brand, "How much is express shipping?", k=3)

    assert version is not None
    assert version.number == 1
    assert len(hits) == 3
    best = hits[0]
    source = services.knowledge.sources(brand)[0]
    assert (best.article_key, best.title) == (f"{source.id}/shipping", "Shipping")
    assert "Express shipping costs $12" in best.text
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert best.score > hits[1].score
    assert [p["external_id"] for p in best.provenance] == ["shipping"]
    assert best.citation() == {"article": f"{source.id}/shipping", "title": "Shipping",
                               "location": "lumen.jsonl#shipping", "source_ids": ["shipping"]}
    assert {h.article_key for h in hits} == {f"{source.id}/{key}" for key in LAMPS}


def test_it_returns_fewer_hits_than_asked_when_the_version_is_small(
    services: Services, tmp_path: Path
) -> None:
    brand = brand_with(services, tmp_path, "lumen", LAMPS)

    _, hits = services.knowledge.search(brand, "warranty claim", k=10)

    assert len(hits) == Chunk.select().count() == 3
    assert hits[0].title == "Warranty"


def test_it_finds_nothing_before_a_version_is_published(
    services: Services, tmp_path: Path
) -> None:
    empty = services.brands.create("empty", "Empty", PERSONA, actor="test")
    drafted = brand_with(services, tmp_path, "lumen", LAMPS, publish=False)

    assert services.knowledge.search(empty, "express shipping") == (None, [])
    assert services.knowledge.search(drafted, "express shipping") == (None, [])


def test_it_never_returns_another_brands_knowledge(services: Services, tmp_path: Path) -> None:
    lumen = brand_with(services, tmp_path, "lumen", LAMPS)
    bank = brand_with(services, tmp_path, "bank", BANK)
    bank_chunks = {c.id for c in Chunk.select().join(Article).where(Article.brand == bank)}
    lumen_chunks = {c.id for c in Chunk.select().join(Article).where(Article.brand == lumen)}

    for brand, own, queries in (
        (lumen, lumen_chunks, ["I lost my debit card", "wire transfer fee", "express shipping"]),
        (bank, bank_chunks, ["return a lamp", "lamp warranty", "international wire"]),
    ):
        for query in queries:
            _, hits = services.knowledge.search(brand, query, k=10)
            assert hits, query
            assert {h.chunk_id for h in hits} <= own, (brand.slug, query)

    _, hits = services.knowledge.search(bank, "I lost my debit card")
    assert hits[0].title == "Lost cards"


def test_the_same_text_in_two_brands_is_two_indexes_that_never_mix(
    services: Services, tmp_path: Path
) -> None:
    lumen = brand_with(services, tmp_path, "lumen", LAMPS)
    twin = brand_with(services, tmp_path, "twin", LAMPS)
    versions = [services.knowledge.published(b) for b in (lumen, twin)]
    assert all(versions)

    for brand, version in zip((lumen, twin), versions, strict=True):
        assert version is not None
        own = {c.id for c in Chunk.select().join(Article).where(Article.brand == brand)}
        found, hits = services.knowledge.search(brand, "express shipping cost", k=10)
        assert found == version
        assert Path(version.index_path).parent.name == brand.slug, "an index per brand"
        assert len(hits) == 3 and {h.chunk_id for h in hits} <= own, brand.slug
        assert {p["source_id"] for h in hits for p in h.provenance} == {
            s.id for s in services.knowledge.sources(brand)}


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


def test_it_never_searches_an_index_with_another_embedders_query(
    services: Services, tmp_path: Path
) -> None:
    """An index records the embedder that made its vectors; a query embedded by another model
    (the manifest changed, the brand not yet re-ingested) is never scored against them."""
    brand = brand_with(services, tmp_path, "lumen", LAMPS)
    services.knowledge.embedder = OtherEmbedder(services.embedder)

    try:
        _, hits = services.knowledge.search(brand, "How much is express shipping?")
    except ApplianceError:
        hits = []

    assert hits == []
