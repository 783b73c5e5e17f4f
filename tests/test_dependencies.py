"""What `pip install switchboard-appliance` installs is everything the appliance imports.

A module that is importable here only because a development tool pulled it in (cryptography
came with ansible-core) works in the tests and fails on the box (make test-deploy found it).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_with_the_appliance() -> set[str]:
    """The runtime requirements of pyproject.toml and, transitively, theirs (extras included
    where a requirement names them)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pending = [Requirement(spec) for spec in project["dependencies"]]
    seen: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = _normal(requirement.name)
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        extras = requirement.extras
        key = name + "[" + ",".join(sorted(extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        for spec in importlib.metadata.requires(requirement.name) or []:
            sub = Requirement(spec)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}) or any(
                sub.marker.evaluate({"extra": extra}) for extra in extras
            ):
                sub.marker = None
                pending.append(sub)
    return {key.split("[")[0] for key in seen}


def _imported_modules() -> set[str]:
    modules: set[str] = set()
    for path in (REPO / "appliance").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m != "appliance"}


def test_every_imported_package_is_installed_with_the_appliance() -> None:
    installed = _installed_with_the_appliance()
    distributions = importlib.metadata.packages_distributions()
    missing = {
        module: distributions.get(module)
        for module in sorted(_imported_modules())
        if not any(_normal(d) in installed for d in distributions.get(module, []))
    }
    assert missing == {}
