"""The peewee models: the current schema. Migrations in `migrations/` create and change it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import peewee

from appliance.db import database_proxy


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class JSONField(peewee.TextField):
    """JSON stored as text: portable across SQLite and PostgreSQL."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, sort_keys=True)

    def python_value(self, value: Any) -> Any:
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    id = peewee.AutoField()

    class Meta:
        database = database_proxy


class Brand(BaseModel):
    slug = peewee.CharField(max_length=64, unique=True)
    name = peewee.CharField(max_length=200)
    persona = JSONField()
    policy = JSONField()
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "brand"


class ApiKey(BaseModel):
    brand = peewee.ForeignKeyField(Brand, backref="api_keys", on_delete="CASCADE")
    brand_id: int
    name = peewee.CharField(max_length=200)
    prefix = peewee.CharField(max_length=16)
    key_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    last_used_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "api_key"


class AdminUser(BaseModel):
    username = peewee.CharField(max_length=150, unique=True)
    password_hash = peewee.CharField(max_length=255)
    role = peewee.CharField(max_length=32)
    brand = peewee.ForeignKeyField(Brand, null=True, backref="users", on_delete="CASCADE")
    brand_id: int | None
    created_at = peewee.DateTimeField(default=utcnow)
    last_login_at = peewee.DateTimeField(null=True)
    disabled = peewee.BooleanField(default=False)

    class Meta:
        table_name = "admin_user"


class AdminSession(BaseModel):
    """A signed-in admin session (appliance/admin_sessions.py). The cookie holds the token;
    only its sha256 is stored, so a database dump signs no one in."""

    token_hash = peewee.CharField(max_length=64, unique=True)
    user = peewee.ForeignKeyField(AdminUser, backref="sessions", on_delete="CASCADE")
    user_id: int
    created_at = peewee.DateTimeField(default=utcnow)
    seen_at = peewee.DateTimeField(default=utcnow)
    remote_addr = peewee.CharField(max_length=64, null=True)

    class Meta:
        table_name = "admin_session"


class LoginThrottle(BaseModel):
    """Failed sign-ins of one username or one client address (appliance/login_throttle.py)."""

    #: "user:NAME" or "addr:ADDRESS".
    key = peewee.CharField(max_length=220, unique=True)
    failures = peewee.IntegerField(default=0)
    last_failure_at = peewee.DateTimeField(default=utcnow)
    locked_until = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "login_throttle"


class AuditLog(BaseModel):
    at = peewee.DateTimeField(default=utcnow, index=True)
    actor = peewee.CharField(max_length=150)
    action = peewee.CharField(max_length=100)
    target = peewee.CharField(max_length=200)
    detail = JSONField(null=True)
    remote_addr = peewee.CharField(max_length=64, null=True)

    class Meta:
        table_name = "audit_log"


class Conversation(BaseModel):
    public_id = peewee.CharField(max_length=40, unique=True)
    brand = peewee.ForeignKeyField(Brand, backref="conversations", on_delete="CASCADE")
    brand_id: int
    customer = JSONField()
    channel = peewee.CharField(max_length=32)
    status = peewee.CharField(max_length=32, index=True)
    status_reason = peewee.CharField(max_length=200, null=True)
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    updated_at = peewee.DateTimeField(default=utcnow)
    closed_at = peewee.DateTimeField(null=True)
    #: The workflow engine's state (appliance/workflows/engine.py): JSON, personal data as
    #: placeholders.
    state = JSONField(null=True)
    #: The conversation's token vault, sealed (appliance/privacy/vault.py).
    vault = peewee.TextField(null=True)

    class Meta:
        table_name = "conversation"
        # The reports count a brand's conversations over a date range.
        indexes = ((("brand", "created_at"), False),)


class Message(BaseModel):
    public_id = peewee.CharField(max_length=40, unique=True)
    conversation = peewee.ForeignKeyField(Conversation, backref="messages", on_delete="CASCADE")
    conversation_id: int
    role = peewee.CharField(max_length=16)
    text = peewee.TextField()
    model = peewee.CharField(max_length=100, null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    #: Knowledge the reply cites: [{article, title, location, source_ids}].
    citations = JSONField(null=True)
    #: For a human agent's message: their username.
    author = peewee.CharField(max_length=150, null=True)

    class Meta:
        table_name = "message"


class TurnTrace(BaseModel):
    conversation = peewee.ForeignKeyField(Conversation, backref="traces", on_delete="CASCADE")
    customer_message = peewee.ForeignKeyField(Message, on_delete="CASCADE", backref="+")
    agent_message = peewee.ForeignKeyField(Message, on_delete="CASCADE", backref="+")
    conversation_id: int
    customer_message_id: int
    agent_message_id: int
    model = peewee.CharField(max_length=100)
    fallback = peewee.BooleanField(default=False)
    prompt_tokens = peewee.IntegerField()
    completion_tokens = peewee.IntegerField()
    latency_ms = JSONField()
    decision = JSONField()
    created_at = peewee.DateTimeField(default=utcnow)
    #: Retrieval for this turn: knowledge version, chunk ids and scores, answer mode.
    knowledge = JSONField(null=True)
    #: What the classifiers read from the customer's message, with their model versions.
    signals = JSONField(null=True)
    #: The supervisor's action (decision["action"]), for the reports' indexed lookups.
    action = peewee.CharField(max_length=32, null=True, index=True)

    class Meta:
        table_name = "turn_trace"


class JobRun(BaseModel):
    job_id = peewee.CharField(max_length=100, index=True)
    started_at = peewee.DateTimeField(default=utcnow)
    finished_at = peewee.DateTimeField(null=True)
    status = peewee.CharField(max_length=16)
    detail = JSONField(null=True)
    #: The node that ran it (`node_name`).
    node = peewee.CharField(max_length=255, null=True)

    class Meta:
        table_name = "job_run"


class SchedulerNode(BaseModel):
    """A node's `appliance scheduler` process (appliance/jobs/leader.py): one leads and runs
    the jobs, the others stand by; each refreshes `last_seen` while it runs."""

    name = peewee.CharField(max_length=255, unique=True)
    pid = peewee.IntegerField()
    #: leader | standby | stopped
    role = peewee.CharField(max_length=16)
    started_at = peewee.DateTimeField(default=utcnow)
    leader_since = peewee.DateTimeField(null=True)
    last_seen = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "scheduler_node"


class KnowledgeSource(BaseModel):
    brand = peewee.ForeignKeyField(Brand, backref="knowledge_sources", on_delete="CASCADE")
    brand_id: int
    kind = peewee.CharField(max_length=32)
    location = peewee.TextField()
    owner = peewee.CharField(max_length=254)
    schedule = peewee.CharField(max_length=32, null=True)
    options = JSONField()
    created_at = peewee.DateTimeField(default=utcnow)
    last_run_at = peewee.DateTimeField(null=True)
    last_status = peewee.CharField(max_length=16, null=True)
    #: customer (may be quoted and cited to customers) | internal (grounds answers only).
    visibility = peewee.CharField(max_length=16, default="internal")

    class Meta:
        table_name = "knowledge_source"


class IngestRun(BaseModel):
    brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
    brand_id: int
    source = peewee.ForeignKeyField(KnowledgeSource, null=True, on_delete="SET NULL")
    source_id: int | None
    started_at = peewee.DateTimeField(default=utcnow)
    finished_at = peewee.DateTimeField(null=True)
    #: running | ok | partial (some documents failed) | failed | interrupted
    status = peewee.CharField(max_length=16)
    stats = JSONField(null=True)
    errors = JSONField(null=True)

    class Meta:
        table_name = "ingest_run"


class Document(BaseModel):
    """The latest good copy of one document of a source (what the next draft is built from)."""

    source = peewee.ForeignKeyField(KnowledgeSource, backref="documents", on_delete="CASCADE")
    source_id: int
    external_id = peewee.CharField(max_length=500)
    title = peewee.TextField()
    location = peewee.TextField()
    updated_at = peewee.DateTimeField(null=True)
    author = peewee.CharField(max_length=200, null=True)
    content_hash = peewee.CharField(max_length=64)
    #: [[heading, text], ...]
    sections = JSONField()
    seen_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "document"
        indexes = ((("source", "external_id"), True),)


class Article(BaseModel):
    """A canonical article: immutable; a change makes a new row with the same key."""

    brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
    brand_id: int
    key = peewee.CharField(max_length=600, index=True)
    content_hash = peewee.CharField(max_length=64)
    title = peewee.TextField()
    text = peewee.TextField()
    #: The embedder (id and input length) whose vectors its chunks hold.
    embedder = peewee.CharField(max_length=100)
    updated_at = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "article"
        indexes = ((("brand", "key", "content_hash", "embedder"), True),)


class Chunk(BaseModel):
    article = peewee.ForeignKeyField(Article, backref="chunks", on_delete="CASCADE")
    article_id: int
    ordinal = peewee.IntegerField()
    heading = peewee.TextField()
    text = peewee.TextField()
    #: float32 little-endian, L2-normalised, from the version's embedder.
    embedding = peewee.BlobField()

    class Meta:
        table_name = "chunk"


class KnowledgeVersion(BaseModel):
    brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
    brand_id: int
    number = peewee.IntegerField()
    #: draft | published | archived; one published version per brand at most.
    status = peewee.CharField(max_length=16, index=True)
    run = peewee.ForeignKeyField(IngestRun, null=True, on_delete="SET NULL")
    run_id: int | None
    index_kind = peewee.CharField(max_length=16)
    index_path = peewee.TextField()
    embedder = peewee.CharField(max_length=100)
    stats = JSONField()
    #: Against the version published when this one was made: {added, changed, removed} keys.
    diff = JSONField()
    created_at = peewee.DateTimeField(default=utcnow)
    published_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "knowledge_version"
        indexes = ((("brand", "number"), True),)


class VersionArticle(BaseModel):
    version = peewee.ForeignKeyField(KnowledgeVersion, on_delete="CASCADE")
    version_id: int
    article = peewee.ForeignKeyField(Article, on_delete="CASCADE")
    article_id: int
    #: The documents merged into the article as of this version (what its answers cite):
    #: [{source_id, kind, external_id, title, location, updated_at, owner}], primary first.
    #: Kept per version, not on the immutable article: a duplicate found later must not
    #: change what a published version cites.
    provenance = JSONField()

    class Meta:
        table_name = "version_article"
        indexes = ((("version", "article"), True),)


class Finding(BaseModel):
    """Something for a source owner to review in a version: a contradiction or a stale page."""

    version = peewee.ForeignKeyField(KnowledgeVersion, backref="findings", on_delete="CASCADE")
    version_id: int
    kind = peewee.CharField(max_length=16)
    article = peewee.ForeignKeyField(Article, on_delete="CASCADE")
    article_id: int
    other_article = peewee.ForeignKeyField(Article, null=True, on_delete="CASCADE", backref="+")
    other_article_id: int | None
    owner = peewee.CharField(max_length=254)
    detail = JSONField()
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "finding"


class Workflow(BaseModel):
    """A brand's workflow; its definitions are the versions."""

    brand = peewee.ForeignKeyField(Brand, backref="workflows", on_delete="CASCADE")
    brand_id: int
    name = peewee.CharField(max_length=64)
    #: draft (never published) | published | disabled
    status = peewee.CharField(max_length=16)
    #: The version number the agent runs (None until first published).
    published_version = peewee.IntegerField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "workflow"
        indexes = ((("brand", "name"), True),)


class WorkflowVersion(BaseModel):
    workflow = peewee.ForeignKeyField(Workflow, backref="versions", on_delete="CASCADE")
    workflow_id: int
    number = peewee.IntegerField()
    #: draft (editable) | published (the one running) | retired
    status = peewee.CharField(max_length=16)
    #: The YAML as the author wrote it, and its validated form (canonical JSON).
    source = peewee.TextField()
    definition = JSONField()
    note = peewee.CharField(max_length=500, null=True)
    created_by = peewee.CharField(max_length=150)
    created_at = peewee.DateTimeField(default=utcnow)
    published_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "workflow_version"
        indexes = ((("workflow", "number"), True),)


class Toolset(BaseModel):
    """The brand's HTTP tools (one YAML document)."""

    brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE", unique=True)
    brand_id: int
    source = peewee.TextField()
    definition = JSONField()
    updated_by = peewee.CharField(max_length=150)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "toolset"


class ToolCall(BaseModel):
    """One call into a brand's systems, arguments redacted per the tool's spec."""

    brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
    brand_id: int
    conversation = peewee.ForeignKeyField(Conversation, null=True, on_delete="CASCADE",
                                          backref="tool_calls")
    conversation_id: int | None
    workflow = peewee.CharField(max_length=64, null=True)
    tool = peewee.CharField(max_length=64)
    method = peewee.CharField(max_length=8)
    path = peewee.TextField()
    arguments = JSONField()
    #: ok | rejected | failed
    status = peewee.CharField(max_length=16)
    http_status = peewee.IntegerField(null=True)
    code = peewee.CharField(max_length=64)
    latency_ms = peewee.FloatField()
    attempts = peewee.IntegerField()
    idempotency_key = peewee.CharField(max_length=200, null=True)
    at = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "tool_call"


class Outcome(BaseModel):
    """What a conversation achieved, with its evidence (appliance/outcomes.py): one per
    conversation, attributed when it ends, settled once its window has passed."""

    conversation = peewee.ForeignKeyField(Conversation, backref="outcomes", unique=True,
                                          on_delete="CASCADE")
    conversation_id: int
    brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
    brand_id: int
    #: resolved | saved | upsell | escalated | unresolved | abandoned
    type = peewee.CharField(max_length=16)
    #: For a resolution: confirmed | workflow | assumed.
    how = peewee.CharField(max_length=16, null=True)
    #: provisional | settled | reversed
    state = peewee.CharField(max_length=16, index=True)
    #: Message, workflow-run, tool-call and feedback references, and the rule that decided.
    evidence = JSONField()
    #: sha256 of the canonical transcript when the outcome was attributed.
    transcript_sha256 = peewee.CharField(max_length=64)
    attributed_at = peewee.DateTimeField(default=utcnow, index=True)
    #: When it may settle: the end of the reopen window (or of the assume window).
    settles_at = peewee.DateTimeField(index=True)
    settled_at = peewee.DateTimeField(null=True)
    reversed_at = peewee.DateTimeField(null=True)
    reversal_reason = peewee.CharField(max_length=200, null=True)
    # What the reports group and sum in SQL (appliance/reporting.py), copied out of the
    # evidence when attributed.
    #: The rule that decided it (the evidence's `rule`).
    rule = peewee.CharField(max_length=32, null=True)
    #: The workflow the conversation ran last, if any.
    workflow = peewee.CharField(max_length=64, null=True)
    #: How far that workflow got: 0 none, 1 started, 2 identity, 3 confirmed, 4 written.
    stage = peewee.SmallIntegerField(default=0)
    #: An upsell's value (its workflow's `upsell_value`), in cents; 0 otherwise.
    value_cents = peewee.BigIntegerField(default=0)

    class Meta:
        table_name = "outcome"


class Feedback(BaseModel):
    """The customer's word on a conversation: did it solve it, and a 1-5 rating. The latest
    counts; earlier ones are kept."""

    conversation = peewee.ForeignKeyField(Conversation, backref="feedback", on_delete="CASCADE")
    conversation_id: int
    resolved = peewee.BooleanField(null=True)
    csat = peewee.SmallIntegerField(null=True)
    comment = peewee.TextField(null=True)
    #: The agent message it answers (the last one when it was given).
    message = peewee.ForeignKeyField(Message, null=True, on_delete="SET NULL", backref="+")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "feedback"


class IdentitySecret(BaseModel):
    """A brand's secret for signed customer identities (appliance/identity.py): its site signs
    the customer's id with it, and a conversation opened with a good signature starts at the
    `asserted` assurance level. Several may be live at once, so that a rotation has overlap."""

    brand = peewee.ForeignKeyField(Brand, backref="identity_secrets", on_delete="CASCADE")
    brand_id: int
    #: Stored as is, like webhook secrets: verifying an HMAC needs the secret itself.
    secret = peewee.CharField(max_length=100)
    created_by = peewee.CharField(max_length=150)
    created_at = peewee.DateTimeField(default=utcnow)
    revoked_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "identity_secret"


class WebhookEndpoint(BaseModel):
    """Where a brand's helpdesk receives signed webhooks (appliance/handoff/webhooks.py)."""

    brand = peewee.ForeignKeyField(Brand, backref="webhook_endpoints", on_delete="CASCADE")
    brand_id: int
    url = peewee.TextField()
    #: Stored as is: every delivery is signed with it (the data dir and database are private).
    secret = peewee.CharField(max_length=100)
    #: The events it subscribes to, e.g. ["handoff.created"].
    events = JSONField()
    active = peewee.BooleanField(default=True)
    created_by = peewee.CharField(max_length=150)
    created_at = peewee.DateTimeField(default=utcnow)
    disabled_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "webhook_endpoint"


class WebhookDelivery(BaseModel):
    """One event for one endpoint: the outbox row, written in the transaction that caused it."""

    public_id = peewee.CharField(max_length=40, unique=True)
    endpoint = peewee.ForeignKeyField(WebhookEndpoint, backref="deliveries", on_delete="CASCADE")
    endpoint_id: int
    brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
    brand_id: int
    event_id = peewee.CharField(max_length=40, index=True)
    event = peewee.CharField(max_length=64)
    #: The JSON body exactly as sent (and signed) on every attempt.
    body = peewee.TextField()
    #: pending | delivered | failed
    status = peewee.CharField(max_length=16)
    attempts = peewee.IntegerField(default=0)
    #: When it is due; a sender claims it by moving this forward (see WebhookService).
    next_attempt_at = peewee.DateTimeField(default=utcnow)
    last_status = peewee.IntegerField(null=True)
    last_error = peewee.CharField(max_length=200, null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    delivered_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "webhook_delivery"
        indexes = ((("status", "next_attempt_at"), False),)


class Handoff(BaseModel):
    """A conversation handed to a human: why, the packet they work from, and how it ended."""

    public_id = peewee.CharField(max_length=40, unique=True)
    brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
    brand_id: int
    conversation = peewee.ForeignKeyField(Conversation, backref="handoffs", on_delete="CASCADE")
    conversation_id: int
    #: The rule that fired (human_request, frustration_high, tool_failure, ...).
    reason = peewee.CharField(max_length=64, index=True)
    workflow = peewee.CharField(max_length=64, null=True)
    #: waiting | assigned | returned (handed back to the agent) | resolved
    status = peewee.CharField(max_length=16, index=True)
    packet = JSONField()
    summary = peewee.TextField()
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    assigned_to = peewee.ForeignKeyField(AdminUser, null=True, on_delete="SET NULL")
    assigned_to_id: int | None
    assigned_at = peewee.DateTimeField(null=True)
    returned_at = peewee.DateTimeField(null=True)
    resolved_at = peewee.DateTimeField(null=True)
    outcome = peewee.CharField(max_length=32, null=True)
    #: agent_should_have | correct, set on the review page.
    review = peewee.CharField(max_length=32, null=True)
    review_note = peewee.TextField(null=True)
    reviewed_by = peewee.CharField(max_length=150, null=True)
    reviewed_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "handoff"


class BillingContract(BaseModel):
    """One version of a brand's contract (appliance/billing/contracts.py): the terms as
    validated, with money as decimal strings, in force from `effective_from`."""

    brand = peewee.ForeignKeyField(Brand, backref="contracts", on_delete="CASCADE")
    brand_id: int
    version = peewee.IntegerField()
    effective_from = peewee.DateField()
    terms = JSONField()
    created_by = peewee.CharField(max_length=150)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "billing_contract"
        indexes = ((("brand", "version"), True),)


class LedgerEntry(BaseModel):
    """One line of a brand's append-only, hash-chained ledger (appliance/billing/ledger.py).
    The database refuses UPDATE and DELETE on it (triggers from migration m0009), and a brand
    with entries cannot be deleted."""

    brand = peewee.ForeignKeyField(Brand, on_delete="RESTRICT")
    brand_id: int
    #: 1, 2, 3, ... per brand: the position in the brand's chain.
    seq = peewee.IntegerField()
    #: provisional | settled | reversal | dispute | credit | invoice_close
    type = peewee.CharField(max_length=16)
    #: The conversation's public id, when the entry is about one.
    conversation = peewee.CharField(max_length=40, null=True, index=True)
    #: A decimal string (appliance/billing/chain.py amount_text), never a float.
    amount = peewee.CharField(max_length=40)
    currency = peewee.CharField(max_length=3)
    #: Canonical JSON text, exactly as hashed.
    body = peewee.TextField()
    evidence_sha256 = peewee.CharField(max_length=64, null=True)
    prev_hash = peewee.CharField(max_length=64)
    hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "ledger_entry"
        indexes = ((("brand", "seq"), True), (("brand", "created_at"), False))


class EvalSuiteRecord(BaseModel):
    """One of a brand's eval suites: a YAML document (appliance/evals/cases.py) named by the
    workflow it tests or by its own name."""

    brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
    brand_id: int
    name = peewee.CharField(max_length=100)
    source = peewee.TextField()
    updated_by = peewee.CharField(max_length=150)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "eval_suite"
        indexes = ((("brand", "name"), True),)


class EvalRun(BaseModel):
    """One run of a brand's eval suites (appliance/evals/history.py): what was judged, how
    it did, and the regressions a nightly run found against the one before."""

    brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
    brand_id: int
    #: nightly | cli | gate | admin (asked for on the brand's evals page)
    trigger = peewee.CharField(max_length=16)
    #: queued (asked for, waiting for the scheduler) | running | done | failed (not run:
    #: the test system could not be reached; never counted as a fail)
    status = peewee.CharField(max_length=16)
    #: The one suite run, if not all of them.
    suite = peewee.CharField(max_length=100, null=True)
    trials = peewee.IntegerField()
    seed = peewee.IntegerField()
    requested_by = peewee.CharField(max_length=150)
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    started_at = peewee.DateTimeField(null=True)
    finished_at = peewee.DateTimeField(null=True)
    #: {"pass_hat_k": {"1": ...}, "by_suite": {suite: {"1": ...}}, "quarantined": {...}}
    scores = JSONField(null=True)
    #: Each case: suite, name, passes, trials, quarantine and its failures (trimmed).
    cases = JSONField(null=True)
    #: The live versions judged: workflows, knowledge, models, classifiers, thresholds.
    versions = JSONField(null=True)
    #: Suites whose pass^1 fell beyond the tolerance since the previous nightly run.
    regressions = JSONField(null=True)
    error = peewee.TextField(null=True)
    node = peewee.CharField(max_length=255, null=True)

    class Meta:
        table_name = "eval_run"
        indexes = ((("brand", "trigger", "created_at"), False),)


class IdempotencyKey(BaseModel):
    """A client's Idempotency-Key for one turn (appliance/idempotency.py): who runs the turn
    while it runs, then the reply it gave, for 24 hours."""

    brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
    brand_id: int
    key = peewee.CharField(max_length=255)
    #: sha256 of what the request asked (the conversation and the body).
    fingerprint = peewee.CharField(max_length=64)
    #: "host:pid" of the worker running the turn; None once the reply is stored.
    owner = peewee.CharField(max_length=255, null=True)
    claimed_at = peewee.DateTimeField(default=utcnow)
    #: The stored reply's HTTP status and JSON body; None while the turn runs.
    status = peewee.IntegerField(null=True)
    response = JSONField(null=True)
    created_at = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "idempotency_key"
        indexes = ((("brand", "key"), True),)


class RateBucket(BaseModel):
    """One token bucket of the rate limits (appliance/ratelimit.py), shared by every worker
    and node on the database."""

    #: What is limited: "key:<id>", "token:<conversation>", "addr:<address>".
    name = peewee.CharField(max_length=255, unique=True)
    tokens = peewee.DoubleField()
    updated_at = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "rate_bucket"


class ConversationSubject(BaseModel):
    """Who a conversation is about, by keyed hash (appliance/privacy/subjects.py): one row per
    identifier the conversation carries (the API's customer id or email, the customer a
    workflow verified). Erasure, export and legal holds find a customer's conversations here
    without the identifier being stored."""

    conversation = peewee.ForeignKeyField(Conversation, backref="subjects", on_delete="CASCADE")
    conversation_id: int
    brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
    brand_id: int
    key = peewee.CharField(max_length=64)

    class Meta:
        table_name = "conversation_subject"
        indexes = ((("conversation", "key"), True), (("brand", "key"), False))


class LegalHold(BaseModel):
    """A legal hold: every conversation of a customer (by subject key) or one conversation is
    kept through every retention purge and erasure until the hold is released."""

    brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
    brand_id: int
    #: The customer's subject key, for a hold on all their conversations.
    subject_key = peewee.CharField(max_length=64, null=True, index=True)
    #: A conversation's public id, for a hold on that one.
    conversation = peewee.CharField(max_length=40, null=True, index=True)
    reason = peewee.CharField(max_length=500)
    created_by = peewee.CharField(max_length=150)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "legal_hold"


class PurgedConversation(BaseModel):
    """What is left of a conversation deleted by retention or erasure: its id, when and why,
    and the sha256 of its transcript as it was, so that the ledger can say which evidence was
    purged by policy rather than tampered with."""

    brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
    brand_id: int
    public_id = peewee.CharField(max_length=40, unique=True)
    #: retention | erasure
    reason = peewee.CharField(max_length=16)
    transcript_sha256 = peewee.CharField(max_length=64)
    purged_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "purged_conversation"


ALL_MODELS: tuple[type[BaseModel], ...] = (
    Brand, ApiKey, AdminUser, AdminSession, LoginThrottle, AuditLog,
    Conversation, Message, TurnTrace, JobRun,
    KnowledgeSource, IngestRun, Document, Article, Chunk, KnowledgeVersion, VersionArticle,
    Finding, Workflow, WorkflowVersion, Toolset, ToolCall, Handoff,
    WebhookEndpoint, WebhookDelivery, IdentitySecret, Outcome, Feedback,
    BillingContract, LedgerEntry, EvalSuiteRecord, EvalRun, IdempotencyKey, RateBucket,
    SchedulerNode, ConversationSubject, LegalHold, PurgedConversation,
)
