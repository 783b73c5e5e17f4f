"""The release gate in the Agent Studio, through the Flask test client on Lumen Goods' real
workflows and order system: "Check evals" shows the verdict and the failing cases before the
publish button is enabled; a refused draft is not published; an it_admin may publish it with
a reason, a cx_editor may not."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from gate_support import BROKEN_SOURCE, GOOD_SOURCE, short_cancel_suite, with_test_system
from retail_support import RetailBackend
from werkzeug.test import TestResponse

from appliance.db.models import AuditLog
from appliance.services import Services

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
Submit = Callable[[FlaskClient, str, str, dict[str, str]], TestResponse]

PAGE = "/admin/brands/lumen-goods/workflows/cancel_order"
PUBLISH = re.compile(r'<button type="submit" class="button button-primary"( disabled)?[^>]*>'
                     r"Publish version (\d+)</button>")


def page(client: FlaskClient) -> str:
    response = client.get(PAGE)
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def words(text: str) -> str:
    """The page's text without its tags."""
    return re.sub(r"<[^>]+>", "", text)


def publish_button(text: str) -> tuple[bool, int]:
    """(enabled, version) of the gate panel's publish button."""
    found = PUBLISH.search(text)
    assert found, "no publish button"
    return found.group(1) is None, int(found.group(2))


def published(services: Services) -> int:
    brand = services.brands.get("lumen-goods")
    return int(services.workflows.get(brand, "cancel_order").published_version)


@pytest.fixture
def lumen(lumen: Any, services: Services, retail_backend: RetailBackend) -> Any:
    """Lumen Goods with its order system as its evals' test system."""
    return with_test_system(services, lumen, retail_backend.url)


@pytest.fixture
def draft(services: Services, lumen: Any) -> Callable[[str], int]:
    short_cancel_suite(services, lumen)

    def save(source: str) -> int:
        return int(services.workflows.save_draft(lumen, source, "cara").number)

    return save


def test_it_shows_the_refusal_and_keeps_publishing_disabled_until_an_it_admin_forces(
        admin_client: FlaskClient, services: Services, submit: Submit,
        draft: Callable[[str], int]) -> None:
    live, number = published(services), draft(BROKEN_SOURCE)
    before = page(admin_client)
    assert "Not checked yet: check the evals to enable publishing." in before
    assert publish_button(before) == (False, number)

    checked = submit(admin_client, PAGE, f"{PAGE}/evals", {})
    after = page(admin_client)

    assert checked.status_code == 302 and checked.location.endswith("#release-gate")
    assert 'data-verdict="refused"' in after
    assert "pass rate 0.67 on the draft, 1.00 live" in after
    assert "below the brand's floor 0.90" in after
    assert "cancel_order / everything up front: writes: expected" in words(after)
    assert publish_button(after) == (False, number)
    assert "Publish anyway" in after

    submit(admin_client, PAGE, f"{PAGE}/publish", {"number": str(number)})
    assert published(services) == live
    assert "Not published: the release gate refused it" in page(admin_client)
    submit(admin_client, PAGE, f"{PAGE}/publish",
           {"number": str(number), "force": "1", "reason": "known issue, fixed upstream"})
    assert published(services) == number
    entry = AuditLog.select().where(AuditLog.action == "workflow.release_gate.force").get()
    assert (entry.actor, entry.detail["reason"]) == ("admin", "known issue, fixed upstream")
    assert "past the release gate" in page(admin_client)


def test_a_cx_editor_sees_the_refusal_but_may_not_force(
        sign_in_as: Callable[..., FlaskClient], services: Services, submit: Submit,
        draft: Callable[[str], int]) -> None:
    editor = sign_in_as("cx_editor", "lumen-goods")
    live, number = published(services), draft(BROKEN_SOURCE)
    submit(editor, PAGE, f"{PAGE}/evals", {})
    text = page(editor)
    assert 'data-verdict="refused"' in text and "Publish anyway" not in text

    submit(editor, PAGE, f"{PAGE}/publish",
           {"number": str(number), "force": "1", "reason": "please"})

    assert published(services) == live
    assert "Not published: only an it_admin may publish past the release gate" in page(editor)


def test_a_good_draft_passes_and_is_published(
        admin_client: FlaskClient, services: Services, submit: Submit,
        draft: Callable[[str], int]) -> None:
    number = draft(GOOD_SOURCE)
    submit(admin_client, PAGE, f"{PAGE}/evals", {})
    text = page(admin_client)
    assert 'data-verdict="passed"' in text
    assert "pass rate 1.00 on the draft, 1.00 live" in text
    assert publish_button(text) == (True, number)
    assert "Publish anyway" not in text

    submit(admin_client, PAGE, f"{PAGE}/publish", {"number": str(number)})

    assert published(services) == number
    assert AuditLog.select().where(AuditLog.action == "workflow.release_gate.pass").count() == 1
