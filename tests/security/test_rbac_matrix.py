"""Who may call what: every rule of the app's URL map, for every principal (anonymous, each
role, unscoped and limited to one brand, a brand's API key) against its own brand and another
brand, with every method, checked against the explicit policy table below.

A route missing from POLICY fails the test: a new route has to say who may call it.

Answers are classed as: `login` (a redirect to the sign-in page, or 401), `forbidden` (403),
`hidden` (404: another brand's resources look like missing ones) and `allowed` (anything else:
the view ran, even if it then refused the empty form with a 400 or a 409). The test client
runs without CSRF (tested in tests/web) so that a form's answer is about who sent it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from server_support import make_settings
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from appliance.agent.conversations import PENDING_HUMAN
from appliance.db.migrate import migrate
from appliance.db.models import Conversation, Workflow
from appliance.demo.seed import seed
from appliance.services import Services, build_services
from appliance.web import create_app
from appliance.web.admin.auth import SESSION_TOKEN

OWN, OTHER = "lumen-goods", "rho-bank"
PASSWORD = "correct horse battery"

# --- The policy ---------------------------------------------------------------------------
# Each kind names who may call a route; `expect` turns a kind into the answer a principal
# gets for a resource of its own brand or of another.
PUBLIC = "public"            # anyone, nothing to sign in for
SIGNED_IN = "signed_in"      # any signed-in admin user
READER = "reader"            # it_admin, cx_editor, viewer; a brand-limited one sees its brand
EDITOR = "editor"            # it_admin, cx_editor; limited likewise
IT_ADMIN = "it_admin"        # it_admin; limited likewise
DISPUTER = "disputer"        # it_admin, cx_editor (billing disputes); limited likewise
WORKER = "worker"            # it_admin, cx_editor, human_agent (handoff work); limited likewise
SEEN = "seen"                # any signed-in user, limited to their brand's conversations
WIDE = "wide"                # an it_admin limited to no brand (users, audit log)
VERSIONS = "versions"        # an it_admin (else 401 in JSON); the metrics token too
API = "api"                  # a brand's API key; another brand's resources are 404
API_ANY = "api_any"          # a brand's API key; the route names no other brand's resource
METRICS = "metrics"          # the metrics token or an address in metrics_allow: none here

ROLES_OF = {
    READER: {"it_admin", "cx_editor", "viewer"},
    EDITOR: {"it_admin", "cx_editor"},
    IT_ADMIN: {"it_admin"},
    DISPUTER: {"it_admin", "cx_editor"},
    WORKER: {"it_admin", "cx_editor", "human_agent"},
    SEEN: {"it_admin", "cx_editor", "viewer", "human_agent"},
    SIGNED_IN: {"it_admin", "cx_editor", "viewer", "human_agent"},
}

#: (endpoint, method) -> kind. Knowledge versions and sources, and disputes, do not exist in
#: this fixture: for them `allowed` is the view's own 404 (MISSING below).
POLICY: dict[tuple[str, str], str] = {
    ("static", "GET"): PUBLIC,
    ("chat.static", "GET"): PUBLIC,
    ("chat.page", "GET"): PUBLIC,
    ("meta.healthz", "GET"): PUBLIC,
    ("meta.readyz", "GET"): PUBLIC,
    ("meta.versions", "GET"): VERSIONS,
    # metrics_allow is emptied below: only the token reads them (tests/test_metrics.py).
    ("metrics.scrape", "GET"): METRICS,
    ("api.openapi", "GET"): PUBLIC,
    ("api.create_widget_conversation", "POST"): PUBLIC,
    ("api.create_conversation", "POST"): API_ANY,
    ("api.get_conversation", "GET"): API,
    ("api.close_conversation", "POST"): API,
    ("api.conversation_events", "GET"): API,
    ("api.post_feedback", "POST"): API,
    ("api.post_message", "POST"): API,
    ("api.escalation_metrics", "GET"): API_ANY,
    ("api.metrics_summary", "GET"): API_ANY,
    ("api.metrics_unanswered", "GET"): API_ANY,
    ("api.list_outcomes", "GET"): API_ANY,
    ("admin.login", "GET"): PUBLIC,
    ("admin.login", "POST"): PUBLIC,
    ("admin.logout", "POST"): SIGNED_IN,
    ("admin.dashboard", "GET"): SIGNED_IN,
    ("admin.handoff_queue", "GET"): SIGNED_IN,
    ("admin.conversation", "GET"): SEEN,
    ("admin.handoff_console", "GET"): SEEN,
    ("admin.handoff_take", "POST"): WORKER,
    ("admin.handoff_reply", "POST"): WORKER,
    ("admin.handoff_hand_back", "POST"): WORKER,
    ("admin.handoff_resolve", "POST"): WORKER,
    ("admin.conversations", "GET"): READER,
    ("admin.reports", "GET"): READER,
    ("admin.reports_csv", "GET"): READER,
    ("admin.classifiers", "GET"): READER,
    ("admin.users", "GET"): WIDE,
    ("admin.users", "POST"): WIDE,
    ("admin.user_page", "GET"): WIDE,
    ("admin.user_brand", "POST"): WIDE,
    ("admin.user_password", "POST"): WIDE,
    ("admin.user_state", "POST"): WIDE,
    ("admin.lift_lockout", "POST"): WIDE,
    ("admin.audit_log", "GET"): WIDE,
    ("admin.brand", "GET"): READER,
    ("admin.save_persona", "POST"): EDITOR,
    ("admin.create_key", "POST"): IT_ADMIN,
    ("admin.revoke_key", "POST"): IT_ADMIN,
    ("admin.billing", "GET"): READER,
    ("admin.invoice", "GET"): READER,
    ("admin.invoice_csv", "GET"): READER,
    ("admin.invoice_pdf", "GET"): READER,
    ("admin.set_brand_contract", "POST"): IT_ADMIN,
    ("admin.open_dispute", "POST"): DISPUTER,
    ("admin.decide_dispute", "POST"): IT_ADMIN,
    ("admin.privacy", "GET"): IT_ADMIN,
    ("admin.privacy_hold", "POST"): IT_ADMIN,
    ("admin.privacy_release", "POST"): IT_ADMIN,
    ("admin.evals", "GET"): READER,
    ("admin.run_evals", "POST"): EDITOR,
    ("admin.handoff_review", "GET"): READER,
    ("admin.handoff_eval_case", "GET"): READER,
    ("admin.handoff_label", "POST"): EDITOR,
    ("admin.handoff_promote", "POST"): EDITOR,
    ("admin.knowledge", "GET"): READER,
    ("admin.knowledge_add_source", "POST"): EDITOR,
    ("admin.knowledge_edit_source", "POST"): EDITOR,
    ("admin.knowledge_ingest", "POST"): EDITOR,
    ("admin.knowledge_version", "GET"): READER,
    ("admin.knowledge_publish", "POST"): EDITOR,
    ("admin.knowledge_rollback", "POST"): EDITOR,
    ("admin.knowledge_review", "GET"): READER,
    ("admin.knowledge_search", "GET"): READER,
    ("admin.workflows", "GET"): READER,
    ("admin.workflow", "GET"): READER,
    ("admin.workflow_new", "GET"): EDITOR,
    ("admin.workflow_create", "POST"): EDITOR,
    ("admin.workflow_save", "POST"): EDITOR,
    ("admin.workflow_diff", "GET"): READER,
    ("admin.workflow_enabled", "POST"): EDITOR,
    ("admin.workflow_publish", "POST"): EDITOR,
    ("admin.workflow_rollback", "POST"): EDITOR,
    ("admin.workflow_check_evals", "POST"): EDITOR,
    ("admin.workflow_sandbox", "POST"): EDITOR,
    ("admin.workflow_sandbox_reset", "POST"): EDITOR,
    ("admin.workflow_tools", "GET"): READER,
    ("admin.workflow_tools_save", "POST"): EDITOR,
}
#: A body the API accepts, so that its answer is about the caller, not the body.
BODIES = {"api.post_message": {"text": "Hello"}}
MISSING = {"admin.knowledge_version", "admin.knowledge_publish", "admin.knowledge_edit_source",
           "admin.decide_dispute"}


@dataclass(frozen=True)
class Principal:
    name: str
    role: str | None = None     # None: anonymous or an API key
    brand: str | None = None    # the one brand a user (or the key) is limited to
    api_key: bool = False

    def may_see(self, target: str) -> bool:
        return self.brand is None or self.brand == target


PRINCIPALS = (
    Principal("anonymous"),
    Principal("api-key", brand=OWN, api_key=True),
    Principal("it_admin", "it_admin"),
    Principal("it_admin@lumen", "it_admin", OWN),
    Principal("cx_editor@lumen", "cx_editor", OWN),
    Principal("viewer", "viewer"),
    Principal("viewer@lumen", "viewer", OWN),
    Principal("human_agent@lumen", "human_agent", OWN),
)


def expect(kind: str, who: Principal, target: str) -> str:
    """The answer `who` must get from a route of `kind` about a resource of `target`."""
    if kind == PUBLIC:
        return "allowed"
    if kind == METRICS:
        return "forbidden"
    if kind in (API, API_ANY):
        if not who.api_key:
            return "login"
        return "allowed" if kind == API_ANY or who.may_see(target) else "hidden"
    if who.role is None:
        return "login"
    if kind == VERSIONS:
        return "allowed" if who.role == "it_admin" else "login"
    if kind == WIDE:
        return "allowed" if who.role == "it_admin" and who.brand is None else "forbidden"
    if who.role not in ROLES_OF[kind]:
        return "forbidden"
    return "allowed" if who.may_see(target) else "hidden"


# --- The fixture: two brands with a conversation, a handoff, a key and a workflow each ----


@dataclass(frozen=True)
class World:
    app: Flask
    services: Services
    values: dict[str, dict[str, str]]  # target brand -> URL variable -> value
    api_key: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One SQLite database for the whole matrix: the routes are the same on PostgreSQL, and
    the matrix is about the web layer."""
    tmp_path: Path = tmp_path_factory.mktemp("rbac")
    services = build_services(make_settings(tmp_path, metrics_allow=""))
    services.db.connect(reuse_if_open=True)
    migrate(services.db)
    seed(services, knowledge=False)
    values = {slug: _resources(services, slug) for slug in (OWN, OTHER)}
    _, api_key = services.brands.create_key(OWN, "rbac", actor="test")
    services.users.create("target-viewer", PASSWORD, "viewer", actor="test")
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False}, services=services)
    yield World(app, services, values, api_key)
    services.close()


def _resources(services: Services, slug: str) -> dict[str, str]:
    brand = services.brands.get(slug)
    conversation, _ = services.conversations.start(brand, {}, "web")
    key, _ = services.brands.create_key(slug, "spare", actor="test")
    workflow = Workflow.select().where(Workflow.brand == brand.id).order_by(Workflow.id).first()
    assert workflow is not None, f"the demo seeds workflows for {slug}"
    return {
        "slug": slug, "conversation_id": conversation.public_id,
        "conversation": conversation.public_id, "key_id": str(key.id), "name": workflow.name,
        "number": "1", "source_id": "1", "seq": "1", "period": "2026-11",
        "username": "target-viewer",
    }


def _handoff(services: Services, slug: str) -> str:
    """A new handoff of `slug` waiting for a human: each principal works its own, since
    taking one decides who may reply to it."""
    conversation, _ = services.conversations.start(services.brands.get(slug), {}, "web")
    with services.db.atomic():
        Conversation.update(status=PENDING_HUMAN).where(
            Conversation.id == conversation.id).execute()
        handoff = services.handoffs.open(Conversation.get_by_id(conversation.id), "human_request")
    return handoff.public_id


def _url(rule: Rule, values: dict[str, str]) -> str:
    """The rule's path with each variable filled for the target brand."""
    def fill(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[-1]
        if name == "filename":
            return "widget.js" if rule.endpoint == "chat.static" else "app.css"
        if name == "public_id":
            return values["handoff"] if "handoff" in rule.rule else values["conversation"]
        return values[name]

    return re.sub(r"<([^>]+)>", fill, rule.rule)


def _client(world: World, who: Principal) -> FlaskClient:
    client = world.app.test_client()
    if who.role is not None:
        username = f"rbac-{who.name}"
        brand = world.services.brands.get(who.brand) if who.brand else None
        user = world.services.users.create(username, PASSWORD, who.role, brand, actor="test")
        with client.session_transaction() as session:
            session[SESSION_TOKEN] = world.services.sessions.start(user, "127.0.0.1")
    return client


def _answer(path: str, response: TestResponse) -> str:
    """How the app answered: pages send anonymous visitors to the sign-in page, the API and
    the JSON endpoints answer 401 (the sign-in page's own 401 is a wrong password)."""
    status = response.status_code
    location = response.headers.get("Location", "")
    if (status == 401 and not path.startswith("/admin")) or (
            status == 302 and location.startswith("/admin/login")):
        return "login"
    if status >= 500:
        return "a server error"
    return {403: "forbidden", 404: "hidden"}.get(status, "allowed")


def _cells(app: Flask) -> list[tuple[Rule, str]]:
    cells = [(rule, method) for rule in app.url_map.iter_rules()
             for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]
    # Signing out ends the principal's session: it goes last.
    return sorted(cells, key=lambda cell: cell[0].endpoint == "admin.logout")


def test_every_route_has_a_policy(world: World) -> None:
    missing = [f"{method} {rule.rule} ({rule.endpoint})" for rule, method in _cells(world.app)
               if (rule.endpoint, method) not in POLICY]
    stale = set(POLICY) - {(rule.endpoint, method) for rule, method in _cells(world.app)}

    assert missing == [], "routes without an entry in POLICY"
    assert stale == set(), "entries in POLICY for routes that no longer exist"


@pytest.mark.parametrize("who", PRINCIPALS, ids=[p.name for p in PRINCIPALS])
def test_every_route_answers_each_principal_as_the_policy_says(
    world: World, who: Principal
) -> None:
    client = _client(world, who)
    values = {slug: {**world.values[slug], "handoff": _handoff(world.services, slug)}
              for slug in (OWN, OTHER)}
    headers = {"Authorization": f"Bearer {world.api_key}"} if who.api_key else {}
    wrong: list[str] = []
    checked = 0
    for rule, method in _cells(world.app):
        kind = POLICY.get((rule.endpoint, method))
        if kind is None:
            continue  # test_every_route_has_a_policy names it
        for target in (OWN, OTHER):
            expected = expect(kind, who, target)
            url = _url(rule, values[target])
            response = client.open(url, method=method, headers=headers,
                                   json=BODIES.get(rule.endpoint, {}) if url.startswith("/v1")
                                   and method == "POST" else None)
            got = _answer(url, response)
            if rule.endpoint == "admin.logout" and got == "login" and who.role is not None:
                # Its success is a redirect to the sign-in page too: the session must be over.
                got = "allowed" if _answer("/admin/", client.get("/admin/")) == "login" else (
                    "still signed in")
            if got == "hidden" and expected == "allowed" and rule.endpoint in MISSING:
                got = "allowed"
            checked += 1
            if got != expected:
                wrong.append(f"{method} {url}: expected {expected}, got {got} "
                             f"({response.status_code})")
            if "<" not in rule.rule:
                break  # a route naming no brand's resource answers the same for both

    assert wrong == [], "\n".join(wrong)
    assert checked > len(POLICY)


def test_it_hides_a_brand_limited_users_other_brand_in_the_expectations() -> None:
    """The table itself: a limited editor is told 404 for the other brand, 403 for a role
    the route is not for, and an unscoped viewer may read both brands."""
    editor = PRINCIPALS[4]

    assert expect(EDITOR, editor, OTHER) == "hidden"
    assert expect(IT_ADMIN, editor, OWN) == "forbidden"
    assert expect(READER, PRINCIPALS[5], OTHER) == "allowed"
    assert expect(WIDE, PRINCIPALS[3], OWN) == "forbidden"
