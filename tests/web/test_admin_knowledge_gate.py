"""Publishing knowledge in the admin goes through the release gate, on Lumen Goods' real
engine and order system: a version that drops the page a suite case cites is refused with
the case named; an it_admin may publish it with a reason (audited), a cx_editor may not."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from gate_support import knowledge_dropping_the_returns_page, with_test_system
from retail_support import RetailBackend
from werkzeug.test import TestResponse

from appliance.db.models import AuditLog, KnowledgeVersion
from appliance.services import Services

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
Submit = Callable[[FlaskClient, str, str, dict[str, str]], TestResponse]


@pytest.fixture
def lumen(lumen: Any, services: Services, retail_backend: RetailBackend) -> Any:
    """Lumen Goods with its order system as its evals' test system."""
    return with_test_system(services, lumen, retail_backend.url)


@pytest.fixture
def versions(services: Services, lumen: Any,
             tmp_path: Path) -> tuple[KnowledgeVersion, KnowledgeVersion]:
    return knowledge_dropping_the_returns_page(services, lumen, tmp_path)


def page_of(version: KnowledgeVersion) -> str:
    return f"/admin/brands/lumen-goods/knowledge/versions/{version.number}"


def text(client: FlaskClient, url: str) -> str:
    return html.unescape(client.get(url).get_data(as_text=True))


def test_a_refused_version_is_not_published_until_an_it_admin_forces_it(
        admin_client: FlaskClient, services: Services, submit: Submit,
        versions: tuple[KnowledgeVersion, KnowledgeVersion]) -> None:
    live, draft = versions
    page = page_of(draft)
    assert "Publish anyway" in text(admin_client, page)

    submit(admin_client, page, f"{page}/publish", {})

    shown = text(admin_client, page)
    assert "Not published: the release gate refused it." in shown
    assert "knowledge / the return window: never cited 'Return policy'" in shown
    assert services.knowledge.published(live.brand) == live

    submit(admin_client, page, f"{page}/publish", {"force": "1", "reason": "policy retired"})

    assert services.knowledge.published(live.brand) == draft
    entry = AuditLog.select().where(AuditLog.action == "knowledge.release_gate.force").get()
    assert (entry.detail["reason"], entry.detail["draft"]) == ("policy retired", 0.0)


def test_a_cx_editor_may_not_force_a_refused_version(
        sign_in_as: Callable[..., FlaskClient], services: Services, submit: Submit,
        versions: tuple[KnowledgeVersion, KnowledgeVersion]) -> None:
    live, draft = versions
    editor, page = sign_in_as("cx_editor", "lumen-goods"), page_of(draft)
    assert "Publish anyway" not in text(editor, page)

    submit(editor, page, f"{page}/publish", {"force": "1", "reason": "please"})

    assert "only an it_admin may publish past the release gate" in text(editor, page)
    assert services.knowledge.published(live.brand) == live
