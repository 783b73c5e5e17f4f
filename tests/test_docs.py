"""Docs that are generated from the code stay in step with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_it_keeps_the_configuration_reference_current() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_config_docs.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr


def test_it_gives_the_two_commands_first_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    first_commands = [line.strip() for line in readme.splitlines() if line.startswith("make ")]
    assert first_commands[:2] == ["make demo", "make test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci
