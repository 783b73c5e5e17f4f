"""Knowledge follows the database: a node that never ingested a version (another node on the
same database did) answers from it with the same citations, building the version's index
from the chunks' stored embeddings into its own data dir; it follows publish and rollback at
once, since every search reads which version is published; and a node whose index files were
lost rebuilds them the same way."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from test_ingest import SHIPPING, Kb, answers, make_kb, write_page

from appliance.knowledge.index import INDEX_FILE
from appliance.knowledge.service import KnowledgeService
from appliance.services import Services

QUESTION = "How much does express shipping cost?"


def _node_b(services: Services, tmp_path: Path) -> Services:
    """The same database and models, another node's data dir."""
    other = KnowledgeService(services.db, services.knowledge.embedder, tmp_path / "node-b",
                             [tmp_path])
    return _with_knowledge(services, other)


def _with_knowledge(services: Services, knowledge: KnowledgeService) -> Services:
    return dataclasses.replace(services, knowledge=knowledge)


def test_another_node_answers_from_a_version_it_never_ingested(
        services: Services, tmp_path: Path) -> None:
    kb: Kb = make_kb(services, tmp_path)
    first = services.knowledge.ingest(kb.brand, publish=True)
    node_b = _node_b(services, tmp_path)
    assert first.run is not None
    cached = tmp_path / "node-b" / "knowledge" / "acme" / f"run-{first.run.id}" / INDEX_FILE
    assert not cached.exists()

    on_a, on_b = answers(services, kb.brand, QUESTION), answers(node_b, kb.brand, QUESTION)

    assert on_b == on_a
    assert on_b[0] == 1 and "$12" in on_b[1][0][2]
    assert cached.is_file()


def test_another_node_follows_publish_and_rollback(services: Services, tmp_path: Path) -> None:
    kb = make_kb(services, tmp_path)
    services.knowledge.ingest(kb.brand, publish=True)
    node_b = _node_b(services, tmp_path)
    assert answers(node_b, kb.brand, QUESTION)[0] == 1
    write_page(kb.policies, "shipping.md", "Shipping", SHIPPING.replace("$12", "$15"))

    services.knowledge.ingest(kb.brand, publish=True)
    after_publish = answers(node_b, kb.brand, QUESTION)
    services.knowledge.rollback(kb.brand, actor="test")
    after_rollback = answers(node_b, kb.brand, QUESTION)

    assert after_publish[0] == 2 and "$15" in after_publish[1][0][2]
    assert after_rollback[0] == 1 and "$12" in after_rollback[1][0][2]


def test_a_node_that_lost_its_index_files_rebuilds_them(services: Services,
                                                       tmp_path: Path) -> None:
    kb = make_kb(services, tmp_path)
    outcome = services.knowledge.ingest(kb.brand, publish=True)
    before = answers(services, kb.brand, QUESTION)
    assert outcome.version is not None
    shutil.rmtree(outcome.version.index_path)
    # A fresh process (nothing in memory) on the same data dir.
    restarted = _with_knowledge(services, KnowledgeService(
        services.db, services.knowledge.embedder, services.settings.data_dir, [tmp_path]))

    assert answers(restarted, kb.brand, QUESTION) == before
    assert (Path(outcome.version.index_path) / INDEX_FILE).is_file()
