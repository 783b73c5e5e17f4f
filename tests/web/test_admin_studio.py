"""The Agent Studio through the Flask test client: the workflow list and its metrics, the
editor (YAML and form fields, errors by line), versions (publish, rollback, disable, diff),
the test chat and who may see and change what."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.db.models import AuditLog, Conversation, Message, Workflow
from appliance.reporting import DateRange
from appliance.services import Services
from appliance.web.admin.studio_yaml import fields_of

Csrf = Callable[[str], str]
Submit = Callable[[FlaskClient, str, str, dict[str, str]], TestResponse]
SignIn = Callable[..., FlaskClient]

SLUG = "lumen-goods"
LIST = f"/admin/brands/{SLUG}/workflows"
NEW = f"{LIST}/new"
PAGE = f"{LIST}/store_hours"
STORE_HOURS = """\
name: store_hours
title: Store hours
description: When the stores are open.
triggers:
  examples:
    - what are your store hours
    - when are you open
    - what time do you close today
requires_identity: false
outcome: informed
tools: []
steps:
  - say: Our stores are open 9am to 6pm, Monday to Saturday.
"""
LATER_HOURS = STORE_HOURS.replace("9am to 6pm", "8am to 8pm")
#: `bogus` is not a step kind: the schema rejects line 14.
UNKNOWN_STEP = STORE_HOURS + "  - bogus: 1\n"


def text(response: TestResponse) -> str:
    body: str = response.get_data(as_text=True)
    return body


def versions(services: Services, name: str = "store_hours") -> list[Any]:
    brand = services.brands.get(SLUG)
    return services.workflows.versions(services.workflows.get(brand, name))


def workflow(services: Services, name: str = "store_hours") -> Workflow:
    return services.workflows.get(services.brands.get(SLUG), name)


def create(services: Services, source: str = STORE_HOURS, publish: bool = False) -> None:
    brand = services.brands.get(SLUG)
    services.workflows.save_draft(brand, source, "test")
    if publish:
        services.workflows.publish(brand, "store_hours", "test")


def test_it_requires_login_for_the_studio_pages(client: FlaskClient, seeded: Any) -> None:
    for path in (LIST, NEW, f"{LIST}/order_status", f"{LIST}/order_status/diff?a=1&b=1"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.location.startswith("/admin/login?next=")


def test_it_lists_the_demo_workflows(admin_client: FlaskClient, services: Services) -> None:
    page = text(admin_client.get(LIST))
    for name in ("authenticate", "order_status", "cancel_order"):
        assert f'href="{LIST}/{name}"' in page, name
    assert "Order status and details" in page
    assert "New workflow" in page
    assert f'href="{LIST}"' in text(admin_client.get(f"/admin/brands/{SLUG}"))


def test_it_shows_each_workflows_figures_from_the_reports(
    admin_client: FlaskClient, services: Services,
) -> None:
    brand = services.brands.get(SLUG)

    def ended(state: dict[str, Any], channel: str = "widget") -> None:
        conversation, _ = services.conversations.start(brand, {}, channel)
        for n, (role, said) in enumerate((("customer", "where is my order?"),
                                          ("agent", "Which order is it?"))):
            Message.create(public_id=f"{conversation.public_id}_{n}", role=role,
                           conversation=conversation, text=said)
        Conversation.update(state=state).where(Conversation.id == conversation.id).execute()
        services.conversations.close(brand, conversation.public_id)

    ended({"run": {"workflow": "cancel_order"}, "customer_id": "olivia"})
    ended({"run": {"workflow": "cancel_order"}, "customer_id": "olivia"})
    ended({"run": {"workflow": "cancel_order"}}, channel="studio")

    page = text(admin_client.get(LIST))

    figures = {g["key"]: g for g in services.reports.summary(
        brand, DateRange.parse(None, None), "workflow").as_json()["groups"]}
    cancel = figures["cancel_order"]
    assert (cancel["conversations"], cancel["outcomes"]["abandoned"]) == (2, 2)
    row = page[page.index(f'href="{LIST}/cancel_order"'):]
    row = row[:row.index("</tr>")]
    cells = re.findall(r"<td>(?:<a [^>]*>)?([^<]*)", row)
    assert cells[-5:] == ["2", "0", "0", "2", "0%"], cells
    assert "workflow=cancel_order" in row and "outcome=abandoned" in row
    assert "authenticate" not in figures


def test_it_shows_a_definition_error_by_line_and_saves_nothing(
    admin_client: FlaskClient, services: Services, submit: Submit,
) -> None:
    create(services)
    before = AuditLog.select().count()
    response = submit(admin_client, PAGE, PAGE, {"source": UNKNOWN_STEP})
    assert response.status_code == 400
    page = text(response)
    assert '<a href="#line-14">Line 14</a> · <code>steps.1.bogus</code>' in page
    assert 'id="line-14" class="gutter-error"' in page
    assert UNKNOWN_STEP in page, "the author's text is kept"
    assert len(versions(services)) == 1
    assert versions(services)[0].source == STORE_HOURS
    assert AuditLog.select().count() == before


def test_it_refuses_a_document_that_renames_the_workflow(
    admin_client: FlaskClient, services: Services, submit: Submit,
) -> None:
    create(services)
    renamed = STORE_HOURS.replace("name: store_hours", "name: opening_hours")
    response = submit(admin_client, PAGE, PAGE, {"source": renamed})
    assert response.status_code == 400
    assert '<a href="#line-1">Line 1</a> · <code>name</code>' in text(response)
    assert Workflow.select().where(Workflow.name == "opening_hours").count() == 0
    assert len(versions(services)) == 1


def test_it_shows_a_yaml_syntax_error_for_a_new_workflow(
    admin_client: FlaskClient, services: Services, submit: Submit,
) -> None:
    broken = "name: store_hours\ntitle: [Store hours\nsteps:\n  - say: hi\n"
    response = submit(admin_client, NEW, NEW, {"source": broken})
    assert response.status_code == 400
    page = text(response)
    assert "Not saved: 1 problem" in page
    assert "Line 3</a>" in page and "YAML:" in page
    assert Workflow.select().where(Workflow.name == "store_hours").count() == 0


def test_it_saves_a_new_workflow_as_a_draft(
    admin_client: FlaskClient, services: Services, submit: Submit, seeded: Any,
) -> None:
    response = submit(admin_client, NEW, NEW, {"source": STORE_HOURS, "note": "first cut"})
    assert response.status_code == 302
    assert response.location == PAGE
    assert workflow(services).status == "draft"
    [version] = versions(services)
    assert (version.number, version.status, version.source) == (1, "draft", STORE_HOURS)
    assert (version.created_by, version.note) == (seeded["admin"]["username"], "first cut")
    entry = AuditLog.select().order_by(AuditLog.id.desc()).first()
    assert (entry.action, entry.actor) == ("workflow.save", seeded["admin"]["username"])
    page = text(admin_client.get(PAGE))
    assert "Saved version 1 as a draft" in page
    assert "Publish version 1" in page
    assert "first cut" in page


def test_it_merges_the_form_fields_the_author_changed(
    admin_client: FlaskClient, services: Services, submit: Submit,
) -> None:
    create(services)
    unchanged = {"description": "When the stores are open.", "requires_identity": "",
                 "outcome": "informed"}
    form = {**unchanged, **{f"initial_{k}": v for k, v in unchanged.items()}}
    response = submit(admin_client, PAGE, PAGE, {
        "source": STORE_HOURS, **form,
        "title": "Opening hours", "initial_title": "Store hours",
        "examples": "when do you open\r\nare you open on sunday\r\n",
        "initial_examples": "what are your store hours\nwhen are you open\n"
                            "what time do you close today",
    })
    assert response.status_code == 302
    definition = versions(services)[0].definition
    assert definition["title"] == "Opening hours"
    assert definition["triggers"]["examples"] == ["when do you open", "are you open on sunday"]
    assert (definition["description"], definition["outcome"]) == (
        "When the stores are open.", "informed")


def test_it_keeps_a_field_change_the_broken_yaml_could_not_take(
    admin_client: FlaskClient, services: Services, submit: Submit,
) -> None:
    create(services)
    response = submit(admin_client, PAGE, PAGE, {
        "source": "name: store_hours\ntitle: [\n", "title": "Opening hours",
        "initial_title": "Store hours",
    })
    assert response.status_code == 400
    page = text(response)
    assert 'name="title" value="Opening hours"' in page
    assert 'name="initial_title" value="Store hours"' in page, "merged on the next save"
    assert len(versions(services)) == 1


def test_it_keeps_the_yaml_as_written_when_no_field_changed(
    admin_client: FlaskClient, services: Services, submit: Submit,
) -> None:
    create(services)
    commented = "# opening hours of the shops\n" + LATER_HOURS
    response = submit(admin_client, PAGE, PAGE, {
        "source": commented, "title": "Store hours", "initial_title": "Store hours",
        "outcome": "informed", "initial_outcome": "informed",
    })
    assert response.status_code == 302
    assert versions(services)[0].source == commented


def test_it_refuses_a_new_workflow_named_like_an_existing_one(
    admin_client: FlaskClient, services: Services, submit: Submit,
) -> None:
    before = len(versions(services, "order_status"))
    taken = STORE_HOURS.replace("name: store_hours", "name: order_status")
    response = submit(admin_client, NEW, NEW, {"source": taken})
    assert response.status_code == 400
    assert "a workflow named &#39;order_status&#39; exists already" in text(response)
    assert len(versions(services, "order_status")) == before


def test_it_publishes_rolls_back_and_disables(
    admin_client: FlaskClient, services: Services, submit: Submit,
) -> None:
    # No suite covers a store-hours workflow, so the release gate passes it
    # (test_admin_studio_gate.py has the gate's verdicts).
    services.suites.delete(services.brands.get(SLUG), "knowledge", "test")
    create(services)
    response = submit(admin_client, PAGE, f"{PAGE}/publish", {})
    assert response.status_code == 302
    assert workflow(services).published_version == 1
    assert "retrained" in text(admin_client.get(PAGE))

    assert submit(admin_client, PAGE, PAGE, {"source": LATER_HOURS}).status_code == 302
    assert [(v.number, v.status) for v in versions(services)] == [(2, "draft"), (1, "published")]
    submit(admin_client, PAGE, f"{PAGE}/publish", {})
    assert [(v.number, v.status) for v in versions(services)] == [
        (2, "published"), (1, "retired")]
    assert "Roll back" in text(admin_client.get(PAGE))

    submit(admin_client, PAGE, f"{PAGE}/rollback", {})
    assert workflow(services).published_version == 1
    assert [(v.number, v.status) for v in versions(services)] == [
        (2, "retired"), (1, "published")]
    page = text(admin_client.get(PAGE))
    assert "Rolled back: version 1 is published again." in page
    assert "open 9am to 6pm" in page, "the editor opens the published version, not retired 2"
    assert "Runs version 1 (published) of this workflow" in page

    submit(admin_client, PAGE, f"{PAGE}/enabled", {"enabled": "0"})
    assert workflow(services).status == "disabled"
    page = text(admin_client.get(PAGE))
    assert "Disabled: the agent no longer starts this workflow." in page
    assert ">Enable</button>" in page
    assert "store_hours" not in services.workflows.running(services.brands.get(SLUG)).workflows
    submit(admin_client, PAGE, f"{PAGE}/enabled", {"enabled": "1"})
    assert workflow(services).status == "published"
    actions = [e.action for e in AuditLog.select().where(AuditLog.target == f"{SLUG}/store_hours")]
    assert {"workflow.publish", "workflow.rollback", "workflow.disable",
            "workflow.enable"} <= set(actions)


def test_it_says_when_there_is_nothing_to_roll_back_to(
    admin_client: FlaskClient, services: Services, submit: Submit,
) -> None:
    create(services, publish=True)
    response = submit(admin_client, PAGE, f"{PAGE}/rollback", {})
    assert response.status_code == 302
    assert "Not rolled back: workflow &#39;store_hours&#39; has no earlier published version" in (
        text(admin_client.get(PAGE)))
    assert workflow(services).published_version == 1


def test_it_shows_a_diff_between_two_versions(
    admin_client: FlaskClient, services: Services,
) -> None:
    create(services, publish=True)
    create(services, LATER_HOURS)
    page = text(admin_client.get(f"{PAGE}/diff?a=1&b=2"))
    assert '<span class="udiff-file">--- store_hours v1</span>' in page
    assert ('<span class="udiff-del">-  - say: Our stores are open 9am to 6pm, Monday to '
            "Saturday.</span>") in page
    assert ('<span class="udiff-add">+  - say: Our stores are open 8am to 8pm, Monday to '
            "Saturday.</span>") in page
    assert '<span class="udiff-context"> steps:</span>' in page
    assert "Version 1 → version 2" in text(admin_client.get(f"{PAGE}/diff"))
    assert admin_client.get(f"{PAGE}/diff?a=1&b=9").status_code == 404


def test_it_runs_the_draft_in_the_test_chat(
    admin_client: FlaskClient, services: Services, submit: Submit,
) -> None:
    create(services)
    response = submit(admin_client, PAGE, f"{PAGE}/sandbox", {"text": "when are you open?"})
    assert response.status_code == 302
    assert response.location == f"{PAGE}#sandbox"
    page = text(admin_client.get(PAGE))
    assert "Our stores are open 9am to 6pm, Monday to Saturday." in page
    assert "(rule workflow_done)" in page
    assert '<span class="status status-done">done</span>' in page
    [conversation] = Conversation.select().where(Conversation.channel == "studio")
    assert conversation.customer == {"studio": True}
    assert conversation.state["history"][0]["workflow"] == "store_hours"
    assert services.reports.summary(services.brands.get(SLUG), DateRange.parse(None, None),
                                    "workflow").groups == [], "the test chat is never reported"
    assert workflow(services).published_version is None, "the test chat publishes nothing"

    submit(admin_client, PAGE, f"{PAGE}/sandbox/reset", {})
    page = text(admin_client.get(PAGE))
    assert "No test conversation yet" in page
    assert Conversation.get_by_id(conversation.id).status == "closed"


def test_it_lets_a_viewer_see_but_not_change_workflows(
    sign_in_as: SignIn, services: Services, csrf_token: Csrf,
) -> None:
    create(services)
    viewer = sign_in_as("viewer")
    listing = text(viewer.get(LIST))
    assert "store_hours" in listing and "New workflow" not in listing
    page = text(viewer.get(PAGE))
    assert "Read only" in page
    assert "<fieldset disabled>" in page
    assert "Publish version" not in page and ">Send</button>" not in page
    assert viewer.get(f"{PAGE}/diff").status_code == 200
    assert viewer.get(NEW).status_code == 403
    token = csrf_token(page)
    for action, data in ((PAGE, {"source": LATER_HOURS}), (NEW, {"source": STORE_HOURS}),
                         (f"{PAGE}/publish", {}), (f"{PAGE}/rollback", {}),
                         (f"{PAGE}/enabled", {"enabled": "0"}),
                         (f"{PAGE}/sandbox", {"text": "when are you open?"})):
        response = viewer.post(action, data={"csrf_token": token, **data})
        assert response.status_code == 403, action
        assert "<h1>403: forbidden</h1>" in text(response)
    assert len(versions(services)) == 1
    assert workflow(services).status == "draft"


def test_it_hides_another_brands_workflows_from_a_brand_scoped_user(
    sign_in_as: SignIn, services: Services, csrf_token: Csrf,
) -> None:
    create(services)
    scoped = sign_in_as("cx_editor", "rho-bank")
    own = text(scoped.get("/admin/brands/rho-bank/workflows"))
    assert ('href="/admin/brands/rho-bank/workflows" aria-current="page">Workflows' in own)
    for path in (LIST, NEW, PAGE, f"{PAGE}/diff?a=1&b=1"):
        assert scoped.get(path).status_code == 404, path
    token = csrf_token(own)
    for action, data in ((PAGE, {"source": LATER_HOURS}), (f"{PAGE}/publish", {}),
                         (f"{PAGE}/sandbox", {"text": "hi"})):
        assert scoped.post(action, data={"csrf_token": token, **data}).status_code == 404
    assert len(versions(services)) == 1
    assert workflow(services).published_version is None


def test_it_refuses_a_studio_post_without_csrf_token(
    sign_in_as: SignIn, services: Services,
) -> None:
    create(services)
    editor = sign_in_as("cx_editor", SLUG)
    for action, data in ((PAGE, {"source": LATER_HOURS}), (NEW, {"source": STORE_HOURS}),
                         (f"{PAGE}/publish", {}), (f"{PAGE}/rollback", {}),
                         (f"{PAGE}/enabled", {"enabled": "0"}),
                         (f"{PAGE}/sandbox", {"text": "hi"})):
        response = editor.post(action, data=data)
        assert response.status_code == 403, action
        assert "<h1>403: csrf failed</h1>" in text(response)
    assert len(versions(services)) == 1
    assert workflow(services).status == "draft"
    assert Conversation.select().where(Conversation.channel == "studio").count() == 0


def selected(page: str, field: str) -> str:
    """The value of the option selected in the form's select `field`."""
    select = re.search(rf'<select id="wf-{field}" name="{field}".*?</select>', page, re.S)
    assert select is not None, field
    found = re.search(r'<option value="([^"]*)" selected>', select.group(0))
    assert found is not None, field
    return found.group(1)


def test_it_edits_a_rho_bank_workflows_identity_levels_in_the_form(
    admin_client: FlaskClient, services: Services, submit: Submit,
) -> None:
    brand = services.brands.get("rho-bank")
    page_path = "/admin/brands/rho-bank/workflows/report_card"
    report_card = services.workflows.get(brand, "report_card")
    source = services.workflows.version(report_card).source

    def post(source: str, initial: dict[str, str], **changed: str) -> TestResponse:
        return submit(admin_client, page_path, page_path, {
            "source": source, **initial, **changed,
            **{f"initial_{name}": value for name, value in initial.items()}})

    response = post(source, fields_of(source), identity_read="knowledge",
                    identity_write="one_time_code")
    assert response.status_code == 302
    draft = services.workflows.version(report_card)
    assert draft.status == "draft"
    assert draft.definition["identity"] == {"read": "knowledge", "write": "one_time_code"}
    lines = draft.source.splitlines()
    assert lines[lines.index("requires_identity: true") + 1:][:3] == [
        "identity:", "  read: knowledge", "  write: one_time_code"]
    page = text(admin_client.get(page_path))
    assert (selected(page, "identity_read"), selected(page, "identity_write")) == (
        "knowledge", "one_time_code")

    weaker = post(draft.source, fields_of(draft.source), identity_write="contact")
    assert weaker.status_code == 400
    shown = re.search(r'<textarea id="wf-source"[^>]*>\n(.*?)</textarea>', text(weaker), re.S)
    assert shown is not None
    at = html.unescape(shown.group(1)).splitlines().index("  read: knowledge") + 1
    assert (f'<a href="#line-{at}">Line {at}</a> · <code>identity</code>: identity.write '
            "cannot be weaker than identity.read") in text(weaker)
    assert services.workflows.version(report_card).source == draft.source

    back = post(draft.source, fields_of(draft.source), identity_read="", identity_write="")
    assert back.status_code == 302
    policy = services.workflows.version(report_card)
    assert policy.definition["identity"] is None, "the brand's policy decides"
    assert not any(line.startswith("identity:") for line in policy.source.splitlines())
    assert selected(text(admin_client.get(page_path)), "identity_read") == ""
