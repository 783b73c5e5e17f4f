"""Helpers for tests that talk to Lumen Goods' agent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from demo_backends import DemoBackend
from flask.testing import FlaskClient

from appliance.services import Services


def say(services: Services, brand: Any, conversation_id: str, text: str) -> str:
    """One customer turn through the real pipeline; the agent's reply as the customer sees
    it."""
    from appliance.agent.conversations import TurnResult

    result = None
    for event in services.conversations.reply(brand, conversation_id, text):
        if isinstance(event, TurnResult):
            result = event
    assert result is not None
    return result.text


#: The appliance's command line, as the tests run it.
APPLIANCE = [sys.executable, "-m", "appliance"]
EMPTY_CONFIG = Path(__file__).resolve().parent / "empty-config.toml"


def seeded_cli(data_dir: Path, retail_url: str, *seed_options: str) -> dict[str, str]:
    """The environment of an appliance CLI on SQLite in `data_dir`, migrated and seeded with
    the demo (`seed_options`: e.g. --no-knowledge), Lumen Goods' tools at `retail_url`."""
    env = {**os.environ, "APPLIANCE_DATA_DIR": str(data_dir),
           "APPLIANCE_CONFIG": str(EMPTY_CONFIG), "APPLIANCE_DEMO_RETAIL_URL": retail_url}
    env.pop("APPLIANCE_DATABASE_URL", None)
    subprocess.run([*APPLIANCE, "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([*APPLIANCE, "demo", "seed", *seed_options], env=env, check=True,
                   capture_output=True)
    return env


class RetailBackend(DemoBackend):
    """`appliance demo-backend retail` on a free port; `reset()` restores the seed."""

    def order(self, order_id: str) -> Any:
        return self.get(f"/orders/{order_id.replace('#', '%23')}")


class Customer:
    """One conversation with Lumen Goods' agent through /v1."""

    def __init__(self, client: FlaskClient, key: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {key}"}
        response = client.post("/v1/conversations", json={"channel": "web"},
                               headers=self.headers)
        assert response.status_code == 201
        self.id = response.json["id"]  # type: ignore[index]

    def says(self, text: str) -> str:
        response = self.client.post(f"/v1/conversations/{self.id}/messages",
                                    json={"text": text}, headers=self.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return str(response.json["message"]["text"])  # type: ignore[index]

    def status(self) -> dict[str, Any]:
        """The transcript: status, status_reason and messages."""
        response = self.client.get(f"/v1/conversations/{self.id}", headers=self.headers)
        return response.json  # type: ignore[return-value]
