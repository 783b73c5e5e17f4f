"""The Studio's tools and formats page through the Flask test client, on Rho-Bank's demo
toolset (seeded from appliance/demo/workflows/rho-bank): its summary, saving with the
errors placed on their lines, a tool or format a workflow uses kept, "try a format", and who
may see and change what. Also the same keep-what-is-used rule on the import path."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from markupsafe import escape
from werkzeug.test import TestResponse

from appliance.db.models import AuditLog, Toolset
from appliance.demo.seed import WORKFLOWS_DIR
from appliance.errors import InvalidRequest
from appliance.services import Services

Csrf = Callable[[str], str]
Submit = Callable[[FlaskClient, str, str, dict[str, str]], TestResponse]
SignIn = Callable[..., FlaskClient]

SLUG = "rho-bank"
PAGE = f"/admin/brands/{SLUG}/tools"
CARD_PATTERN = "    pattern: '^[0-9]{4}$'\n"
CARD_FORMAT = """\
  card_last_four:
    description: the last four digits of a card
"""


BRANCHES_TOOL = """\
  - name: get_branches
    description: The bank's branches and their opening hours.
    path: /branches
    requires_identity: false
"""
BRANCH_HOURS = """\
name: branch_hours
title: Branch hours
triggers:
  examples: [when are your branches open]
tools: [get_branches]
steps:
  - say: Our branches are open 9am to 5pm.
"""


def text(response: TestResponse) -> str:
    body: str = response.get_data(as_text=True)
    return body


def row(page: str, name: str) -> str:
    """The summary's table row of the format or tool `name`."""
    found = re.search(rf"<td><code>{name}</code>.*?</tr>", page, re.S)
    assert found is not None, name
    return found.group(0)


def stored(services: Services) -> str:
    source: str = Toolset.get(Toolset.brand == services.brands.get(SLUG)).source
    return source


def line_of(source: str, fragment: str) -> int:
    """The 1-based line of the first line holding `fragment`."""
    return next(number for number, line in enumerate(source.splitlines(), 1)
                if fragment in line)


def card_format(source: str) -> str:
    """`source` without its card_last_four format (its five lines)."""
    start = source.index(CARD_FORMAT)
    end = source.index("  amount:\n", start)
    return source[:start] + source[end:]


def test_it_summarises_rho_banks_formats_and_tools(
    admin_client: FlaskClient, services: Services,
) -> None:
    listing = text(admin_client.get(f"/admin/brands/{SLUG}/workflows"))
    assert f'href="{PAGE}">Tools and formats</a>' in listing
    page = text(admin_client.get(PAGE))
    source = stored(services)
    assert str(escape(source)) in page, "the document in the editor"
    assert "<td><code>card_last_four</code></td>" in page
    assert "<td>the last four digits of a card</td>" in page
    assert "<code>^[0-9]{4}$</code>" in page
    workflows = f"/admin/brands/{SLUG}/workflows"
    assert f'href="{workflows}/report_card"' in row(page, "card_last_four")
    cards = row(page, "get_cards")
    assert "<td>GET</td>" in cards
    assert '<td class="path"><code>/users/{user_id}/cards</code></td>' in cards
    assert "<td>reads</td>" in cards
    assert "<td>writes</td>" in row(page, "replace_debit_card")
    editor = text(admin_client.get(f"{workflows}/report_card"))
    assert f'href="{PAGE}">tools and formats</a>' in editor


def test_it_saves_an_edited_format_audited(
    admin_client: FlaskClient, services: Services, submit: Submit, seeded: Any,
) -> None:
    edited = stored(services).replace(
        "the last four digits of a card", "the last four digits on the front of a card")
    response = submit(admin_client, PAGE, PAGE, {"source": edited.replace("\n", "\r\n")})
    assert response.status_code == 302
    assert response.location == PAGE
    assert stored(services) == edited
    toolset = services.workflows.toolset(services.brands.get(SLUG))
    assert toolset is not None
    assert toolset.formats["card_last_four"].description == (
        "the last four digits on the front of a card")
    entry = AuditLog.select().order_by(AuditLog.id.desc()).first()
    assert (entry.action, entry.actor, entry.target) == (
        "toolset.save", seeded["admin"]["username"], SLUG)
    assert "Saved the tools and formats" in text(admin_client.get(PAGE))


def test_it_shows_formats_that_do_not_compile_on_their_lines_and_saves_nothing(
    admin_client: FlaskClient, services: Services, submit: Submit,
) -> None:
    before, audits = stored(services), AuditLog.select().count()
    broken = before.replace(CARD_PATTERN, "    pattern: '^[0-9{4}$'\n", 1).replace(
        "    pattern: '^[0-9]{6}$'\n",
        "    pattern: '^[0-9]{6}$'\n    normalise: [digits, titlecase]\n", 1)
    response = submit(admin_client, PAGE, PAGE, {"source": broken})
    assert response.status_code == 400
    page = text(response)
    assert "Not saved: 2 problems in the tools and formats." in page
    pattern_line = line_of(broken, "'^[0-9{4}$'")
    assert (f'<a href="#line-{pattern_line}">Line {pattern_line}</a> · '
            "<code>formats.card_last_four.pattern</code>: ") in page
    assert "is not a regular expression" in page
    normalise_line = line_of(broken, "titlecase")
    assert (f'<a href="#line-{normalise_line}">Line {normalise_line}</a> · '
            "<code>formats.one_time_code.normalise</code>: unknown normaliser") in page
    assert f'id="line-{pattern_line}" class="gutter-error"' in page
    assert str(escape(broken)) in page, "the author's text is kept"
    assert stored(services) == before
    assert AuditLog.select().count() == audits


@pytest.mark.parametrize(("change", "path", "message"), [
    (("    find: '(?<![\\d/-])(\\d{6})(?![\\d/-])'",
      "    find: '(\\d{3})(\\d{3})'"), "formats.one_time_code.find", "has 2 groups"),
    (("  - name: get_accounts\n", "  - name: get_cards\n"), "tools", "tools defined twice"),
    (("formats:\n", "formats: [\n"), "", "YAML:"),
])
def test_it_refuses_each_kind_of_invalid_document(
    admin_client: FlaskClient, services: Services, submit: Submit,
    change: tuple[str, str], path: str, message: str,
) -> None:
    before = stored(services)
    assert change[0] in before
    response = submit(admin_client, PAGE, PAGE, {"source": before.replace(*change, 1)})
    assert response.status_code == 400
    page = text(response)
    assert "Not saved: 1 problem" in page
    assert (f"<code>{path}</code>: " if path else "Line ") in page
    assert message in page
    assert stored(services) == before


def test_it_keeps_a_format_a_workflow_uses(
    admin_client: FlaskClient, services: Services, submit: Submit,
) -> None:
    before = stored(services)
    without = card_format(before)
    response = submit(admin_client, PAGE, PAGE, {"source": without})
    assert response.status_code == 400
    page = text(response)
    formats_line = line_of(without, "formats:")
    assert f'<a href="#line-{formats_line}">Line {formats_line}</a> · <code>formats</code>' in page
    assert "report_card uses format card_last_four" in page
    assert stored(services) == before


def test_it_keeps_a_tool_a_draft_uses_and_drops_one_nobody_uses(
    admin_client: FlaskClient, services: Services, submit: Submit,
) -> None:
    before = stored(services)
    with_branches = before.replace("\ntools:\n", "\ntools:\n" + BRANCHES_TOOL, 1)
    assert submit(admin_client, PAGE, PAGE, {"source": with_branches}).status_code == 302
    assert submit(admin_client, PAGE, PAGE, {"source": before}).status_code == 302, "unused"

    assert submit(admin_client, PAGE, PAGE, {"source": with_branches}).status_code == 302
    services.workflows.save_draft(services.brands.get(SLUG), BRANCH_HOURS, "test")
    response = submit(admin_client, PAGE, PAGE, {"source": before})
    assert response.status_code == 400
    tools_line = line_of(before, "tools:")
    page = text(response)
    assert f'<a href="#line-{tools_line}">Line {tools_line}</a> · <code>tools</code>' in page
    assert "branch_hours uses tool get_branches" in page
    assert stored(services) == with_branches


def test_the_import_path_keeps_what_workflows_use_too(
    services: Services, seeded: Any, tmp_path: Path,
) -> None:
    brand = services.brands.get(SLUG)
    before = stored(services)
    (tmp_path / "tools.yaml").write_text(card_format(before))
    with pytest.raises(InvalidRequest) as refused:
        services.workflows.import_dir(brand, tmp_path, "tester")
    body = refused.value.to_body()["error"]
    assert (body["code"], body["param"], body["type"]) == (
        "toolset_in_use", "formats", "invalid_request_error")
    assert "report_card uses format card_last_four" in body["message"]
    assert stored(services) == before

    # The same import with the workflows that read the format changed to not read it.
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    readers = services.workflows.toolset_use(brand).formats["card_last_four"]
    assert "report_card" in readers
    for name in readers:
        source = (WORKFLOWS_DIR / SLUG / "workflows" / f"{name}.yaml").read_text()
        (workflows / f"{name}.yaml").write_text(
            source.replace("type: card_last_four", "type: text"))
    assert sorted(services.workflows.import_dir(brand, tmp_path, "tester")) == list(readers)
    toolset = services.workflows.toolset(brand)
    assert toolset is not None and "card_last_four" not in toolset.formats


def test_it_reads_a_sentence_with_a_format(admin_client: FlaskClient) -> None:
    page = text(admin_client.get(PAGE, query_string={
        "format": "card_last_four", "text": "Hi, my debit card ending in 4417 was stolen"}))
    assert ('The agent reads <code>card_last_four</code> as <strong><code>4417</code></strong>'
            in page)
    assert '<option value="card_last_four" selected>' in page
    assert 'value="Hi, my debit card ending in 4417 was stolen"' in page
    # As the answer to its question, the bare digits are the value; digits inside a date
    # are not.
    page = text(admin_client.get(PAGE, query_string={
        "format": "card_last_four", "text": "my card 4417 was stolen"}))
    assert "<strong><code>4417</code></strong>" in page
    page = text(admin_client.get(PAGE, query_string={
        "format": "card_last_four", "text": "it was stolen on 11/12/2025"}))
    assert "Nothing in it matches <code>card_last_four</code>" in page
    page = text(admin_client.get(PAGE, query_string={
        "format": "date_of_birth", "text": "born on 07/22/1985, thanks"}))
    assert "<strong><code>07/22/1985</code></strong>" in page
    page = text(admin_client.get(PAGE, query_string={"format": "nope", "text": "1234"}))
    assert 'id="try-result"' not in page


def test_it_lets_a_viewer_see_but_not_change_the_tools(
    sign_in_as: SignIn, services: Services, csrf_token: Csrf,
) -> None:
    before = stored(services)
    viewer = sign_in_as("viewer")
    page = text(viewer.get(PAGE))
    assert "Read only: your role cannot change the tools." in page
    assert "<fieldset disabled>" in page
    token = csrf_token(page)
    response = viewer.post(PAGE, data={"csrf_token": token, "source": card_format(before)})
    assert response.status_code == 403
    assert stored(services) == before


def test_it_hides_rho_banks_tools_from_another_brands_editor(
    sign_in_as: SignIn, services: Services, csrf_token: Csrf,
) -> None:
    before = stored(services)
    lumen_editor = sign_in_as("cx_editor", "lumen-goods")
    own = text(lumen_editor.get("/admin/brands/lumen-goods/tools"))
    assert "<td><code>order_id</code></td>" in own
    assert lumen_editor.get(PAGE).status_code == 404
    response = lumen_editor.post(PAGE, data={"csrf_token": csrf_token(own),
                                             "source": before + "\n# mine now\n"})
    assert response.status_code == 404
    assert stored(services) == before


def test_it_lets_rho_banks_editor_save_with_a_csrf_token_only(
    sign_in_as: SignIn, services: Services, csrf_token: Csrf,
) -> None:
    before = stored(services)
    rho_editor = sign_in_as("cx_editor", SLUG)
    assert rho_editor.post(PAGE, data={"source": before}).status_code == 403, "no CSRF token"
    edited = before + "# reviewed\n"
    response = rho_editor.post(PAGE, data={"csrf_token": csrf_token(text(rho_editor.get(PAGE))),
                                           "source": edited})
    assert response.status_code == 302
    assert stored(services) == edited


def test_a_brand_without_tools_starts_from_a_document_that_saves(
    admin_client: FlaskClient, services: Services, submit: Submit,
) -> None:
    Toolset.delete().where(Toolset.brand == services.brands.get(SLUG)).execute()
    page = text(admin_client.get(PAGE))
    assert "has no tools defined yet" in page
    source = re.search(r'<textarea id="tools-source"[^>]*>\n(.*?)</textarea>', page, re.S)
    assert source is not None
    starter = html.unescape(source.group(1))
    assert submit(admin_client, PAGE, PAGE, {"source": starter}).status_code == 302
