"""`appliance demo seed`: idempotent. Brands are created once; credentials are kept in
DATA_DIR/demo-credentials.json (mode 0600) so repeated runs print the same working login and
keys instead of minting new ones. A key revoked by hand is replaced on the next run."""

from __future__ import annotations

import json
import secrets
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.brands import IdentityPolicy, Persona, Policy, WorkflowMessages, policy_of
from appliance.config import Settings
from appliance.db.models import AdminUser
from appliance.errors import AuthenticationError
from appliance.knowledge.ingest import Progress
from appliance.private_files import write_private
from appliance.services import Services

ACTOR = "demo-seed"
ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class DemoBrand:
    slug: str
    name: str
    persona: Persona
    policy: Policy
    #: Where the brand's own systems listen (its tools' base URL), if it has a demo backend.
    systems_url: Callable[[Settings], str] | None = None


DEMO_BRANDS = (
    DemoBrand(
        slug="lumen-goods",
        name="Lumen Goods",
        persona=Persona(
            agent_name="Juniper",
            tone="Warm, upbeat and concise, like a helpful shop assistant. Plain words, short "
                 "sentences, first names, at most one exclamation mark.",
            greeting="Hi, I'm Juniper from Lumen Goods! How can I help with your order today?",
            sign_off="Happy to help. Have a bright day!",
            never_say=("As an AI", "I'm just a bot", "Unfortunately, there is nothing I can do"),
        ),
        policy=Policy(),
        systems_url=lambda settings: settings.demo_retail_url,
    ),
    DemoBrand(
        slug="rho-bank",
        name="Rho-Bank",
        persona=Persona(
            agent_name="Ada",
            tone="Calm, precise and reassuring. Courteous and a little formal. Never guesses "
                 "about money: states what is known and what the next step is.",
            greeting="Good day, I'm Ada, Rho-Bank's virtual assistant. How may I help you?",
            sign_off="Thank you for banking with Rho-Bank.",
            never_say=("guaranteed", "risk-free", "No worries"),
        ),
        policy=Policy(
            unavailable_message="I'm sorry, I can't answer right now. For anything urgent, such "
                                "as a lost card, please call the number on the back of your card.",
            # τ²'s bank policy: 2 of 4 details on file before any account data or change.
            identity=IdentityPolicy(read="knowledge", write="knowledge"),
            # A bank keeps chat transcripts a year, then the nightly purge deletes them.
            retention_days=365,
            workflow_messages=WorkflowMessages(
                third_party="I'm sorry, I can only help account holders with their own "
                            "accounts. The account holder can chat with us here themselves, or "
                            "call the number on the back of their card.",
                other_customer="I can only help one customer per conversation, and I've "
                               "already verified you, so I can't look into another account.",
                identity_locked="For your security I can't take more attempts to verify you "
                                "here. A colleague will verify you another way."),
        ),
        systems_url=lambda settings: settings.demo_bank_url,
    ),
)


def credentials_path(services: Services) -> Path:
    return services.settings.data_dir / "demo-credentials.json"


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(path: Path, data: dict[str, Any]) -> None:
    write_private(path, json.dumps(data, indent=2))


KNOWLEDGE_DIR = Path(__file__).resolve().parent / "knowledge"
#: Each demo brand's tools and workflows (`<slug>/tools.yaml`, `<slug>/workflows/*.yaml`).
WORKFLOWS_DIR = Path(__file__).resolve().parent / "workflows"


def seed_workflows(services: Services) -> dict[str, list[str]]:
    """Import the demo brands' tools, workflows and eval suites, publishing the workflows that
    changed, and point each brand's tools at its own systems (`appliance demo-backend
    retail|bank`). Returns {slug: names of the workflows published}."""
    published = {}
    for demo in DEMO_BRANDS:
        directory = WORKFLOWS_DIR / demo.slug
        if directory.is_dir():
            published[demo.slug] = services.workflows.import_dir(
                services.brands.get(demo.slug), directory, ACTOR)
            services.suites.import_dir(services.brands.get(demo.slug), directory / "evals",
                                       ACTOR)
        if demo.systems_url is None:
            continue
        url = demo.systems_url(services.settings)
        policy = policy_of(services.brands.get(demo.slug))
        if policy.tools_base_url != url:
            services.brands.update(demo.slug, actor=ACTOR, policy=policy.model_copy(
                update={"tools_base_url": url}))
    return published


def seed_knowledge(services: Services, progress: Progress | None = None,
                   only: str | None = None) -> dict[str, int]:
    """Copy each demo brand's knowledge into its import folder (`<import dir>/<slug>/demo/`,
    refreshed on every run, as a brand's export job would), register its sources there once
    with the owner, schedule and visibility `sources.toml` gives, and ingest and publish each
    brand that has no published version yet (`only`: just that brand). A source registered
    by an earlier seed straight from the package is moved to the copy. Returns {slug:
    published version number}."""
    catalogue = tomllib.loads((KNOWLEDGE_DIR / "sources.toml").read_text())
    published: dict[str, int] = {}
    for demo in DEMO_BRANDS:
        if only is not None and demo.slug != only:
            continue
        brand = services.brands.get(demo.slug)
        copy = services.knowledge.import_folders(brand)[0] / "demo"
        shutil.copytree(KNOWLEDGE_DIR / demo.slug, copy, dirs_exist_ok=True)
        known = {(s.kind, s.location): s for s in services.knowledge.sources(brand)}
        for entry in catalogue.get(demo.slug, []):
            packaged = KNOWLEDGE_DIR / entry["path"]
            location = str(copy / packaged.relative_to(KNOWLEDGE_DIR / demo.slug))
            fields = {"location": location, "owner": entry["owner"],
                      "visibility": entry["visibility"]}
            source = known.get((entry["kind"], location)) or known.get(
                (entry["kind"], str(packaged.resolve())))
            if source is None:
                services.knowledge.add_source(brand, {
                    **fields, "kind": entry["kind"], "schedule": entry.get("schedule"),
                    "options": entry.get("options", {}),
                }, actor=ACTOR)
            else:
                services.knowledge.update_source(brand, source.id, fields, actor=ACTOR)
        version = services.knowledge.published(brand)
        if version is None:
            version = services.knowledge.ingest(brand, publish=True, progress=progress,
                                                actor=ACTOR).version
        if version is not None:
            published[demo.slug] = version.number
    return published


def seed(services: Services, *, knowledge: bool = True,
         progress: Progress | None = None) -> dict[str, Any]:
    """Create what is missing; return {"admin": {username, password}, "keys": {slug: key},
    "knowledge": {slug: published version}}. `knowledge=False` skips the (slower) knowledge
    ingestion."""
    path = credentials_path(services)
    saved = _load(path)
    keys: dict[str, str] = dict(saved.get("keys", {}))
    existing = {brand.slug for brand in services.brands.all()}
    for demo in DEMO_BRANDS:
        if demo.slug not in existing:
            policy = demo.policy
            if demo.systems_url is not None:
                policy = policy.model_copy(
                    update={"tools_base_url": demo.systems_url(services.settings)})
            services.brands.create(demo.slug, demo.name, demo.persona, policy, actor=ACTOR)
        if not _key_works(services, demo.slug, keys.get(demo.slug)):
            _, keys[demo.slug] = services.brands.create_key(demo.slug, "demo", actor=ACTOR)

    admin = dict(saved.get("admin", {}))
    user = AdminUser.get_or_none(AdminUser.username == ADMIN_USERNAME)
    if user is None:
        admin = {"username": ADMIN_USERNAME, "password": secrets.token_urlsafe(12)}
        services.users.create(ADMIN_USERNAME, admin["password"], "it_admin", actor=ACTOR)
    elif not admin.get("password") or services.users.authenticate(
        ADMIN_USERNAME, admin["password"]
    ) is None:
        admin = {"username": ADMIN_USERNAME, "password": secrets.token_urlsafe(12)}
        services.users.set_password(ADMIN_USERNAME, admin["password"], actor=ACTOR)

    result: dict[str, Any] = {"admin": admin, "keys": keys}
    _save(path, result)
    seed_workflows(services)
    if knowledge:
        result["knowledge"] = seed_knowledge(services, progress)
    return result


def _key_works(services: Services, slug: str, key: str | None) -> bool:
    if not key:
        return False
    try:
        return services.brands.authenticate(key).slug == slug
    except AuthenticationError:
        return False
