"""Helpers for the deployment tests: a unit-file parser and a sandboxed Ansible runner.

Nothing here needs root, a running systemd or a network: units are read as text, Ansible runs
against localhost with a local connection and writes only under pytest's tmp_path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = REPO / "systemd"
ANSIBLE_DIR = REPO / "ansible"
ROLE_DIR = ANSIBLE_DIR / "roles" / "appliance"
LB_ROLE_DIR = ANSIBLE_DIR / "roles" / "lb"


@dataclass
class Directive:
    key: str
    value: str
    line: int
    commented: bool  # a comment line opens the paragraph this directive sits in


@dataclass
class Unit:
    """A unit file as systemd reads it: sections of ordered, possibly repeated directives."""

    name: str
    text: str
    sections: dict[str, list[Directive]] = field(default_factory=dict)

    def all(self, section: str, key: str) -> list[str]:
        """Every value of `key`, in order (Environment=, DeviceAllow= ... repeat)."""
        return [d.value for d in self.sections.get(section, []) if d.key == key]

    def get(self, section: str, key: str) -> str | None:
        """The value systemd uses for a single-valued key: the last one."""
        values = self.all(section, key)
        return values[-1] if values else None

    def words(self, section: str, key: str) -> list[str]:
        """Space-separated values of a list-valued key, over all its lines."""
        return [word for value in self.all(section, key) for word in value.split()]

    @property
    def comments(self) -> str:
        return "\n".join(line for line in self.text.splitlines() if line.startswith("#"))


def parse_unit(path: Path) -> Unit:
    """A small unit-file parser: configparser cannot keep repeated keys in order."""
    unit = Unit(name=path.name, text=path.read_text())
    section = ""
    paragraph_commented = False
    lines = unit.text.splitlines()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            paragraph_commented = False
            continue
        if line.startswith(("#", ";")):
            paragraph_commented = True
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            unit.sections.setdefault(section, [])
            paragraph_commented = False
            continue
        assert "=" in line, f"{path.name}:{number}: not a directive: {raw!r}"
        assert not raw.endswith("\\"), f"{path.name}:{number}: keep directives on one line"
        key, value = line.split("=", 1)
        unit.sections[section].append(
            Directive(key.strip(), value.strip(), number, paragraph_commented)
        )
    return unit


def load_yaml(path: Path) -> Any:
    yaml = pytest.importorskip(
        "yaml", reason="PyYAML comes with ansible-core, a dev dependency (pip install -e '.[dev]')"
    )
    return yaml.safe_load(path.read_text())


class Ansible:
    """Runs ansible-core's CLIs from this interpreter (`python -m ansible`), sandboxed in tmp."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = {
            **os.environ,
            "ANSIBLE_HOME": str(tmp / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
            "ANSIBLE_REMOTE_TEMP": str(tmp / "ansible-remote"),
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ansible", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=240,
        )

    def render(self, template: str, dest: Path, extra_vars: dict[str, Any] | None = None,
               role: Path = ROLE_DIR, inventory: Path | None = None) -> str:
        """Render one of the role's templates with its defaults and vars, as the role would;
        `inventory` gives it the groups and the other hosts' variables."""
        args = [
            "adhoc",
            "localhost",
            "--connection",
            "local",
            *(["-i", str(inventory)] if inventory else []),
            "-m",
            "ansible.builtin.template",
            "-a",
            f"src={role / 'templates' / template} dest={dest}",
            "-e",
            f"@{role / 'defaults' / 'main.yml'}",
            "-e",
            f"@{role / 'vars' / 'main.yml'}",
        ]
        if extra_vars:
            args += ["-e", json.dumps(extra_vars)]
        result = self.run(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        return dest.read_text()


def task_defined_names(role: Path) -> set[str]:
    """Names a role's tasks and handlers create themselves: register:, set_fact:, and
    task- and block-level vars:, in blocks, rescues and always sections too."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if isinstance(node.get("register"), str):
                names.add(node["register"])
            for key in ("vars", "ansible.builtin.set_fact", "set_fact"):
                if isinstance(node.get(key), dict):
                    names.update(node[key])
            for key in ("block", "rescue", "always"):
                walk(node.get(key))

    for path in [*role.glob("tasks/*.yml"), *role.glob("handlers/*.yml")]:
        walk(load_yaml(path))
    return names
