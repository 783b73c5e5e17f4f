"""Every reason the code gives for a decision or a handoff is in the one registry, with words a
person reads (appliance/reasons.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from appliance.reasons import ABOUT, Reason, about
from appliance.workflows import engine

APPLIANCE = Path(__file__).resolve().parent.parent / "appliance"
#: Calls whose second argument is a rule or reason: Decision(action, rule), Grounding(mode,
#: rule), the workflow engine's _Stop(status, reason).
RULE_AT_SECOND = frozenset({"Decision", "Grounding", "_Stop"})


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def raised_reasons() -> dict[str, str]:
    """Each string literal the code passes as a rule or reason, with where it is."""
    found: dict[str, str] = {}
    for path in APPLIANCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            literals = [kw.value for kw in node.keywords if kw.arg in ("reason", "rule")]
            if _name(node.func) in RULE_AT_SECOND and len(node.args) >= 2:
                literals.append(node.args[1])
            for literal in literals:
                if isinstance(literal, ast.Constant) and isinstance(literal.value, str):
                    found[literal.value] = f"{path.relative_to(APPLIANCE)}:{node.lineno}"
    return found


def test_every_reason_the_code_raises_is_registered() -> None:
    found = raised_reasons()

    assert len(found) > 20, "the scan must see the supervisor's and the engine's reasons"
    unregistered = {value: where for value, where in found.items()
                    if value not in Reason.__members__.values()}
    assert unregistered == {}


def test_every_workflow_status_rule_is_registered() -> None:
    # The pipeline names a workflow turn's rule after the engine's status: workflow_<status>.
    statuses = {engine.WAITING, engine.DONE, engine.STOPPED, engine.REFUSED, engine.SWITCHED}

    assert {f"workflow_{status}" for status in statuses} <= set(Reason)


def test_every_registered_reason_has_words() -> None:
    assert set(ABOUT) == set(Reason)
    assert all(about.text and about.next_step for about in ABOUT.values())


def test_a_reason_from_an_older_release_reads_as_its_words() -> None:
    assert about("some_retired_rule").text == "some retired rule"
    assert about("tool_failure").next_step.startswith("Check the order system")
