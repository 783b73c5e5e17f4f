"""Brands, their agent persona and policy, and their API keys."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import zoneinfo
from typing import Any, Literal

import peewee
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from appliance import audit
from appliance.db.models import ApiKey, Brand, utcnow
from appliance.errors import AuthenticationError, ConfigError, Conflict, InvalidRequest, NotFound
from appliance.privacy.detect import Detector
from appliance.workflows.schema import IdentityNeeds, regular_expressions

KEY_PREFIX = "sbk_"
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


class Persona(BaseModel):
    """How the brand's agent speaks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent_name: str = Field(min_length=1, max_length=60)
    tone: str = Field(min_length=1, max_length=2000, description="Tone and voice guidelines.")
    greeting: str = Field(min_length=1, max_length=500)
    sign_off: str = Field(default="", max_length=200)
    never_say: tuple[str, ...] = Field(default=(), description="Phrases the agent never uses.")
    language: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")

    @field_validator("never_say")
    @classmethod
    def _no_blank_phrases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(phrase.strip() for phrase in value if phrase.strip())


class Supervision(BaseModel):
    """A brand's thresholds for the supervisor's rules (part of the brand's policy)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    human_request_threshold: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="Human-request probability at or above which the agent hands off.")
    human_request_answering_threshold: float = Field(
        default=0.95, ge=0.0, le=1.0,
        description="The human-request threshold for a message that answers the workflow's "
                    "question (an address or a product name is not a request for a person).")
    frustration_threshold: float = Field(
        default=0.75, ge=0.0, le=1.0,
        description="Frustration (0 calm .. 1 furious) at or above which the agent hands off.")
    frustration_answering_threshold: float = Field(
        default=0.95, ge=0.0, le=1.0,
        description="The frustration threshold for a message that answers the workflow's "
                    "question (curt answers read as negative; rising frustration is not "
                    "checked on them).")
    frustration_rising_turns: int = Field(
        default=3, ge=2, le=10,
        description="Hand off when frustration rose on each of this many customer turns...")
    frustration_rising_min: float = Field(
        default=0.4, ge=0.0, le=1.0, description="...and has reached at least this level.")
    repeated_question_turns: int = Field(
        default=3, ge=0, le=10,
        description="Hand off when the customer asks the same question (same intent, same best "
                    "passage) this many times in a row, the agent having answered it each "
                    "time; 0 never.")
    intent_min_confidence: float = Field(
        default=0.45, ge=0.0, le=1.0,
        description="Below this, the intent counts as not understood.")
    scope_override_confidence: float = Field(
        default=0.6, ge=0.0, le=1.0,
        description="An intent at least this confident counts as understood even when the "
                    "intent model's scope check rejects the message.")
    large_model_intents: tuple[str, ...] = Field(
        default=(), description="Intents whose turns go to the large model.")
    large_model_context_chars: int = Field(
        default=6000, ge=0,
        description="Conversations longer than this (characters) go to the large model; "
                    "0 never.")
    human_on_request: bool = Field(
        default=True,
        description="The customer may have a human whenever they ask. When false, the agent "
                    "first offers to help itself, and hands off if they still want a person.")
    escalate_on_degraded: bool = Field(
        default=False,
        description="Hand off when a fallback model answered a consequential turn.")

    @field_validator("repeated_question_turns")
    @classmethod
    def _asked_again(cls, value: int) -> int:
        if value == 1:
            raise ValueError("0 (never) or at least 2: the first answer is not a repeat")
        return value


class WorkflowMessages(BaseModel):
    """What the workflow engine says on its own, outside the workflows' templates (part of the
    brand's policy): stopping, declining, failures, and the question after a workflow ends."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stopped: str = Field(
        default="No problem, I've left everything as it was. Is there anything else I can "
                "help with?",
        min_length=1, max_length=500,
        description="The customer dropped the request ('never mind').")
    declined: str = Field(
        default="Okay, I haven't changed anything. Is there anything else I can help with?",
        min_length=1, max_length=500, description="The customer said no to a confirmation.")
    tool_failed: str = Field(
        default="I'm sorry, I can't reach our systems right now, so I can't finish this "
                "myself.",
        min_length=1, max_length=500,
        description="The brand's systems did not answer; the conversation is handed off.")
    write_rejected: str = Field(
        default="I couldn't do that: {error}.", min_length=1, max_length=500,
        description="The brand's system refused a change and the write step has no message of "
                    "its own; {error} is the system's reason.")
    not_owner: str = Field(
        default="I can only help with the account you verified in this conversation, so I "
                "can't act on that one.",
        min_length=1, max_length=500,
        description="A tool returned data that belongs to another customer.")
    other_customer: str = Field(
        default="I can only help one customer per conversation, and I've already verified "
                "your account, so I can't look into another one.",
        min_length=1, max_length=500,
        description="A verified customer named another account's details.")
    third_party: str = Field(
        default="I can only help the account holder with their own account. They can contact "
                "us themselves, and we'll be glad to help them.",
        min_length=1, max_length=500,
        description="The customer asks about an account that is someone else's ('my wife's "
                    "account'); says how the holder can reach the brand.")
    identity_locked: str = Field(
        default="For your security I can't take more attempts to verify you in this "
                "conversation.",
        min_length=1, max_length=500,
        description="Said once a customer has failed verification as many times as the "
                    "identity policy allows (never which detail was wrong).")
    anything_else: str = Field(
        default="Is there anything else I can help with?", min_length=1, max_length=500,
        description="Follows a finished workflow.")
    how_can_i_help: str = Field(
        default="How can I help you today?", min_length=1, max_length=500,
        description="Follows the identity workflow when it ran on its own (the customer said "
                    "who they are, nothing more).")
    rephrased: tuple[str, ...] = Field(
        default=("Sorry, I didn't catch that.", "Let me put it another way."), min_length=1,
        description="Said before a question that would otherwise repeat the last one word for "
                    "word: the first the second time, the next ones after.")
    no_progress: str = Field(
        default="I'm sorry, I'm not getting this right.", min_length=1, max_length=500,
        description="The customer is stuck at the same confirmation; the conversation is "
                    "handed off.")
    resume_lead: str = Field(
        default="Now, back to your request:", min_length=1, max_length=200,
        description="Leads back into a workflow's question after answering a question asked "
                    "in the middle of it.")


#: What says an account is someone else's ("my wife's account", "my friend's order", "on
#: behalf of my father"): English phrases, case-insensitive regular expressions.
THIRD_PARTY_PHRASES = (
    r"\bmy (?:wife|husband|partner|spouse|fianc[eé]e?|friend|mother|mom|mum|father|dad|son|"
    r"daughter|brother|sister|grand(?:mother|father|ma|pa)|aunt|uncle|cousin|boss|colleague|"
    r"neighbou?r|roommate|client|girlfriend|boyfriend)(?:['\u2019]s|s')",
    r"\bon behalf of\b",
    r"\bsomeone else'?s\b",
)


class IdentityPolicy(IdentityNeeds):
    """The assurance levels the brand's workflows need unless one declares its own, and what
    says a request is about someone else's account (refused at any level)."""

    third_party_phrases: tuple[str, ...] = Field(default=THIRD_PARTY_PHRASES, max_length=50)
    max_failed_checks: int = Field(
        default=3, ge=1, le=10,
        description="Failed verifications (details that match no customer, a wrong or expired "
                    "code) a conversation may have; at this many the customer is locked out of "
                    "verifying in it.")
    when_locked: Literal["hand_off", "end"] = Field(
        default="hand_off",
        description="What a lock-out does: hand the customer to a human (reason "
                    "`identity_locked`), or end the request and say `identity_locked` so the "
                    "customer verifies another way.")

    @field_validator("third_party_phrases")
    @classmethod
    def _compiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return regular_expressions(value)


class EvalPolicy(BaseModel):
    """How the brand's evals judge a change before customers see it (the release gate) and
    what they run against."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    floor: float = Field(
        default=0.9, ge=0, le=1,
        description="A draft whose pass^1 on the affected suites is below this is refused.")
    tolerance: float = Field(
        default=0.05, ge=0, le=1,
        description="A draft may pass fewer cases than what is live by at most this (pass^1); "
                    "a nightly run that drops more than this raises an alert.")
    trials: int = Field(
        default=1, ge=1, le=10,
        description="Trials per case when the gate and the nightly run judge (pass^1..k).")
    test_base_url: str | None = Field(
        default=None, pattern=r"^https?://",
        description="The brand's test systems, which the evals reset and write to; never "
                    "production. Unset: the tools' base URL, which must then be a test or "
                    "demo system.")


class BusinessHours(BaseModel):
    """When the brand's human agents are at work (local time of `timezone`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = Field(default="UTC", description="IANA time zone, e.g. America/New_York.")
    days: tuple[int, ...] = Field(default=(0, 1, 2, 3, 4), min_length=1,
                                  description="Open days, 0 = Monday .. 6 = Sunday.")
    open: dt.time = Field(default=dt.time(9, 0), description="Opening time, e.g. 09:00.")
    close: dt.time = Field(default=dt.time(17, 0),
                           description="Closing time; before `open` means past midnight.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(day not in range(7) for day in value):
            raise ValueError("days are 0 (Monday) to 6 (Sunday)")
        return value

    def is_open(self, at: dt.datetime) -> bool:
        """Whether humans are at work at `at` (naive UTC, as the database stores time)."""
        local = at.replace(tzinfo=dt.UTC).astimezone(zoneinfo.ZoneInfo(self.timezone))
        now = local.time()
        if self.open <= self.close:
            return local.weekday() in self.days and self.open <= now < self.close
        # Past midnight: the evening belongs to today, the small hours to yesterday.
        if now >= self.open:
            return local.weekday() in self.days
        return now < self.close and (local.weekday() - 1) % 7 in self.days

    def describe(self) -> str:
        names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        days = ", ".join(names[day] for day in sorted(self.days))
        return (f"{days}, {self.open.strftime('%H:%M')}-{self.close.strftime('%H:%M')} "
                f"{self.timezone}")


class RateLimits(BaseModel):
    """The brand's own request rates per minute; None keeps the appliance's setting
    (rate_limit_*_per_minute), 0 is no limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_per_minute: int | None = Field(default=None, ge=0, description="Per API key.")
    token_per_minute: int | None = Field(default=None, ge=0, description="Per widget token.")
    address_per_minute: int | None = Field(default=None, ge=0,
                                           description="Per client address.")


class Policy(BaseModel):
    """Brand-level policy settings. Later subsystems add fields with safe defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tools_base_url: str | None = Field(
        default=None, pattern=r"^https?://",
        description="Where the brand's tools are served, overriding the toolset's base_url.")
    widget_enabled: bool = Field(default=True, description="Serve the public chat page/widget.")
    unavailable_message: str = Field(
        default="I'm sorry, I can't answer right now. Please try again in a few minutes.",
        max_length=500,
        description="Sent when no model can answer.",
    )
    no_answer_message: str = Field(
        default="I'm sorry, I don't have information about that. Would you like me to connect "
                "you with a colleague who can help?",
        max_length=500,
        description="Sent when the brand's knowledge has nothing relevant to the question.",
    )
    knowledge_min_score: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="Lowest retrieval score (cosine) that counts as relevant knowledge.",
    )
    knowledge_min_relevance: float = Field(
        default=0.45, ge=0.0, le=1.0,
        description="Lowest cosine between the question and a sentence or list item of a "
                    "retrieved passage for it to be put in the prompt or quoted; with none "
                    "this relevant the agent says it does not know.",
    )
    knowledge_stale_days: int = Field(
        default=365, ge=1, description="A source document older than this is flagged stale."
    )
    handoff_message: str = Field(
        default="I'm bringing in a colleague who can help with this. They will see our "
                "conversation, so you won't need to repeat yourself.",
        max_length=500, description="Sent when the agent hands the conversation to a human.")
    clarify_message: str = Field(
        default="I'm sorry, I didn't quite understand. Could you tell me in a few words what "
                "you need help with, or would you like me to connect you with a colleague?",
        max_length=500, description="Sent when the agent did not understand twice in a row.")
    out_of_scope_message: str = Field(
        default="I'm sorry, that's not something I can help with here. Would you like me to "
                "connect you with a colleague?",
        max_length=500, description="Sent when a request is outside what the agent handles.")
    workflow_offer_message: str = Field(
        default="Would you like me to do that for you now ({workflow})? Just say yes.",
        max_length=500,
        description="Follows an answer from the knowledge to a question about something a "
                    "workflow can do ('what is your return policy?'); {workflow} is the "
                    "workflow's title. A yes starts the workflow.",
    )
    self_help_message: str = Field(
        default="I can sort that out for you right away myself. Tell me what you need, or say "
                "yes if you'd still rather talk to a colleague.",
        max_length=500,
        description="Sent for a request for a person when the brand lets the agent try first "
                    "(supervision.human_on_request false).")
    business_hours: BusinessHours | None = Field(
        default=None, description="When human agents are at work; unset: always.")
    after_hours_message: str = Field(
        default="Our team is away right now (we're here {hours}). I've passed your message on "
                "as a ticket, and a colleague will get back to you as soon as we're back.",
        max_length=500,
        description="Sent instead of the handoff message outside business hours; {hours} "
                    "names them. The handoff becomes a ticket for the helpdesk.")
    awaiting_human_message: str = Field(
        default="Thanks, I've passed that on. A colleague will reply here shortly.",
        max_length=500,
        description="Sent while the conversation waits for a human to take it over.")
    identity: IdentityPolicy = Field(
        default_factory=IdentityPolicy,
        description="Assurance levels workflows need by default (contact: email, or name + "
                    "zip; knowledge: 2 of date of birth, email, phone, address; "
                    "one_time_code; asserted: signed by the brand's site), for reads and "
                    "writes.")
    workflow_messages: WorkflowMessages = Field(
        default_factory=WorkflowMessages,
        description="What the workflow engine says outside the workflows' templates.")
    supervision: Supervision = Field(
        default_factory=Supervision, description="Thresholds of the supervisor's rules.")
    evals: EvalPolicy = Field(
        default_factory=EvalPolicy,
        description="The release gate's floor and tolerance, trials, and the test systems "
                    "evals run against.")
    knowledge_auto_publish: bool = Field(
        default=False,
        description="Scheduled re-ingestion publishes its draft when it found no new "
                    "contradictions.",
    )
    retention_days: int | None = Field(
        default=None, ge=1,
        description="Days a conversation is kept after its last message (its transcript, "
                    "traces, handoffs, tool calls and outcome); the nightly purge deletes "
                    "older ones except those under legal hold. Unset: kept until erased. Keep "
                    "it longer than the billing contract's settle window.")
    pii_patterns: dict[str, str] = Field(
        default_factory=dict,
        description="The brand's own kinds of personal data, name -> regular expression "
                    "(e.g. MEMBER_ID: 'M-\\d{8}'), stored and shown to models as [NAME_1] "
                    "like the built-in kinds (docs/privacy.md).")
    pii_shown_to_customer: tuple[str, ...] = Field(
        default=("EMAIL", "PHONE", "DOB"),
        description="Kinds of personal data shown back to the customer in full in a reply; "
                    "the others (cards, SSNs, IBANs, account numbers, the brand's own) only "
                    "as their last four characters.")
    rate_limits: RateLimits = Field(
        default_factory=RateLimits,
        description="Requests per minute per API key, widget token and client address; "
                    "unset ones follow the appliance's settings.")

    @field_validator("pii_patterns")
    @classmethod
    def _pii_patterns_compile(cls, value: dict[str, str]) -> dict[str, str]:
        try:
            Detector(value)
        except ConfigError as exc:
            raise ValueError(exc.message) from None
        return value

    @field_validator("pii_shown_to_customer")
    @classmethod
    def _known_kinds(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if bad := [kind for kind in value if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,31}", kind)]:
            raise ValueError(f"not a kind of personal data: {', '.join(bad)}")
        return value


def persona_of(brand: Brand) -> Persona:
    return Persona.model_validate(brand.persona)


def policy_of(brand: Brand) -> Policy:
    return Policy.model_validate(brand.policy)


def validated(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """Validate `data` as `model`, mapping pydantic errors to InvalidRequest naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidRequest(f"{param or 'body'}: {first['msg']}", param=param) from exc


def hash_key(token: str) -> str:
    # API keys are 256-bit random tokens, so a plain SHA-256 is a sound verifier (no salt or
    # slow hash needed) and allows an indexed lookup.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class BrandService:
    """Create, read and change brands and their keys. Writes are audited."""

    def __init__(self, db: peewee.Database) -> None:
        self._db = db

    def all(self) -> list[Brand]:
        return list(Brand.select().order_by(Brand.name))

    def get(self, slug: str) -> Brand:
        brand = Brand.get_or_none(Brand.slug == slug)
        if brand is None:
            raise NotFound(f"no brand {slug!r}", code="brand_not_found")
        return brand

    def create(
        self, slug: str, name: str, persona: Persona, policy: Policy | None = None,
        *, actor: str,
    ) -> Brand:
        if not SLUG_RE.match(slug):
            raise InvalidRequest("slug: lowercase letters, digits and dashes only", param="slug")
        if not name.strip():
            raise InvalidRequest("name: must not be empty", param="name")
        with self._db.atomic():
            if Brand.get_or_none(Brand.slug == slug) is not None:
                raise Conflict(f"brand {slug!r} already exists", code="brand_exists")
            brand = Brand.create(
                slug=slug, name=name.strip(), persona=persona.model_dump(mode="json"),
                policy=(policy or Policy()).model_dump(mode="json"),
            )
            audit.record(actor, "brand.create", slug, {"name": name})
        return brand

    def update(
        self, slug: str, *, persona: Persona | None = None, policy: Policy | None = None,
        name: str | None = None, actor: str, remote_addr: str | None = None,
    ) -> Brand:
        with self._db.atomic():
            brand = self.get(slug)
            changed: dict[str, Any] = {}
            if persona is not None:
                brand.persona = changed["persona"] = persona.model_dump(mode="json")
            if policy is not None:
                brand.policy = changed["policy"] = policy.model_dump(mode="json")
            if name is not None and name.strip():
                brand.name = changed["name"] = name.strip()
            brand.updated_at = utcnow()
            brand.save()
            audit.record(actor, "brand.update", slug, changed, remote_addr)
        return brand

    def create_key(
        self, slug: str, name: str = "default", *, actor: str, remote_addr: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Create an API key; the plaintext is returned once and never stored."""
        token = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._db.atomic():
            brand = self.get(slug)
            key = ApiKey.create(
                brand=brand, name=name, prefix=token[: len(KEY_PREFIX) + 6],
                key_hash=hash_key(token),
            )
            audit.record(actor, "api_key.create", slug, {"key_id": key.id, "name": name},
                         remote_addr)
        return key, token

    def keys(self, slug: str) -> list[ApiKey]:
        brand = self.get(slug)
        return list(ApiKey.select().where(ApiKey.brand == brand).order_by(ApiKey.id))

    def revoke_key(
        self, slug: str, key_id: int, *, actor: str, remote_addr: str | None = None
    ) -> ApiKey:
        with self._db.atomic():
            brand = self.get(slug)
            key = ApiKey.get_or_none((ApiKey.id == key_id) & (ApiKey.brand == brand))
            if key is None:
                raise NotFound(f"no key {key_id} for brand {slug!r}", code="key_not_found")
            if key.revoked_at is None:
                key.revoked_at = utcnow()
                key.save()
                audit.record(actor, "api_key.revoke", slug, {"key_id": key_id}, remote_addr)
        return key

    def authenticate(self, token: str) -> Brand:
        """The brand whose live key this is; AuthenticationError otherwise."""
        if not token.startswith(KEY_PREFIX):
            raise AuthenticationError("invalid API key")
        key = (
            ApiKey.select(ApiKey, Brand).join(Brand)
            .where(ApiKey.key_hash == hash_key(token)).first()
        )
        if key is None or key.revoked_at is not None:
            raise AuthenticationError("invalid or revoked API key")
        now = utcnow()
        # Touch last_used_at at most once a minute: no write on every request.
        if key.last_used_at is None or now - key.last_used_at > dt.timedelta(minutes=1):
            ApiKey.update(last_used_at=now).where(ApiKey.id == key.id).execute()
        brand: Brand = key.brand
        return brand
