"""Who a source is written for: each source's visibility (`customer` or `internal`), its
default by kind, changing it (which holds from the next search, without re-ingesting), and the
brand's import folder that every location must lie in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.brands import Persona
from appliance.db.models import AuditLog, Brand, KnowledgeVersion
from appliance.errors import InvalidRequest, NotFound
from appliance.knowledge.service import DEFAULT_VISIBILITY
from appliance.services import Services

PERSONA = Persona(agent_name="Juniper", tone="Warm.", greeting="Hi!")
RETURNS = "Items can be returned within 30 days of delivery for a full refund."


@pytest.fixture
def acme(services: Services) -> Brand:
    return services.brands.create("acme", "Acme", PERSONA, actor="test")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Acme's import folder (the tests' import dir is tmp_path)."""
    path = tmp_path / "acme"
    path.mkdir()
    return path


def test_only_formats_published_to_customers_default_to_customer(
    services: Services, acme: Brand, folder: Path
) -> None:
    defaults = {}
    for kind in DEFAULT_VISIBILITY:
        location = folder / kind
        location.mkdir()
        source = services.knowledge.add_source(acme, {
            "kind": kind, "location": str(location), "owner": "kb@acme.example"}, actor="test")
        defaults[kind] = source.visibility

    assert defaults == {"faq_html": "customer", "zendesk_macros": "customer",
                        "confluence": "internal", "slack": "internal", "markdown": "internal",
                        "jsonl": "internal", "pdf": "internal"}


def test_it_refuses_a_visibility_it_does_not_know(
    services: Services, acme: Brand, folder: Path
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        services.knowledge.add_source(acme, {
            "kind": "markdown", "location": str(folder), "owner": "kb@acme.example",
            "visibility": "public"}, actor="test")

    assert refused.value.param == "visibility"


def test_a_visibility_change_holds_from_the_next_search_without_reingesting(
    services: Services, acme: Brand, folder: Path
) -> None:
    path = folder / "help.jsonl"
    path.write_text(json.dumps({"id": "returns", "title": "Returns", "content": RETURNS}) + "\n")
    source = services.knowledge.add_source(acme, {
        "kind": "jsonl", "location": str(path), "owner": "kb@acme.example"}, actor="test")
    services.knowledge.ingest(acme, publish=True)
    _, before = services.knowledge.search(acme, "return window")

    services.knowledge.update_source(acme, source.id, {"visibility": "customer"}, actor="ops")
    _, after = services.knowledge.search(acme, "return window")

    assert [h.customer_facing for h in before] == [False]
    assert [h.customer_facing for h in after] == [True]
    assert after[0].provenance[0]["visibility"] == "customer"
    assert KnowledgeVersion.select().count() == 1, "no new version"
    audited = AuditLog.get(AuditLog.action == "knowledge.source.update")
    assert (audited.actor, audited.detail) == ("ops", {"source": source.id,
                                                       "visibility": "customer"})


def test_it_changes_no_source_of_another_brand(
    services: Services, acme: Brand, folder: Path
) -> None:
    source = services.knowledge.add_source(acme, {
        "kind": "markdown", "location": str(folder), "owner": "kb@acme.example"}, actor="test")
    globex = services.brands.create("globex", "Globex", PERSONA, actor="test")

    with pytest.raises(NotFound):
        services.knowledge.update_source(globex, source.id, {"visibility": "customer"},
                                         actor="test")

    assert services.knowledge.source(acme, source.id).visibility == "internal"


def test_a_brands_sources_lie_in_its_own_import_folder(
    services: Services, acme: Brand, folder: Path, tmp_path: Path
) -> None:
    globex = services.brands.create("globex", "Globex", PERSONA, actor="test")
    theirs = tmp_path / "globex" / "wiki"
    theirs.mkdir(parents=True)
    (folder / "link").symlink_to(theirs)
    source = services.knowledge.add_source(acme, {
        "kind": "markdown", "location": str(folder), "owner": "kb@acme.example"}, actor="test")

    for location in (theirs, folder / ".." / "globex" / "wiki", folder / "link", tmp_path):
        with pytest.raises(InvalidRequest) as refused:
            services.knowledge.add_source(acme, {
                "kind": "markdown", "location": str(location), "owner": "kb@acme.example"},
                actor="test")
        assert refused.value.code == "location_not_allowed", location
        with pytest.raises(InvalidRequest):
            services.knowledge.update_source(acme, source.id, {"location": str(location)},
                                             actor="test")

    assert services.knowledge.import_folders(acme) == [tmp_path / "acme"]
    assert services.knowledge.add_source(globex, {
        "kind": "markdown", "location": str(theirs), "owner": "kb@globex.example"},
        actor="test").location == str(theirs.resolve())
    assert services.knowledge.outside_import_folders() == []
