"""Fixtures for the deployment tests: the repository's systemd units and Ansible role, parsed.

Nothing here needs root, a running systemd or a network: units are read as text, Ansible runs
against localhost with a local connection and writes only under pytest's tmp_path.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import pytest
from deploy_support import ROLE_DIR, SYSTEMD_DIR, Ansible, Unit, load_yaml, parse_unit

# The converge needs root and a Debian 12 root: `make test-deploy` runs it, `make test` does not.
collect_ignore = [] if "APPLIANCE_DEPLOY_ROOT" in os.environ else ["test_converge.py"]


@pytest.fixture(scope="session")
def unit_files() -> dict[str, Unit]:
    return {path.name: parse_unit(path) for path in sorted(SYSTEMD_DIR.iterdir())}


@pytest.fixture(scope="session")
def service_units(unit_files: dict[str, Unit]) -> dict[str, Unit]:
    return {name: unit for name, unit in unit_files.items() if name.endswith(".service")}


@pytest.fixture(scope="session")
def role_defaults() -> dict[str, Any]:
    return load_yaml(ROLE_DIR / "defaults" / "main.yml")


@pytest.fixture(scope="session")
def role_vars() -> dict[str, Any]:
    return load_yaml(ROLE_DIR / "vars" / "main.yml")


@pytest.fixture(scope="session")
def argument_options() -> dict[str, Any]:
    specs = load_yaml(ROLE_DIR / "meta" / "argument_specs.yml")
    return specs["argument_specs"]["main"]["options"]


@pytest.fixture(scope="session")
def ansible(tmp_path_factory: pytest.TempPathFactory) -> Ansible:
    if importlib.util.find_spec("ansible") is None:
        pytest.skip(
            "ansible-core is not installed in this interpreter; it is a dev dependency "
            "(pip install -e '.[dev]')"
        )
    return Ansible(tmp_path_factory.mktemp("ansible"))
