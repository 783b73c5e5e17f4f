"""The composition root: `build_services(settings)` builds every backend once.

The web app, the scheduler and the CLI all call it; nothing else constructs backends. Models
and database connections open lazily, so building services before gunicorn forks is cheap and
each worker opens its own after fork.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import peewee

from appliance.admin_sessions import SessionPolicy, SessionStore
from appliance.agent.conversations import AgentLimits, ConversationService
from appliance.billing.disputes import DisputeService
from appliance.billing.invoices import InvoiceService
from appliance.billing.ledger import Ledger
from appliance.brands import BrandService
from appliance.config import Settings, ensure_secret_key
from appliance.db import open_database
from appliance.db.models import Brand
from appliance.evals.history import EvalHistory
from appliance.evals.suites import SuiteService
from appliance.handoff.service import HandoffService
from appliance.handoff.webhooks import WebhookService
from appliance.idempotency import IdempotencyKeys
from appliance.identity import IdentityService
from appliance.knowledge.service import KnowledgeService
from appliance.llm.breaker import BreakerPolicy
from appliance.llm.factory import build_model
from appliance.llm.manifest import Manifest, load_manifest
from appliance.llm.queue import ModelQueue
from appliance.llm.router import ModelRouter
from appliance.login_throttle import LoginThrottleService, ThrottlePolicy
from appliance.outcomes import OutcomeService
from appliance.privacy.retention import PrivacyService
from appliance.privacy.subjects import SubjectKeys
from appliance.privacy.vault import Vaults
from appliance.ratelimit import RateLimiter
from appliance.readiness import WarmUp
from appliance.reporting import ReportService
from appliance.signals import build_embedder
from appliance.signals.base import Embedder
from appliance.signals.service import SignalService
from appliance.users import UserService
from appliance.workflows.service import WorkflowService

#: What the models are asked to do; each task has its own ordered route in the manifest's profile.
#: reply: everyday replies (small model first); reply_large: complex turns (large model first,
#: then small); extraction: fields out of text; summary: handoff summaries.
TASKS = ("reply", "reply_large", "extraction", "summary")
#: simulate: the customer in an eval played by a model (appliance/evals/simulator.py).
OPTIONAL_TASKS = ("simulate",)


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: peewee.Database
    manifest: Manifest
    router: ModelRouter
    embedder: Embedder
    knowledge: KnowledgeService
    signals: SignalService
    brands: BrandService
    users: UserService
    sessions: SessionStore
    login_throttle: LoginThrottleService
    workflows: WorkflowService
    conversations: ConversationService
    webhooks: WebhookService
    handoffs: HandoffService
    identity: IdentityService
    outcomes: OutcomeService
    ledger: Ledger
    privacy: PrivacyService
    invoices: InvoiceService
    disputes: DisputeService
    reports: ReportService
    suites: SuiteService
    evals: EvalHistory
    warm: WarmUp
    idempotency: IdempotencyKeys
    rate_limits: RateLimiter

    def warm_up(self) -> None:
        """Load and run once, for every brand, what its turns use (see appliance.readiness);
        blocks until done."""
        opened = self.db.connect(reuse_if_open=True)  # connections are per thread
        try:
            for brand in self.brands.all():
                self.conversations.warm_up(brand)
        finally:
            if opened:
                self.db.close()

    def start_warm_up(self) -> None:
        """Warm up on a thread of its own; turns and /readyz wait for it (a web worker)."""
        self.warm.start(self.warm_up)

    def close(self) -> None:
        self.router.close()
        self.embedder.close()
        if not self.db.is_closed():
            self.db.close()


def build_router(settings: Settings, manifest: Manifest) -> ModelRouter:
    """The profile's route for every task (`reply_models` overrides the reply task's), with a
    backend object per routed model, in route order. Nothing loads until first use."""
    routes = {task: manifest.route(settings.model_profile, task) for task in TASKS}
    # Optional tasks run only where the profile routes them (the GPU profile's simulated
    # customers for evals; appliance/evals/simulator.py).
    routes.update({task: ids for task, ids in manifest.profiles.get(
        settings.model_profile, {}).items() if task in OPTIONAL_TASKS})
    if settings.reply_models:
        routes["reply"] = manifest.with_replicas("setting reply_models", settings.reply_models)
    wanted = dict.fromkeys(model_id for ids in routes.values() for model_id in ids)
    models = {
        model_id: build_model(manifest.models[model_id], settings)
        for model_id in wanted if model_id in manifest.models
    }
    breaker = BreakerPolicy(settings.llm_breaker_failures, settings.llm_breaker_cooldown_s)
    queues = {model_id: ModelQueue(
        model_id, 1 if model.spec.backend == "llamacpp" else settings.llm_http_slots,
        settings.llm_queue_depth) for model_id, model in models.items()}
    return ModelRouter(models, routes, breaker=breaker, queues=queues)


def _write_tools(workflows: WorkflowService, brand: Brand) -> set[str]:
    """The names of the brand's tools that write to its systems."""
    toolset = workflows.toolset(brand)
    return {tool.name for tool in toolset.tools if tool.writes} if toolset else set()


def build_services(settings: Settings) -> Services:
    settings = ensure_secret_key(settings)
    db = open_database(settings.database_url)
    manifest = load_manifest(settings.model_store)
    router = build_router(settings, manifest)
    embedder = build_embedder(manifest, settings)
    knowledge = KnowledgeService(db, embedder, settings.data_dir,
                                 [Path(d) for d in settings.knowledge_import_dirs])
    signals = SignalService(manifest, embedder)
    workflows = WorkflowService(db, embedder)
    webhooks = WebhookService(db, timeout_s=settings.webhook_timeout_s,
                              max_attempts=settings.webhook_max_attempts,
                              console_url=settings.webhook_console_url)
    vaults = Vaults(settings.secret_key)
    handoffs = HandoffService(db, webhooks, vaults)
    ledger = Ledger(db)
    invoices = InvoiceService(db, ledger)
    outcomes = OutcomeService(db, ledger, lambda brand: _write_tools(workflows, brand))
    warm = WarmUp()
    subjects = SubjectKeys(settings.secret_key)
    limits = AgentLimits(
        max_message_chars=settings.max_message_chars,
        max_reply_tokens=settings.llm_max_reply_tokens,
        timeout_s=settings.llm_timeout_s,
    )
    return Services(
        settings=settings,
        db=db,
        manifest=manifest,
        router=router,
        embedder=embedder,
        knowledge=knowledge,
        signals=signals,
        brands=BrandService(db),
        users=UserService(db),
        sessions=SessionStore(SessionPolicy.from_settings(settings)),
        login_throttle=LoginThrottleService(db, ThrottlePolicy.from_settings(settings)),
        workflows=workflows,
        conversations=ConversationService(db, router, limits, knowledge, signals, workflows,
                                          handoffs, outcomes, warm, subjects, vaults),
        privacy=PrivacyService(db, subjects),
        webhooks=webhooks,
        handoffs=handoffs,
        identity=IdentityService(db),
        outcomes=outcomes,
        ledger=ledger,
        invoices=invoices,
        disputes=DisputeService(db, ledger),
        reports=ReportService(ledger, invoices, embedder),
        suites=SuiteService(db),
        evals=EvalHistory(db, manifest, router, knowledge, webhooks),
        warm=warm,
        idempotency=IdempotencyKeys(db),
        rate_limits=RateLimiter(db),
    )
