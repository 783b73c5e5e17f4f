"""`appliance demo seed` and the per-brand import folders: the demo's knowledge is copied into
each brand's folder and registered there with the visibility sources.toml gives, and a source
an earlier seed registered straight from the package is moved there, keeping its id."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from appliance.db.models import KnowledgeSource
from appliance.demo.seed import KNOWLEDGE_DIR, seed_knowledge
from appliance.services import Services

SLUG = "lumen-goods"


def test_it_moves_an_earlier_seeds_sources_into_the_brands_import_folder(
    services: Services, seeded: Any, tmp_path: Path
) -> None:
    brand = services.brands.get(SLUG)
    # As a seed before import folders were per brand left it: read from the package.
    policies = KnowledgeSource.create(
        brand=brand, kind="markdown", location=str(KNOWLEDGE_DIR / SLUG / "policies"),
        owner="policy@lumengoods.example", schedule="nightly", options={},
        visibility="internal")
    assert services.knowledge.outside_import_folders() == [policies]

    seed_knowledge(services, only=SLUG)

    catalogue = tomllib.loads((KNOWLEDGE_DIR / "sources.toml").read_text())[SLUG]
    sources = services.knowledge.sources(brand)
    assert len(sources) == len(catalogue), "no source registered twice"
    moved = services.knowledge.source(brand, policies.id)
    assert Path(moved.location) == tmp_path / SLUG / "demo" / "policies"
    assert moved.visibility == "customer"
    assert (Path(moved.location) / "returns.md").is_file()
    assert {(s.kind, s.visibility) for s in sources} == {
        (entry["kind"], entry["visibility"]) for entry in catalogue}
    assert services.knowledge.outside_import_folders() == []
    assert services.knowledge.published(brand) is not None
