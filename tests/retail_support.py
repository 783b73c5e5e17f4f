"""Helpers for tests that talk to Lumen Goods' agent."""

from __future__ import annotations

from typing import Any

import httpx

from appliance.services import Services


def say(services: Services, brand: Any, conversation_id: str, text: str) -> str:
    """One customer turn through the real pipeline; the agent's reply text."""
    from appliance.agent.conversations import TurnResult

    result = None
    for event in services.conversations.reply(brand, conversation_id, text):
        if isinstance(event, TurnResult):
            result = event
    assert result is not None
    return str(result.message.text)


class RetailBackend:
    """`appliance demo-backend retail` on a free port; `reset()` restores the seed."""

    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> None:
        httpx.post(f"{self.url}/reset", timeout=30).raise_for_status()

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def order(self, order_id: str) -> Any:
        return self.get(f"/orders/{order_id.replace('#', '%23')}")
