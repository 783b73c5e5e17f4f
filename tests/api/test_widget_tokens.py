"""Widget tokens are checked against the brand's widget on every use, not only when issued."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from appliance.brands import policy_of
from appliance.db.models import Message
from appliance.services import Services

SLUG = "lumen-goods"


def test_a_token_stops_working_once_the_brand_turns_its_widget_off(
        client: FlaskClient, services: Services, seeded: dict[str, Any],
        open_widget_conversation: Callable[[str], tuple[str, str]]) -> None:
    conversation_id, token = open_widget_conversation(SLUG)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/v1/conversations/{conversation_id}", headers=headers).status_code == 200
    brand = services.brands.get(SLUG)
    services.brands.update(SLUG, policy=policy_of(brand).model_copy(
        update={"widget_enabled": False}), actor="test")
    messages = Message.select().count()

    read = client.get(f"/v1/conversations/{conversation_id}", headers=headers)
    sent = client.post(f"/v1/conversations/{conversation_id}/messages", json={"text": "hello"},
                       headers=headers)

    for refused in (read, sent):
        assert refused.status_code == 401
        assert refused.get_json()["error"]["code"] == "widget_disabled"
    assert Message.select().count() == messages
