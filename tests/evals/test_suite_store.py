"""Each brand's eval suites in the database (real SQLite and PostgreSQL where configured):
saved as written once they validate, refused with their line otherwise, imported all or
nothing, kept apart per brand, and quarantined cases reported apart by the CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from retail_support import APPLIANCE, RetailBackend, seeded_cli

from appliance.db.models import AuditLog, Brand
from appliance.errors import InvalidRequest, NotFound
from appliance.services import Services
from appliance.workflows.schema import DefinitionError

SUITE = """\
# The customer cancels: kept as written, comments too.
suite: cancellations
cases:
  - name: reason given up front
    turns: ["cancel order #W3657213, I ordered it by mistake", olivia.ito5204@example.com, yes]
    expect:
      writes: [{tool: cancel_order, args: {order_id: "#W3657213"}}]
      outcome: resolved
"""


def test_a_suite_is_kept_as_written_and_replaced_by_name(
        services: Services, lumen: Brand) -> None:
    services.suites.save(lumen, SUITE, "cara")
    changed = SUITE.replace("reason given up front", "the reason up front")
    services.suites.save(lumen, changed, "dan")

    [record] = services.suites.records(lumen, "cancellations")
    assert (record.name, record.source, record.updated_by) == ("cancellations", changed, "dan")
    assert [case.name for case in services.suites.suites(lumen, "cancellations")[0].cases] == [
        "the reason up front"]
    saved = [entry.detail for entry in AuditLog.select().where(
        AuditLog.action == "eval_suite.save") if entry.detail["suite"] == "cancellations"]
    assert saved == [{"suite": "cancellations", "cases": 1}] * 2


@pytest.mark.parametrize(("source", "problem"), [
    (SUITE.replace("    expect:", "    expected:"), "\"line\": 7, \"path\": \"cases.0.expected\""),
    (SUITE + SUITE[SUITE.index("  - name"):], "cases named twice: reason given up front"),
    (SUITE.replace("turns: [", "turns: [[], "), "must not be empty"),
])
def test_an_invalid_suite_is_refused_with_where_and_nothing_is_stored(
        services: Services, lumen: Brand, source: str, problem: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        services.suites.save(lumen, source, "cara")

    detail = str(refused.value.message) + json.dumps(
        getattr(refused.value, "errors", []))
    assert problem in detail
    assert services.suites.records(lumen, "cancellations") == []


def test_an_import_saves_every_file_or_none(
        services: Services, lumen: Brand, tmp_path: Path) -> None:
    (tmp_path / "cancellations.yaml").write_text(SUITE)
    (tmp_path / "broken.yaml").write_text("suite: broken\ncases: []\n")

    with pytest.raises(DefinitionError):
        services.suites.import_dir(lumen, tmp_path, "cara")
    assert services.suites.records(lumen, "cancellations") == []

    (tmp_path / "broken.yaml").unlink()
    assert services.suites.import_dir(lumen, tmp_path, "cara") == ["cancellations"]


def test_suites_belong_to_their_brand(services: Services, seeded: dict[str, Any]) -> None:
    lumen, rho = services.brands.get("lumen-goods"), services.brands.get("rho-bank")
    assert "cancel_order" in {suite.name for suite in services.suites.suites(lumen)}
    assert "cancel_order" not in {suite.name for suite in services.suites.suites(rho)}
    services.suites.delete(lumen, "cancel_order", "cara")
    assert services.suites.suites(lumen, "cancel_order") == []
    with pytest.raises(NotFound, match="has no suite"):
        services.suites.delete(lumen, "cancel_order", "cara")


def test_a_case_added_to_a_new_suite_creates_it(services: Services, lumen: Brand) -> None:
    case = {"name": "asked for a refund", "turns": ["where is my refund"],
            "expect": {"outcome": "resolved"}, "quarantine": "to be filled in"}
    services.suites.add_case(lumen, case, "cara")
    services.suites.add_case(lumen, {**case, "name": "again"}, "cara")

    [suite] = services.suites.suites(lumen, "handoffs")
    assert suite.suite == "handoffs"
    assert [c.name for c in suite.cases] == ["asked for a refund", "again"]
    with pytest.raises(InvalidRequest):
        services.suites.add_case(lumen, {**case, "name": "again"}, "cara")  # named twice


def test_the_cli_imports_lists_and_runs_stored_suites_with_quarantine_apart(
        tmp_path: Path, retail_backend: RetailBackend) -> None:
    env = seeded_cli(tmp_path / "data", retail_backend.url, "--no-knowledge")
    run = APPLIANCE
    suites = tmp_path / "suites"
    suites.mkdir()
    flaky = SUITE.replace("suite: cancellations", "suite: flaky").replace(
        "    expect:", "    quarantine: fails on purpose\n    expect:").replace(
        "outcome: resolved", "outcome: escalated")
    (suites / "flaky.yaml").write_text(flaky)
    imported = subprocess.run([*run, "eval", "import", "--brand", "lumen-goods", str(suites)],
                              env=env, capture_output=True, text=True, check=True)
    assert "stored 1 suites: flaky" in imported.stdout
    listed = subprocess.run([*run, "eval", "list", "--brand", "lumen-goods"], env=env,
                            capture_output=True, text=True, check=True)
    assert any(line.split()[:4] == ["flaky", "1", "0", "1"] for line in listed.stdout.splitlines())

    done = subprocess.run([*run, "eval", "run", "--brand", "lumen-goods", "--suite", "flaky",
                           "--json", "--min-pass", "1"], env=env, capture_output=True,
                          text=True, timeout=300, check=False)

    assert done.returncode == 0, done.stdout + done.stderr  # a quarantined failure never gates
    report = json.loads(done.stdout)
    [case] = report["cases"]
    assert (case["quarantine"], case["passes"]) == ("fails on purpose", 0)
    assert report["quarantined"] == {"1": 0.0} and report["pass_hat_k"] == {}
