"""Workflow definitions: validation with line numbers, versions, publish, rollback, disable,
diff, import and export; a rejected definition saves nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.db.models import WorkflowVersion
from appliance.demo.seed import WORKFLOWS_DIR
from appliance.errors import Conflict, InvalidRequest
from appliance.services import Services
from appliance.workflows.schema import DefinitionError, parse_workflow

HOURS = """\
name: store_hours
title: Store hours
triggers:
  examples: [when are you open, what are your opening hours]
steps:
  - say: We're open {{ limits.open }} to {{ limits.close }}.
limits: {open: 9am, close: 5pm}
"""


def errors_of(source: str) -> list[dict[str, Any]]:
    with pytest.raises(DefinitionError) as caught:
        parse_workflow(source, "test.yaml")
    return caught.value.errors


def test_it_reports_a_yaml_syntax_error_with_its_line() -> None:
    errors = errors_of("name: x\ntitle: [unclosed\nsteps: []\n")
    assert errors[0]["line"] == 3
    assert errors[0]["message"].startswith("YAML:")


def test_it_reports_each_schema_error_at_the_line_it_is_on() -> None:
    source = HOURS.replace("  - say: We're", "  - sey: We're").replace("name: store_hours",
                                                                       "name: Store Hours")
    errors = {e["path"]: e for e in errors_of(source)}
    assert errors["name"]["line"] == 1
    assert errors["steps.0.sey"]["line"] == 6
    assert "extra" in errors["steps.0.sey"]["message"].lower()


def test_it_refuses_unknown_slots_undeclared_tools_and_broken_templates() -> None:
    unknown_slot = HOURS.replace("steps:\n", "steps:\n  - ask: order_id\n")
    assert "unknown slot 'order_id'" in errors_of(unknown_slot)[0]["message"]
    undeclared = HOURS.replace("steps:\n", "steps:\n  - lookup: get_order\n    save_as: o\n")
    assert "not in the workflow's `tools`" in errors_of(undeclared)[0]["message"]
    broken = HOURS.replace("{{ limits.close }}", "{{ limits.close ")
    assert "steps[0].say" in errors_of(broken)[0]["message"]


def test_it_parses_the_demo_workflows() -> None:
    names = {parse_workflow(path.read_text(), path.name).name
             for path in (WORKFLOWS_DIR / "lumen-goods" / "workflows").glob("*.yaml")}
    assert {"authenticate", "cancel_order", "return_items", "exchange_items",
            "change_order_address", "change_default_address"} <= names


def test_it_saves_drafts_publishes_rolls_back_and_disables(
        services: Services, seeded: dict[str, Any]) -> None:
    brand = services.brands.get("lumen-goods")
    flows = services.workflows
    first = flows.save_draft(brand, HOURS, "tester")
    assert (first.number, first.status) == (1, "draft")
    again = flows.save_draft(brand, HOURS.replace("5pm", "6pm"), "tester")
    assert again.id == first.id  # the draft is edited, not multiplied
    flows.publish(brand, "store_hours", "tester")
    assert "store_hours" in flows.running(brand).workflows
    second = flows.save_draft(brand, HOURS.replace("5pm", "8pm"), "tester", note="late")
    assert (second.number, second.status) == (2, "draft")
    assert flows.running(brand).workflows["store_hours"].limits["close"] == "6pm"
    flows.publish(brand, "store_hours", "tester")
    assert flows.running(brand).workflows["store_hours"].limits["close"] == "8pm"
    assert any(line.startswith("+limits") for line in flows.diff(
        flows.get(brand, "store_hours"), 1, 2))
    back = flows.rollback(brand, "store_hours", "tester")
    assert back.number == 1
    assert flows.running(brand).workflows["store_hours"].limits["close"] == "6pm"
    with pytest.raises(Conflict):
        flows.rollback(brand, "store_hours", "tester")
    flows.set_enabled(brand, "store_hours", False, "tester")
    assert "store_hours" not in flows.running(brand).workflows


def test_it_saves_nothing_when_a_definition_is_rejected(
        services: Services, seeded: dict[str, Any]) -> None:
    brand = services.brands.get("lumen-goods")
    before = WorkflowVersion.select().count()
    with pytest.raises(DefinitionError):
        services.workflows.save_draft(brand, HOURS.replace("steps:", "stepz:"), "tester")
    uses_missing_tool = HOURS.replace("steps:\n", "tools: [launch_rocket]\nsteps:\n")
    with pytest.raises(InvalidRequest, match="launch_rocket"):
        services.workflows.save_draft(brand, uses_missing_tool, "tester")
    assert WorkflowVersion.select().count() == before


def test_it_imports_all_or_nothing_and_exports_what_it_imported(
        services: Services, seeded: dict[str, Any], tmp_path: Path) -> None:
    brand = services.brands.get("lumen-goods")
    out = tmp_path / "export"
    written = services.workflows.export_dir(brand, out)
    assert (out / "tools.yaml") in written
    assert (out / "workflows" / "cancel_order.yaml").read_text() == (
        WORKFLOWS_DIR / "lumen-goods" / "workflows" / "cancel_order.yaml").read_text()
    (out / "workflows" / "store_hours.yaml").write_text(HOURS)
    (out / "workflows" / "broken.yaml").write_text("name: broken\n")
    with pytest.raises(DefinitionError):
        services.workflows.import_dir(brand, out, "tester")
    assert "store_hours" not in {w.name for w in services.workflows.all(brand)}
    (out / "workflows" / "broken.yaml").unlink()
    assert services.workflows.import_dir(brand, out, "tester") == ["store_hours"]
    assert services.workflows.import_dir(brand, out, "tester") == []


def test_the_test_chats_draft_set_is_rebuilt_only_when_the_draft_or_the_running_set_changes(
        services: Services, seeded: dict[str, Any]) -> None:
    brand = services.brands.get("lumen-goods")
    flows = services.workflows
    draft = flows.save_draft(brand, HOURS, "tester")
    first = flows.with_draft(brand, draft)
    assert first.workflows["store_hours"].limits["close"] == "5pm"
    assert "store_hours" not in flows.running(brand).workflows
    assert flows.with_draft(brand, WorkflowVersion.get_by_id(draft.id)) is first

    edited = flows.save_draft(brand, HOURS.replace("5pm", "6pm"), "tester")
    second = flows.with_draft(brand, edited)
    assert second is not first
    assert second.workflows["store_hours"].limits["close"] == "6pm"
    assert "cancel_order" in second.workflows

    flows.set_enabled(brand, "cancel_order", False, "tester")  # the running set changes
    third = flows.with_draft(brand, edited)
    assert third is not second
    assert "cancel_order" not in third.workflows and "store_hours" in third.workflows


def test_a_trigger_phrase_must_be_a_regular_expression() -> None:
    broken = HOURS.replace("  examples:", "  phrases: ['(open']\n  examples:")
    assert "is not a regular expression" in errors_of(broken)[0]["message"]
