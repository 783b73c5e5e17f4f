"""The admin pages through the Flask test client, with CSRF on as in production."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.agent.conversations import TurnResult
from appliance.brands import persona_of
from appliance.db.models import ApiKey, AuditLog
from appliance.services import Services
from appliance.web.markup import message_html

Csrf = Callable[[str], str]
Login = Callable[[FlaskClient, str, str], TestResponse]
Submit = Callable[[FlaskClient, str, str, dict[str, str]], TestResponse]

BRAND_PAGE = "/admin/brands/lumen-goods"
PASSWORD = "a long enough password"
PERSONA = {
    "agent_name": "Juno",
    "tone": "Friendly and brief.",
    "greeting": "Hello, I'm Juno. What can I do for you?",
    "sign_off": "Take care!",
    "never_say": "As an AI\n\n  Calm down  \n",
    "language": "en-GB",
}


def text(response: TestResponse) -> str:
    body: str = response.get_data(as_text=True)
    return body


def test_it_redirects_anonymous_visitors_to_the_login(client: FlaskClient, seeded: Any) -> None:
    for path in ("/admin/", BRAND_PAGE, "/admin/users", "/admin/audit"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.location.startswith("/admin/login?next=")


def test_it_returns_to_the_page_asked_for_after_login(
    client: FlaskClient, seeded: Any, csrf_token: Csrf
) -> None:
    login_url = client.get(BRAND_PAGE).location
    token = csrf_token(text(client.get(login_url)))
    response = client.post(login_url, data={"csrf_token": token, **seeded["admin"]})
    assert response.status_code == 302
    assert response.location == BRAND_PAGE


def test_it_never_redirects_off_site_after_login(
    client: FlaskClient, seeded: Any, csrf_token: Csrf
) -> None:
    token = csrf_token(text(client.get("/admin/login")))
    response = client.post("/admin/login?next=//evil.example/admin",
                           data={"csrf_token": token, **seeded["admin"]})
    assert response.location == "/admin/"


def test_it_rejects_a_wrong_password_without_naming_the_cause(
    client: FlaskClient, seeded: Any, login: Login
) -> None:
    wrong_password = login(client, seeded["admin"]["username"], "not the password")
    no_such_user = login(client, "nobody", "not the password")
    for response in (wrong_password, no_such_user):
        assert response.status_code == 401
        assert "Invalid username or password." in text(response)
    assert client.get("/admin/").status_code == 302


def test_it_refuses_a_post_without_csrf_token(
    admin_client: FlaskClient, services: Services
) -> None:
    response = admin_client.post(f"{BRAND_PAGE}/persona", data=PERSONA)
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert "<h1>403: csrf failed</h1>" in text(response)
    assert "Request id" in text(response)
    assert persona_of(services.brands.get("lumen-goods")).agent_name == "Juniper"


def test_it_refuses_a_login_without_csrf_token(client: FlaskClient, seeded: Any) -> None:
    response = client.post("/admin/login", data=seeded["admin"])
    assert response.status_code == 403
    assert client.get("/admin/").status_code == 302


def test_it_shows_brands_models_and_conversations_on_the_dashboard(
    admin_client: FlaskClient, services: Services
) -> None:
    conversation, _ = services.conversations.start(
        services.brands.get("rho-bank"), {}, "web"
    )
    page = text(admin_client.get("/admin/"))
    assert "Lumen Goods" in page and "Juniper" in page
    assert "Rho-Bank" in page and "Ada" in page
    assert "smollm2-135m-instruct" in page
    assert "primary" in page
    assert f"/admin/conversations/{conversation.public_id}" in page


def test_it_saves_a_persona_edit_and_audits_it(
    admin_client: FlaskClient, services: Services, submit: Submit
) -> None:
    response = submit(admin_client, BRAND_PAGE, f"{BRAND_PAGE}/persona", PERSONA)
    assert response.status_code == 302
    assert response.location == BRAND_PAGE

    persona = persona_of(services.brands.get("lumen-goods"))
    assert persona.agent_name == "Juno"
    assert persona.never_say == ("As an AI", "Calm down")
    assert persona.language == "en-GB"
    entry = AuditLog.select().where(AuditLog.action == "brand.update").get()
    assert entry.actor == "admin"
    assert entry.target == "lumen-goods"
    assert entry.remote_addr == "127.0.0.1"
    assert entry.detail["persona"]["agent_name"] == "Juno"
    page = text(admin_client.get(BRAND_PAGE))
    assert "Saved Juno&#39;s persona." in page


def test_it_shows_a_validation_error_in_the_form(
    admin_client: FlaskClient, services: Services, submit: Submit
) -> None:
    response = submit(admin_client, BRAND_PAGE, f"{BRAND_PAGE}/persona",
                      {**PERSONA, "language": "English"})
    assert response.status_code == 400
    page = text(response)
    assert 'id="language-error"' in page
    assert 'value="English"' in page, "the form keeps what was typed"
    assert 'value="Juno"' in page
    assert persona_of(services.brands.get("lumen-goods")).agent_name == "Juniper"


def test_it_creates_a_key_that_works_until_revoked(
    admin_client: FlaskClient, services: Services, submit: Submit
) -> None:
    response = submit(admin_client, BRAND_PAGE, f"{BRAND_PAGE}/keys", {"name": "crm"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    assert "shown only once" in text(response)
    found = re.search(r'value="(sbk_[^"]+)"', text(response))
    assert found
    key = found.group(1)
    api = {"Authorization": f"Bearer {key}"}
    assert admin_client.post("/v1/conversations", json={}, headers=api).status_code == 201
    assert key not in text(admin_client.get(BRAND_PAGE)), "the key is never shown again"

    created = ApiKey.get(ApiKey.name == "crm")
    response = submit(admin_client, BRAND_PAGE,
                      f"{BRAND_PAGE}/keys/{created.id}/revoke", {})
    assert response.status_code == 302
    assert admin_client.post("/v1/conversations", json={}, headers=api).status_code == 401
    actions = [e.action for e in AuditLog.select().where(AuditLog.actor == "admin")]
    assert "api_key.create" in actions and "api_key.revoke" in actions


def test_it_lets_viewers_read_but_not_edit(
    sign_in_as: Callable[..., FlaskClient], csrf_token: Csrf
) -> None:
    viewer = sign_in_as("viewer")
    page = viewer.get(BRAND_PAGE)
    assert page.status_code == 200
    assert "<fieldset disabled>" in text(page)
    assert "Create API key" not in text(page)
    token = csrf_token(text(page))
    for action, data in ((f"{BRAND_PAGE}/persona", PERSONA), (f"{BRAND_PAGE}/keys", {})):
        response = viewer.post(action, data={"csrf_token": token, **data})
        assert response.status_code == 403
        assert "<h1>403: forbidden</h1>" in text(response)
    assert viewer.get("/admin/users").status_code == 403


def test_it_lets_cx_editors_edit_personas_but_not_keys(
    sign_in_as: Callable[..., FlaskClient], services: Services, submit: Submit
) -> None:
    editor = sign_in_as("cx_editor", "lumen-goods")
    assert submit(editor, BRAND_PAGE, f"{BRAND_PAGE}/persona", PERSONA).status_code == 302
    assert submit(editor, BRAND_PAGE, f"{BRAND_PAGE}/keys", {}).status_code == 403
    assert editor.get("/admin/audit").status_code == 403


def test_it_hides_other_brands_from_a_user_scoped_to_one(
    sign_in_as: Callable[..., FlaskClient], services: Services, csrf_token: Csrf
) -> None:
    lumen_conversation, _ = services.conversations.start(
        services.brands.get("lumen-goods"), {}, "web"
    )
    scoped = sign_in_as("cx_editor", "rho-bank")
    assert scoped.get("/admin/brands/rho-bank").status_code == 200
    response = scoped.get(BRAND_PAGE)
    assert response.status_code == 404
    assert "404" in text(response)
    token = csrf_token(text(scoped.get("/admin/brands/rho-bank")))
    response = scoped.post(f"{BRAND_PAGE}/persona", data={"csrf_token": token, **PERSONA})
    assert response.status_code == 404
    assert scoped.get(f"/admin/conversations/{lumen_conversation.public_id}").status_code == 404
    dashboard = text(scoped.get("/admin/"))
    assert "Rho-Bank" in dashboard
    assert "Lumen Goods" not in dashboard


def test_it_shows_human_agents_conversations_only(
    sign_in_as: Callable[..., FlaskClient], services: Services
) -> None:
    conversation, _ = services.conversations.start(services.brands.get("rho-bank"), {}, "web")
    agent = sign_in_as("human_agent", "rho-bank")
    dashboard = text(agent.get("/admin/"))
    assert "Recent conversations" in dashboard
    assert conversation.public_id in dashboard
    assert 'id="brands-heading"' not in dashboard
    assert agent.get(f"/admin/conversations/{conversation.public_id}").status_code == 200
    assert agent.get("/admin/brands/rho-bank").status_code == 403


def test_it_shows_a_transcript_with_each_turns_trace(
    admin_client: FlaskClient, services: Services
) -> None:
    brand = services.brands.get("lumen-goods")
    conversation, _ = services.conversations.start(brand, {"name": "Sam"}, "web")
    question = "How do I sign up for your newsletter?"
    turn = list(services.conversations.reply(brand, conversation.public_id, question))
    assert isinstance(turn[-1], TurnResult)
    reply = turn[-1].message

    response = admin_client.get(f"/admin/conversations/{conversation.public_id}")
    assert response.status_code == 200
    page = text(response)
    assert "Hi, I'm Juniper from Lumen Goods!" in page
    assert "How do I sign up for your newsletter?" in page
    assert message_html(reply.text, "agent") in page
    assert "name: Sam" in page
    assert f"Trace: <code>{reply.model}</code>" in page
    for stage in ("prepare", "ttft", "llm", "total"):
        assert f">{stage}</th>" in page
    assert "rule intent" in page
    assert admin_client.get("/admin/conversations/conv_missing").status_code == 404


def test_it_creates_users_who_can_sign_in(
    admin_client: FlaskClient, client: FlaskClient, services: Services, submit: Submit
) -> None:
    response = submit(admin_client, "/admin/users", "/admin/users", {
        "username": "casey", "password": PASSWORD, "role": "viewer", "brand": "rho-bank",
    })
    assert response.status_code == 302
    assert "casey" in text(admin_client.get("/admin/users"))
    user = services.users.authenticate("casey", PASSWORD)
    assert user is not None and user.role == "viewer"
    assert user.brand_id == services.brands.get("rho-bank").id

    response = submit(admin_client, "/admin/users", "/admin/users", {
        "username": "short", "password": "short", "role": "viewer", "brand": "",
    })
    assert response.status_code == 400
    assert "at least 10 characters" in text(response)


def test_it_lists_changes_in_the_audit_log(admin_client: FlaskClient, submit: Submit) -> None:
    submit(admin_client, BRAND_PAGE, f"{BRAND_PAGE}/persona", PERSONA)
    page = text(admin_client.get("/admin/audit"))
    assert "brand.update" in page
    assert "admin.login" in page
    assert "demo-seed" in page


def test_it_signs_out(admin_client: FlaskClient, submit: Submit) -> None:
    response = submit(admin_client, "/admin/", "/admin/logout", {})
    assert response.status_code == 302
    assert admin_client.get("/admin/").status_code == 302
