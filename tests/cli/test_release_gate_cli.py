"""The release gate from the command line, on a seeded appliance against Lumen Goods' real
order system: `appliance workflows publish` and `import` exit 1 listing the failing cases of
a draft whose write is wrong, `--force --reason` publishes it and the audit log keeps why."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from gate_support import BROKEN_SOURCE, short_cancel_suite_source
from retail_support import APPLIANCE, RetailBackend, seeded_cli


def test_publishing_a_broken_draft_exits_1_with_its_failing_cases_until_forced(
        tmp_path: Path, retail_backend: RetailBackend) -> None:
    env = seeded_cli(tmp_path / "data", retail_backend.url, "--no-knowledge")

    def appliance(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*APPLIANCE, *args], env=env, capture_output=True, text=True,
                              timeout=600, check=False)

    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "cancel_order.yaml").write_text(short_cancel_suite_source())
    assert appliance("eval", "import", "--brand", "lumen-goods", str(suites)).returncode == 0
    drafts = tmp_path / "drafts"
    (drafts / "workflows").mkdir(parents=True)
    (drafts / "workflows" / "cancel_order.yaml").write_text(BROKEN_SOURCE)

    imported = appliance("workflows", "import", "--brand", "lumen-goods", str(drafts))
    published = appliance("workflows", "publish", "--brand", "lumen-goods", "cancel_order")
    unreasoned = appliance("workflows", "publish", "--brand", "lumen-goods", "cancel_order",
                           "--force")
    forced = appliance("workflows", "publish", "--brand", "lumen-goods", "cancel_order",
                       "--force", "--reason", "the order system ignores the reason")

    assert imported.returncode == 1, imported.stdout + imported.stderr
    assert "not published, left as drafts: cancel_order" in imported.stderr
    assert published.returncode == 1, published.stdout + published.stderr
    assert published.stdout == ""
    assert ("refused: pass^1 0.67 on cancel_order is below the brand's floor 0.90"
            in published.stderr)
    assert "  FAIL cancel_order / everything up front: writes: expected" in published.stderr
    assert unreasoned.returncode == 1 and "needs a reason" in unreasoned.stderr
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.strip() == "cancel_order: version 2 published"
    listed = appliance("workflows", "list", "--brand", "lumen-goods").stdout
    assert any(line.split()[:3] == ["cancel_order", "published", "2"]
               for line in listed.splitlines())
    with sqlite3.connect(tmp_path / "data" / "appliance.db") as db:
        actions = [(action, json.loads(detail).get("reason")) for action, detail in db.execute(
            "SELECT action, detail FROM audit_log WHERE action LIKE 'workflow.release_gate.%'"
            " ORDER BY id")]
    assert actions == [("workflow.release_gate.refuse", None)] * 2 + [
        ("workflow.release_gate.force", "the order system ignores the reason")]
