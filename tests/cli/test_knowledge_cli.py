"""`appliance knowledge ...` through click's CliRunner, against a real database in a temp data
dir: sources, ingestion (and its exit status when a document failed), versions, diffs,
publish and rollback, findings per owner, and search as JSON."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from appliance.cli import cli

REPO = Path(__file__).resolve().parents[2]
EMPTY_CONFIG = REPO / "tests" / "empty-config.toml"
POLICY_OWNER = "policy@acme.example"
HELP_OWNER = "help-center@acme.example"
Env = dict[str, str]
SHIPPING = ("Standard shipping takes 3 to 5 business days. Express shipping costs $12 and "
            "arrives the next business day.")
ARTICLES = [
    {"id": "hc-shipping", "title": "Shipping", "content": SHIPPING},
    {"id": "hc-returns", "title": "Returns",
     "content": "Items can be returned within 30 days of delivery for a full refund to the "
                "original payment method."},
    {"id": "hc-gift", "title": "Gift cards",
     "content": "Gift cards never expire and can be used on any order in our store."},
]


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> Env:
    """APPLIANCE_* variables for a fresh data dir and database; nothing from the machine."""
    return {
        "APPLIANCE_CONFIG": str(EMPTY_CONFIG),
        "APPLIANCE_DATA_DIR": str(tmp_path / "data"),
        "APPLIANCE_DATABASE_URL": database_url,
    }


def invoke(env: Env, *args: str) -> Result:
    """The click command in this process, with only `env` as APPLIANCE_* configuration."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("APPLIANCE_")}
    return CliRunner().invoke(cli, list(args), env=unset | env)


def ok(result: Result) -> str:
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.stdout


def write_jsonl(path: Path, records: list[dict[str, Any]] | list[str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in records))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Acme's import folder (the default import dir, DATA_DIR/imports, then the slug)."""
    path = tmp_path / "data" / "imports" / "acme"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def acme(env: Env) -> Env:
    """A migrated database with brand acme; returns the env."""
    ok(invoke(env, "db", "migrate"))
    ok(invoke(env, "brands", "create", "acme", "--name", "Acme", "--agent-name", "Juniper",
              "--tone", "Warm and brief.", "--greeting", "Hi, I'm Juniper!"))
    return env


def add_source(env: Env, kind: str, path: Path, owner: str, *extra: str) -> str:
    out = ok(invoke(env, "knowledge", "sources", "add", "--brand", "acme", "--kind", kind,
                    "--path", str(path), "--owner", owner, *extra))
    return out.strip()


def test_it_adds_sources_printing_their_ids(acme: Env, folder: Path) -> None:
    help_center = write_jsonl(folder / "help.jsonl", ARTICLES)
    (folder / "policies").mkdir()

    first = add_source(acme, "jsonl", help_center, HELP_OWNER, "--schedule", "nightly")
    second = add_source(acme, "markdown", folder / "policies", POLICY_OWNER,
                        "--option", "encoding=utf-8", "--visibility", "customer")

    assert (first, second) == ("1", "2")
    listed = ok(invoke(acme, "knowledge", "sources", "list", "--brand", "acme")).splitlines()
    assert re.match(rf"^1\s+jsonl\s+{HELP_OWNER}\s+nightly\s+internal\s+never\s+-\s+"
                    rf"{help_center}$", listed[2]), "JSONL is internal unless marked"
    assert re.match(rf"^2\s+markdown\s+{POLICY_OWNER}\s+-\s+customer\s+never\s+-\s",
                    listed[3])


def test_it_refuses_a_path_outside_the_brands_import_folder(
    acme: Env, folder: Path, tmp_path: Path
) -> None:
    ok(invoke(acme, "brands", "create", "beta", "--name", "Beta", "--agent-name", "Bo",
              "--tone", "Plain.", "--greeting", "Hi!"))
    beta = tmp_path / "data" / "imports" / "beta" / "wiki"
    beta.mkdir(parents=True)
    (beta / "procedures.md").write_text("# Refund overrides\n\nUse code 7731 to skip the "
                                        "return window.\n")
    (folder / "escape").symlink_to(beta)

    for path in (beta, folder / ".." / "beta" / "wiki", folder / "escape", tmp_path):
        result = invoke(acme, "knowledge", "sources", "add", "--brand", "acme", "--kind",
                        "markdown", "--path", str(path), "--owner", POLICY_OWNER)

        assert result.exit_code == 1, path
        assert getattr(result.exception, "code", None) == "location_not_allowed"
    assert ok(invoke(acme, "knowledge", "sources", "add", "--brand", "beta", "--kind",
                     "markdown", "--path", str(beta), "--owner", POLICY_OWNER)).strip() == "1"


def test_it_edits_a_source_and_flags_one_outside_its_import_folder(
    acme: Env, folder: Path, tmp_path: Path
) -> None:
    # Registered where the import folder used to be: as an upgrade leaves such a source.
    old = tmp_path / "old" / "acme"
    old.mkdir(parents=True)
    help_center = write_jsonl(old / "help.jsonl", ARTICLES)
    before = acme | {"APPLIANCE_KNOWLEDGE_IMPORT_DIRS": str(tmp_path / "old")}
    ok(invoke(before, "knowledge", "sources", "add", "--brand", "acme", "--kind", "jsonl",
              "--path", str(help_center), "--owner", HELP_OWNER))

    listed = ok(invoke(acme, "knowledge", "sources", "list", "--brand", "acme"))
    doctor = invoke(acme, "doctor")

    assert f"{help_center} (outside import folder)" in listed
    assert doctor.exit_code == 1
    assert re.search(rf"^knowledge import folders\s+FAIL\s.*acme source 1: {help_center}",
                     doctor.stdout, re.MULTILINE)
    moved = write_jsonl(folder / "help.jsonl", ARTICLES)
    refused = invoke(acme, "knowledge", "sources", "edit", "--brand", "acme", "1",
                     "--path", str(help_center))
    assert getattr(refused.exception, "code", None) == "location_not_allowed"

    out = ok(invoke(acme, "knowledge", "sources", "edit", "--brand", "acme", "1",
                    "--path", str(moved), "--visibility", "customer"))

    assert out.strip() == f"source 1: jsonl, customer, {moved}"
    assert re.search(r"^knowledge import folders\s+ok\s", ok(invoke(acme, "doctor")),
                     re.MULTILINE)


def test_it_refuses_a_source_of_an_unknown_kind(acme: Env, folder: Path) -> None:
    result = invoke(acme, "knowledge", "sources", "add", "--brand", "acme", "--kind", "word",
                    "--path", str(folder), "--owner", HELP_OWNER)

    assert result.exit_code == 1
    assert getattr(result.exception, "param", None) == "kind"


def test_it_ingests_and_publishes_printing_the_version_and_diff(
    acme: Env, folder: Path
) -> None:
    add_source(acme, "jsonl", write_jsonl(folder / "help.jsonl", ARTICLES), HELP_OWNER)

    result = invoke(acme, "knowledge", "ingest", "--brand", "acme", "--publish")

    out = ok(result).splitlines()
    assert re.fullmatch(r"version 1 \(published\): 3 documents, 3 articles, \d+ chunks, "
                        r"0 contradictions, 0 stale", out[0])
    assert out[1:] == ["diff against published: +3 ~0 -0"]
    assert "embed  [" in result.stderr and "] 3/3" in result.stderr, "progress goes to stderr"


def test_it_exits_1_naming_each_document_that_failed(acme: Env, folder: Path) -> None:
    records = [json.dumps(ARTICLES[0]), '{"id": "hc-broken", "title": "Broken",', json.dumps(
        ARTICLES[1]), json.dumps({"id": "hc-empty", "title": "Empty"})]
    add_source(acme, "jsonl", write_jsonl(folder / "help.jsonl", records), HELP_OWNER)

    result = invoke(acme, "knowledge", "ingest", "--brand", "acme")

    assert result.exit_code == 1
    assert result.stdout.startswith("version 1 (draft): 2 documents, 2 articles")
    failed = result.stderr.split("2 document(s) failed:\n", 1)[1].splitlines()
    assert failed[0].startswith("  source 1 help.jsonl:2: line 2: not valid JSON")
    assert failed[1] == "  source 1 hc-empty: line 4: missing 'content' (a string)"


def test_it_lists_diffs_publishes_and_rolls_back_versions(acme: Env, folder: Path) -> None:
    help_center = write_jsonl(folder / "help.jsonl", ARTICLES)
    add_source(acme, "jsonl", help_center, HELP_OWNER)
    ok(invoke(acme, "knowledge", "ingest", "--brand", "acme", "--publish"))
    changed = [{**ARTICLES[0], "content": SHIPPING.replace("$12", "$15")}, *ARTICLES[1:],
               {"id": "hc-hours", "title": "Store hours", "content": "We open at nine."}]
    write_jsonl(help_center, changed)
    ok(invoke(acme, "knowledge", "ingest", "--brand", "acme"))

    versions = ok(invoke(acme, "knowledge", "versions", "--brand", "acme")).splitlines()
    diff = json.loads(ok(invoke(acme, "knowledge", "diff", "--brand", "acme", "--to", "2",
                                "--json")))
    back = ok(invoke(acme, "knowledge", "diff", "--brand", "acme", "--from", "2", "--to", "1"))

    assert re.match(r"^2\s+draft\s+\S+\s+4\s+\d+\s+flat\s+\+1 ~1 -0$", versions[2])
    assert re.match(r"^1\s+published\s+\S+\s+3\s+\d+\s+flat\s+\+3 ~0 -0$", versions[3])
    assert diff == {"added": ["1/hc-hours"], "changed": ["1/hc-shipping"], "removed": []}
    assert back.splitlines() == ["~ 1/hc-shipping", "- 1/hc-hours"]

    assert ok(invoke(acme, "knowledge", "publish", "--brand", "acme", "2")).strip() == (
        "published version 2")
    assert "$15" in search(acme, "express shipping cost")["hits"][0]["text"]
    assert ok(invoke(acme, "knowledge", "rollback", "--brand", "acme")).strip() == (
        "published version 1")
    assert "$12" in search(acme, "express shipping cost")["hits"][0]["text"]
    assert re.match(r"^1\s+published\s", ok(invoke(acme, "knowledge", "versions", "--brand",
                                                   "acme")).splitlines()[3])


def test_it_lists_the_findings_of_one_owner(acme: Env, folder: Path) -> None:
    policies = folder / "policies"
    policies.mkdir()
    (policies / "returns.md").write_text(
        "---\ntitle: Returns policy\nupdated: 2019-03-01\n---\n\nItems can be returned within "
        "14 days of delivery for a full refund to the original payment method.\n")
    add_source(acme, "jsonl", write_jsonl(folder / "help.jsonl", ARTICLES), HELP_OWNER)
    add_source(acme, "markdown", policies, POLICY_OWNER)
    ok(invoke(acme, "knowledge", "ingest", "--brand", "acme", "--publish"))

    everything = json.loads(ok(invoke(acme, "knowledge", "findings", "--brand", "acme",
                                      "--json")))
    mine = json.loads(ok(invoke(acme, "knowledge", "findings", "--brand", "acme", "--owner",
                                POLICY_OWNER, "--json")))
    table = ok(invoke(acme, "knowledge", "findings", "--brand", "acme", "--owner",
                      POLICY_OWNER))

    assert sorted(f["kind"] for f in everything) == ["contradiction", "stale"]
    stale = next(f for f in everything if f["kind"] == "stale")
    assert (stale["article"], stale["owner"]) == ("2/returns.md", POLICY_OWNER)
    assert stale["detail"]["updated_at"] == "2019-03-01T00:00:00"
    contradiction = next(f for f in everything if f["kind"] == "contradiction")
    assert contradiction["detail"]["unit"] == "day"
    assert {p["owner"] for p in contradiction["detail"]["passages"]} == {POLICY_OWNER,
                                                                          HELP_OWNER}
    # The contradiction concerns both sources, so it is listed for either owner.
    assert sorted(f["kind"] for f in mine) == ["contradiction", "stale"]
    theirs = json.loads(ok(invoke(acme, "knowledge", "findings", "--brand", "acme", "--owner",
                                  HELP_OWNER, "--json")))
    assert [f["kind"] for f in theirs] == ["contradiction"]
    assert re.search(r"^stale\s+2/returns\.md\s+policy@acme\.example\s+\d+ days old: "
                     r"returns\.md$", table, re.MULTILINE)


def search(env: Env, query: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(ok(invoke(env, "knowledge", "search", "--brand",
                                                 "acme", "--json", query)))
    return found


def test_it_searches_the_published_version_as_json(acme: Env, folder: Path) -> None:
    add_source(acme, "jsonl", write_jsonl(folder / "help.jsonl", ARTICLES), HELP_OWNER)
    assert search(acme, "express shipping cost") == {"version": None, "hits": []}
    unpublished = invoke(acme, "knowledge", "search", "--brand", "acme", "shipping")
    assert unpublished.exit_code == 1
    assert "no published knowledge version" in unpublished.stderr
    ok(invoke(acme, "knowledge", "ingest", "--brand", "acme", "--publish"))

    found = search(acme, "How much does express shipping cost?")

    assert found["version"] == 1
    best = found["hits"][0]
    assert set(best) == {"article", "source_ids", "title", "score", "text", "source"}
    assert (best["article"], best["source_ids"], best["title"]) == (
        "1/hc-shipping", ["hc-shipping"], "Shipping")
    assert best["text"] == SHIPPING
    assert best["source"]["kind"] == "jsonl"
    assert best["source"]["owner"] == HELP_OWNER
    assert best["source"]["location"] == "help.jsonl#hc-shipping"
    scores = [hit["score"] for hit in found["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert len(scores) == 3
    text = ok(invoke(acme, "knowledge", "search", "--brand", "acme", "--k", "1",
                     "express shipping cost"))
    assert re.match(r"^0\.\d{3}  1/hc-shipping  Shipping\n {7}Standard shipping", text)
