"""Billing fixtures: a brand, conversations with real rows, the ledger, and the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.billing.ledger import Ledger
from appliance.brands import Persona
from appliance.db.models import Brand, Conversation, Message
from appliance.services import Services

EMPTY_CONFIG = Path(__file__).resolve().parents[1] / "empty-config.toml"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "verify_ledger.py"
Talk = Callable[..., Conversation]
Verifier = Callable[[dict[str, object], Path], "subprocess.CompletedProcess[str]"]


@pytest.fixture
def brand(services: Services) -> Brand:
    persona = Persona(agent_name="Juniper", tone="Warm.", greeting="Hi, I'm Juniper!")
    return services.brands.create("acme", "Acme", persona, actor="test")


@pytest.fixture
def ledger(services: Services) -> Ledger:
    return Ledger(services.db)


@pytest.fixture
def talk(services: Services, brand: Brand) -> Talk:
    """talk("customer: hi", "agent: hello", ...): a conversation opened as the API opens one
    (with its greeting), then the given messages, each `role: text`."""

    def make(*lines: str) -> Conversation:
        conversation, _ = services.conversations.start(brand, {}, "api")
        for n, line in enumerate(lines):
            role, text = line.split(": ", 1)
            Message.create(public_id=f"{conversation.public_id}_m{n}", conversation=conversation,
                           role=role, text=text)
        return conversation

    return make




def run_verifier(export: dict[str, object], where: Path) -> subprocess.CompletedProcess[str]:
    """scripts/verify_ledger.py as a buyer runs it: a copy of the one file in `where`, in an
    isolated Python with nothing of the appliance importable, on `export` written as JSON."""
    where.mkdir(parents=True, exist_ok=True)
    script = where / "verify_ledger.py"
    shutil.copyfile(SCRIPT, script)
    path = where / "export.json"
    path.write_text(json.dumps(export), encoding="utf-8")
    # -I: no user site, no PYTHON* variables, no current directory on the path.
    return subprocess.run([sys.executable, "-I", str(script), str(path)], cwd=where,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def verifier() -> Verifier:
    return run_verifier
