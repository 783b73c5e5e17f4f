"""The chat page's server side: the brand's names in the page, the widget script, 404s."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from appliance.brands import Policy
from appliance.services import Services


def test_it_serves_the_chat_page_with_the_widget(client: FlaskClient, seeded: Any) -> None:
    response = client.get("/chat/lumen-goods")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<title>Lumen Goods support · Switchboard</title>" in page
    assert 'data-agent-name="Juniper"' in page
    assert 'data-brand-name="Lumen Goods"' in page
    assert 'src="/chat/static/widget.js"' in page
    assert 'data-brand="lumen-goods"' in page
    assert 'data-api-base=""' in page


def test_it_serves_the_widget_script_and_styles(client: FlaskClient, seeded: Any) -> None:
    script = client.get("/chat/static/widget.js")
    assert script.status_code == 200
    assert script.mimetype == "text/javascript"
    assert "text/event-stream" in script.get_data(as_text=True)
    assert client.get("/chat/static/widget.css").mimetype == "text/css"


def test_it_404s_an_unknown_brand(client: FlaskClient, seeded: Any) -> None:
    response = client.get("/chat/no-such-brand")
    assert response.status_code == 404
    assert response.mimetype == "text/html"


def test_it_404s_a_brand_whose_widget_is_disabled(
    client: FlaskClient, services: Services, seeded: Any
) -> None:
    services.brands.update("rho-bank", policy=Policy(widget_enabled=False), actor="test")
    response = client.get("/chat/rho-bank")
    assert response.status_code == 404
    assert "404: brand not found" in response.get_data(as_text=True)
    assert client.get("/chat/lumen-goods").status_code == 200
