"""Conversations and the turn pipeline.

A turn is a few stages over one context (`_Turn`): validate the customer's text and load the
conversation (scoped to the caller's brand); read the message (one embedding for the
classifiers and the knowledge, the workflow it continues or starts: appliance/agent/flows.py);
route it (the supervisor's escalation rules, a workflow, a template or the model); generate in
the brand's voice through the router (ordered fallback; a canned reply when no model answers),
releasing the draft sentence by sentence through its checks; review it; then persist the
customer message, the reply, the turn trace and the conversation's state in one transaction, so
a crash mid-turn leaves the conversation as it was.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import secrets
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import peewee

from appliance import metrics
from appliance.agent.draft import TURN_MARKERS, SentenceGate
from appliance.agent.flows import Flow, Flows, Followup
from appliance.agent.grounding import (
    quotes_internal,
    says_something,
    ungrounded_facts,
    unsupported,
)
from appliance.agent.persona import clean_reply, system_prompt
from appliance.agent.quoting import Chosen, Quoter, facts
from appliance.agent.supervisor import (
    ANSWER,
    CLARIFY,
    ESCALATE,
    EXTRACTIVE,
    NO_ANSWER,
    OUT_OF_SCOPE,
    SELF_HELP,
    Decision,
    PastTurn,
    TurnFacts,
    decide,
    escalation,
    review,
    understood,
)
from appliance.brands import Persona, Policy, persona_of, policy_of
from appliance.db.models import (
    Brand,
    Conversation,
    KnowledgeVersion,
    Message,
    TurnTrace,
    utcnow,
)
from appliance.errors import Conflict, ModelError, NotFound, PayloadTooLarge
from appliance.evals.candidate import candidate_for
from appliance.handoff.service import HandoffService
from appliance.knowledge.index import IndexUnavailable
from appliance.knowledge.normalize import approx_tokens
from appliance.knowledge.service import Hit, KnowledgeService
from appliance.llm.base import ChatMessage, ChatModel, GenerationParams, TextDelta
from appliance.llm.router import ModelRouter, RoutedCompletion
from appliance.outcomes import CLOSED_BY_CHANNEL, CLOSED_IDLE, HANDED_OFF, OutcomeService
from appliance.privacy.detect import detector_for
from appliance.privacy.subjects import SubjectKeys
from appliance.privacy.vault import Vault, Vaults
from appliance.readiness import WarmUp
from appliance.reasons import Reason
from appliance.signals.base import Vectors
from appliance.signals.service import Signals, SignalService
from appliance.text import validated_text
from appliance.workflows.extract import without_identifiers
from appliance.workflows.service import BrandWorkflows, WorkflowService
from appliance.workflows.state import WorkflowState

log = logging.getLogger(__name__)
ACTIVE, PENDING_HUMAN, CLOSED = "active", "pending_human", "closed"
#: Idle conversations closed per transaction.
IDLE_CLOSE_BATCH = 500
CANNED_MODEL = "canned"
#: Sent when a model returns nothing usable after the checks.
EMPTY_REPLY = "Sorry, could you tell me a little more about what you need?"
#: Most past messages offered to a model, before the token budget trims further.
MAX_HISTORY_MESSAGES = 24
_ROLE_TO_CHAT = {"customer": "user", "agent": "assistant", "human": "assistant"}


TEMPLATE_MODEL = "template"
#: Introduces an answer quoted from the brand's knowledge.
EXTRACTIVE_LEAD = "Here is what our help center says:"
#: Chunks retrieved per turn, and how many of the relevant ones go into the prompt.
RETRIEVE_K, PROMPT_K = 5, 3
#: How far below the brand's knowledge_min_score a passage after the best one may score and
#: still contribute sentences.
SUPPORT_MARGIN = 0.1
#: How far above the brand's knowledge_min_score a sentence must score to answer on its own,
#: whatever its passage scored. Set on Rho-Bank's questions: unanswerable ones reach 0.54 on a
#: sentence (a name on a document, for "how do I change my last name?"), while "what does
#: processed mean?" finds its answer at 0.63.
SENTENCE_MARGIN = 0.08
#: The prompt's budget (tokens) for the passages' relevant sentences, and for earlier
#: messages. Every prompt token costs time to first token (~4 ms each for the 135M model on
#: two cores); the question and a few relevant sentences carry the answer.
KNOWLEDGE_TOKENS, HISTORY_TOKENS = 160, 96
_SMALL_TALK = re.compile(
    r"^(hi|hello|hey|hiya|good (morning|afternoon|evening)|thanks?|thank you|thx|bye|goodbye|"
    r"ok|okay|cool|great|cheers|how are you|who are you|what is your name|"
    # Closing words, the answer to "anything else?": "No, that's all. Thank you!"
    r"(no,? )?(that'?s|that is) (all|it|everything)|(no,? )?nothing else|"
    r"(no,? )?i'?m (good|all set|fine)|all (good|set)|no,? thank(s| you))\b",
    re.IGNORECASE,
)


def is_small_talk(text: str) -> bool:
    """A greeting, thanks or goodbye: nothing to look up."""
    return len(text.split()) <= 6 and bool(_SMALL_TALK.match(text.strip()))


@dataclass
class Reply:
    """The reply as it is built during a turn."""

    decision: dict[str, Any]
    citations: list[dict[str, Any]]
    text: str = ""
    model_id: str = ""
    fallback: bool = False
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    first_token_at: float | None = None
    generated_at: float | None = None
    #: Sentences of the draft the knowledge does not support (the draft is then replaced).
    ungrounded: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Grounding:
    """What the brand's knowledge offers for this message."""

    #: chat (no knowledge to consult) | grounded | no_answer (nothing relevant)
    mode: str
    rule: str
    hits: list[Hit] = field(default_factory=list)
    version_id: int | None = None
    version_number: int | None = None
    retrieved: list[Hit] = field(default_factory=list)
    #: The hits' sentences and list items relevant to the message, most relevant first.
    units: list[Chosen] = field(default_factory=list)

    def trace(self, action: str) -> dict[str, Any] | None:
        if self.version_id is None:
            return None
        return {
            "version_id": self.version_id, "version": self.version_number, "mode": action,
            "chunks": [[hit.chunk_id, round(hit.score, 4)] for hit in self.retrieved],
            "used": [hit.chunk_id for hit in self.hits],
        }


def _best_passage(trace: TurnTrace) -> int | None:
    used = (trace.knowledge or {}).get("used") or []
    return int(used[0]) if used else None


def _unique_articles(hits: Sequence[Hit]) -> list[Hit]:
    seen: set[int] = set()
    unique = []
    for hit in hits:
        if hit.article_id not in seen:
            seen.add(hit.article_id)
            unique.append(hit)
    return unique


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass(frozen=True)
class AgentLimits:
    max_message_chars: int
    max_reply_tokens: int
    timeout_s: float


@dataclass(frozen=True)
class TurnResult:
    """The outcome of one turn, as persisted."""

    message: Message
    conversation: Conversation
    fallback: bool
    latency_ms: dict[str, float]
    usage: dict[str, int] = field(default_factory=dict)
    #: The reply as the customer sees it: the stored message holds placeholders for personal
    #: data (appliance/privacy/vault.py); here the kinds the brand shows are back in full and
    #: the rest masked. None: the stored text.
    shown_text: str | None = None

    @property
    def text(self) -> str:
        """The reply as the customer sees it."""
        return self.shown_text if self.shown_text is not None else self.message.text


class ConversationService:
    """Start, read, reply in and close conversations, always within one brand."""

    def __init__(
        self, db: peewee.Database, router: ModelRouter, limits: AgentLimits,
        knowledge: KnowledgeService, signals: SignalService, workflows: WorkflowService,
        handoffs: HandoffService, outcomes: OutcomeService, warm: WarmUp,
        subjects: SubjectKeys, vaults: Vaults,
    ) -> None:
        self._db = db
        self._subjects = subjects
        self._vaults = vaults
        self._outcomes = outcomes
        self._warm = warm
        self._router = router
        self._limits = limits
        self._knowledge = knowledge
        self._signals = signals
        self._workflows = workflows
        self._handoffs = handoffs
        self._quoter = Quoter(knowledge.embedder)
        self._flows = Flows(workflows, router)

    def start(
        self, brand: Brand, customer: dict[str, Any], channel: str
    ) -> tuple[Conversation, Message]:
        """Open a conversation; the greeting is its first message."""
        persona = persona_of(brand)
        public_id = new_id("conv")
        vault = self._vaults.open(None, public_id, detector_for(policy_of(brand)))
        # The customer's email and the like are stored as placeholders too.
        stored = vault.redact_json(customer)
        with self._db.atomic():
            conversation = Conversation.create(
                public_id=public_id, brand=brand, customer=stored, channel=channel,
                status=ACTIVE, vault=self._vaults.seal(vault, public_id),
            )
            greeting = Message.create(
                public_id=new_id("msg"), conversation=conversation, role="agent",
                text=persona.greeting,
            )
            # The caller gets the customer it gave (the row holds placeholders).
            conversation.customer = customer
            self._subjects.record(conversation)
        return conversation, greeting

    def customer_view(self, conversation: Conversation) -> Callable[[Any], Any]:
        """What the customer (and the brand's channel) is shown of stored text or JSON: the
        placeholders of the kinds the brand shows in full back, the others masked."""
        vault = self._vaults.of(conversation)
        shown = policy_of(conversation.brand).pii_shown_to_customer
        return lambda value: vault.reveal_json(value, shown)

    def get(self, brand: Brand, public_id: str) -> Conversation:
        """The brand's conversation; another brand's looks exactly like a missing one."""
        conversation = Conversation.get_or_none(
            (Conversation.public_id == public_id) & (Conversation.brand == brand.id)
        )
        if conversation is None:
            raise NotFound(f"no conversation {public_id!r}", code="conversation_not_found")
        conversation.brand = brand
        return conversation

    def find(self, public_id: str) -> Conversation | None:
        """The conversation `public_id` of any brand, with its brand; None if there is none.
        For callers that check the brand themselves (the admin's brand scope)."""
        found: Conversation | None = (
            Conversation.select(Conversation, Brand).join(Brand)
            .where(Conversation.public_id == public_id).first())
        return found

    def waiting_for_human(self, brand_id: int | None = None) -> dict[int, int]:
        """How many conversations wait for a human, by brand id (of one brand, or all)."""
        counts = (Conversation.select(Conversation.brand, peewee.fn.COUNT(Conversation.id))
                  .where(Conversation.status == PENDING_HUMAN).group_by(Conversation.brand))
        if brand_id is not None:
            counts = counts.where(Conversation.brand == brand_id)
        rows = cast(list[tuple[int, int]], list(counts.tuples()))
        return {int(brand): int(n) for brand, n in rows}

    def latest_waiting_for_human(self, brand_id: int, limit: int) -> list[Conversation]:
        """The brand's conversations waiting for a human, most recently active first."""
        return list(
            Conversation.select().where(
                (Conversation.brand == brand_id) & (Conversation.status == PENDING_HUMAN))
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit))

    def messages(self, conversation: Conversation) -> list[Message]:
        return list(
            Message.select().where(Message.conversation == conversation)
            .order_by(Message.created_at, Message.id)
        )

    def traces(self, conversation: Conversation) -> list[TurnTrace]:
        return list(
            TurnTrace.select().where(TurnTrace.conversation == conversation).order_by(TurnTrace.id)
        )

    def close(self, brand: Brand, public_id: str) -> Conversation:
        with self._db.atomic():
            conversation = self.get(brand, public_id)
            if conversation.status != CLOSED:
                conversation.status = CLOSED
                conversation.closed_at = conversation.updated_at = utcnow()
                conversation.save()
                self._outcomes.attribute(conversation, CLOSED_BY_CHANNEL)
        return conversation

    def recent(self, limit: int = 20, brand_id: int | None = None) -> list[Conversation]:
        """The most recently active conversations, of one brand or of all."""
        query = Conversation.select(Conversation, Brand).join(Brand)
        if brand_id is not None:
            query = query.where(Conversation.brand == brand_id)
        return list(query.order_by(Conversation.updated_at.desc()).limit(limit))

    def close_idle(self, idle_minutes: int) -> int:
        """Close active conversations with no activity for `idle_minutes`, attributing each
        one's outcome; return how many."""
        now = utcnow()
        cutoff = now - dt.timedelta(minutes=idle_minutes)
        closed = 0
        while True:
            # In batches, each in its own transaction: a crash loses no closed conversation's
            # outcome, and the next run goes on from where this one stopped.
            with self._db.atomic():
                batch = list(Conversation.select(Conversation, Brand).join(Brand)
                             .where((Conversation.status == ACTIVE)
                                    & (Conversation.updated_at < cutoff))
                             .order_by(Conversation.id).limit(IDLE_CLOSE_BATCH))
                for conversation in batch:
                    Conversation.update(status=CLOSED, closed_at=now,
                                        status_reason=CLOSED_IDLE).where(
                        Conversation.id == conversation.id).execute()
                    conversation.status, conversation.status_reason = CLOSED, CLOSED_IDLE
                    self._outcomes.attribute(conversation, CLOSED_IDLE, now)
            closed += len(batch)
            if len(batch) < IDLE_CLOSE_BATCH:
                return closed

    def reply(
        self, brand: Brand, public_id: str, text: str, workflows: BrandWorkflows | None = None,
        *, on_persist: Callable[[TurnResult], None] | None = None,
    ) -> Iterator[TextDelta | TurnResult]:
        """Run one turn: return an iterator of the reply's text deltas, then one TurnResult.

        `workflows` replaces the brand's published workflows (the Studio's test chat runs a
        draft this way). `on_persist` is called with the result inside the transaction that
        persists the turn: what it writes commits with the turn, and if it raises, the turn
        is not persisted (an Idempotency-Key's stored reply). Checks happen at call time,
        before any generation: raises InvalidRequest or PayloadTooLarge for bad text,
        NotFound for an unknown conversation and Conflict for a closed one.
        """
        text = validated_text(text, max_chars=self._limits.max_message_chars,
                              too_long=PayloadTooLarge)
        # A worker still warming up finishes first: the turn then runs at full speed, and
        # the wait is not counted as the turn's.
        self._warm.wait()
        started = time.perf_counter()
        conversation = self.get(brand, public_id)
        if conversation.status == CLOSED:
            self._reopen(conversation)
        return self._turn(brand, conversation, text, started, workflows, on_persist)

    def _reopen(self, conversation: Conversation) -> None:
        """A customer who writes again in a conversation closed as idle, while its outcome is
        still provisional, reopens it and reverses the outcome; any other closed one is a
        Conflict."""
        with self._db.atomic():
            if not self._outcomes.may_reopen(conversation):
                raise Conflict("conversation is closed", code="conversation_closed")
            self._outcomes.reverse(conversation, "the customer wrote again")
            conversation.status, conversation.status_reason = ACTIVE, None
            conversation.closed_at = None
            Conversation.update(status=ACTIVE, status_reason=None, closed_at=None).where(
                Conversation.id == conversation.id).execute()

    def warm_up(self, brand: Brand) -> None:
        """Load and run once what a turn of `brand` uses, persisting nothing: the embedder,
        the brand's classifiers, its knowledge index and the passages' sentence ranking, its
        workflows' matcher, and the reply model on the brand's fixed prompt (its evaluated
        prefix then serves the first turn)."""
        latency: dict[str, float] = {}
        text = "How do I change my address?"
        vector = self._embed(text, latency)
        signals = self._read_signals(brand, text, vector, latency)
        self._ground(brand, vector, False, latency)
        running = self._workflows.running(brand)
        if running.workflows:
            running.match(text, vector, signals.intent, not signals.unclear)
        system = system_prompt(brand.name, persona_of(brand))
        try:
            self._router.complete(
                "reply", lambda model: [ChatMessage("system", system), ChatMessage("user", text)],
                GenerationParams(max_tokens=1, timeout_s=self._limits.timeout_s))
        except ModelError:
            log.warning("no reply model answered while warming up %s", brand.slug)

    def _turn(
        self, brand: Brand, conversation: Conversation, text: str, started: float,
        workflows: BrandWorkflows | None = None,
        on_persist: Callable[[TurnResult], None] | None = None,
    ) -> Iterator[TextDelta | TurnResult]:
        """The stages of a turn over one context: read the message (signals, knowledge, the
        workflows concerned), route it (a human, a workflow, a template or the model),
        generate and review the reply, persist it all at once."""
        vault = self._vaults.of(conversation, brand)
        # The workflow engine and the tools work on the real values; what is stored of the
        # turn holds placeholders (_persist).
        conversation.state = vault.reveal_json(conversation.state)
        conversation.customer = vault.reveal_json(conversation.customer)
        turn = _Turn(brand, conversation, text, started, persona_of(brand), policy_of(brand),
                     self.messages(conversation), vault=vault, redacted=vault.redact(text))
        if conversation.status == PENDING_HUMAN:
            # A human takes it from here: keep the message, acknowledge it, run no model.
            turn.reply = Reply(decision=Decision("awaiting_human", "pending_human", "").trace(),
                               citations=[], text=turn.policy.awaiting_human_message,
                               model_id=TEMPLATE_MODEL)
            yield TextDelta(turn.reply.text)
        else:
            self._read(turn, workflows)
            yield from self._respond(turn)
        yield self._persist(turn, on_persist)

    def _read(self, turn: _Turn, workflows: BrandWorkflows | None) -> None:
        """Signals: the message's one embedding, its classifiers, the brand's knowledge and
        the workflow it continues or starts."""
        turn.read, turn.small_talk = True, is_small_talk(turn.text)
        vector = self._embed(turn.text, turn.latency)
        turn.signals = self._read_signals(turn.brand, turn.text, vector, turn.latency)
        # The release gate's own eval conversations run its candidate; nothing else does.
        candidate = candidate_for(turn.conversation)
        turn.grounding = self._ground(turn.brand, vector, turn.small_talk, turn.latency,
                                      candidate.knowledge if candidate else None)
        turn.flow = self._flows.flow(turn.brand, turn.conversation, turn.text, vector,
                                     turn.signals, workflows or (
                                         candidate.workflows if candidate else None),
                                     turn.vault.redact_json)
        if turn.flow is not None:
            turn.state = turn.flow.state

    def _respond(self, turn: _Turn) -> Iterator[TextDelta]:
        """Route the turn, then reply: a workflow's or a template's words, or the model's
        draft, checked as it streams and reviewed once drafted."""
        grounding, policy = turn.grounding, turn.policy
        facts = TurnFacts(
            text=turn.text, signals=turn.signals, small_talk=turn.small_talk,
            grounding=grounding.mode, grounding_rule=grounding.rule,
            past=self._past(turn.conversation),
            context_chars=sum(len(m.text) for m in turn.history) + len(turn.text),
            answering=turn.flow is not None and turn.flow.answers(turn.text),
            passage=grounding.hits[0].chunk_id if grounding.hits else None,
        )
        decision = escalation(facts, policy.supervision)
        followup: Followup | None = None
        if decision is None and turn.flow is not None:
            started = time.perf_counter()
            ran = self._flows.run(turn.flow, turn.text, grounding.mode == "grounded",
                                  turn.small_talk, policy)
            turn.latency["workflow"] = _ms(started, time.perf_counter())
            if isinstance(ran, Followup):
                followup = ran
            elif ran is not None:
                decision, outcome, turn.state = ran
                turn.reply = Reply(decision=decision.trace(), citations=[], text=outcome.text,
                                   model_id=TEMPLATE_MODEL)
                turn.knowledge_used = False
                if decision.escalates:
                    turn.reply.text = (
                        f"{turn.reply.text} {self._handoff_text(turn.brand)}".strip())
                    turn.escalation = decision.rule
                yield TextDelta(turn.reply.text)
                return
        decision = decision or decide(facts, policy.supervision)
        turn.prepared = time.perf_counter()
        answering = decision.action == ANSWER
        # Only customer-facing passages are cited to the customer; internal ones only ground.
        turn.reply = reply = Reply(decision=decision.trace(), citations=[
            hit.citation() for hit in _unique_articles(grounding.hits) if hit.customer_facing
        ] if answering else [])
        templates = {ESCALATE: self._handoff_text(turn.brand) if decision.escalates else "",
                     SELF_HELP: policy.self_help_message, CLARIFY: policy.clarify_message,
                     OUT_OF_SCOPE: policy.out_of_scope_message,
                     NO_ANSWER: policy.no_answer_message}
        if decision.action in templates:
            reply.text, reply.model_id = templates[decision.action], TEMPLATE_MODEL
            yield TextDelta(reply.text)
        else:
            yield from self._generate(turn, decision, answering)
            decision = yield from self._review(turn, decision)
            if followup is not None and not decision.escalates:
                reply.text = f"{reply.text}\n\n{followup.text}"
                yield TextDelta(f"\n\n{followup.text}")
                reply.decision[followup.kind] = followup.workflow
        turn.action = decision.action
        if decision.escalates:
            turn.escalation = decision.rule

    def _review(self, turn: _Turn, decision: Decision) -> Generator[TextDelta, None, Decision]:
        """The supervisor's review of the draft, and what replaces or follows it: a quote
        for a draft the knowledge does not support, the canned reply when no model answered,
        the handoff message when the review hands off."""
        reply, policy = turn.reply, turn.policy
        reviewed = review(decision, fallback=reply.fallback,
                          canned=reply.model_id == CANNED_MODEL,
                          ungrounded=bool(reply.ungrounded), policy=policy.supervision)
        quoted = self._quoter.quote(turn.grounding.units) if reply.ungrounded else None
        if quoted is not None:
            # Whole sentences or a list, of customer-facing material only.
            best, quote = quoted
            reply.text = f"{EXTRACTIVE_LEAD}\n\n{quote}"
            reply.citations = [best.citation()]
            yield TextDelta(reply.text)
        elif reply.ungrounded and reviewed.action == EXTRACTIVE:
            # Only internal passages bore on the question, and they are never quoted: the
            # customer is offered a colleague, who may read them.
            reviewed = Decision(NO_ANSWER, Reason.INTERNAL_KNOWLEDGE_ONLY, reviewed.task,
                                reviewed.evidence)
            reply.text, reply.citations = policy.no_answer_message, []
            yield TextDelta(reply.text)
        elif reply.model_id == CANNED_MODEL:
            reply.text = f"{policy.unavailable_message} {self._handoff_text(turn.brand)}"
            reply.citations = []
            yield TextDelta(reply.text)
        elif not reply.text:
            reply.text = EMPTY_REPLY
            yield TextDelta(reply.text)
        elif reviewed.escalates:
            # The answer stands, and a human checks what the fallback model said.
            handoff_text = self._handoff_text(turn.brand)
            reply.text = f"{reply.text} {handoff_text}"
            yield TextDelta(f" {handoff_text}")
        # The reviewed decision, keeping what generation added (models that failed, error).
        reply.decision = {**reply.decision, **reviewed.trace()}
        if reply.ungrounded:
            reply.decision["ungrounded"] = reply.ungrounded
        return reviewed

    def _handoff_text(self, brand: Brand) -> str:
        """What the customer is told when a human takes over, with the expected wait when
        recent handoffs tell it."""
        policy = policy_of(brand)
        hours = policy.business_hours
        if hours is not None and not hours.is_open(utcnow()):
            return policy.after_hours_message.replace("{hours}", hours.describe())
        text = policy.handoff_message
        minutes = self._handoffs.expected_wait_minutes(brand)
        if minutes is not None:
            text += (f" A colleague usually joins within about {minutes} minute"
                     f"{'s' if minutes != 1 else ''}.")
        return text

    def _embed(self, text: str, latency: dict[str, float]) -> Vectors:
        """The message's one embedding, shared by the classifiers and retrieval."""
        started = time.perf_counter()
        vector = self._knowledge.embedder.embed_one(text)
        latency["embed"] = _ms(started, time.perf_counter())
        return vector

    def _read_signals(
        self, brand: Brand, text: str, vector: Vectors | None, latency: dict[str, float]
    ) -> Signals:
        started = time.perf_counter()
        signals = self._signals.read(brand.slug, text, vector)
        words = without_identifiers(text)
        if words != text and words.strip() and signals.sentiment is not None:
            # The mood is read from the customer's words: order numbers and email addresses
            # are none, and the sentiment model, never trained on them, read "cancel order
            # #W5442520, I'm jo@example.com" as angry.
            mood = self._signals.read(brand.slug, words)
            signals = dataclasses.replace(signals, sentiment=mood.sentiment,
                                          frustration=mood.frustration)
        latency["signals"] = _ms(started, time.perf_counter())
        if signals.intent is None:
            return signals
        return dataclasses.replace(
            signals, unclear=not understood(signals, policy_of(brand).supervision))

    def _past(self, conversation: Conversation) -> list[PastTurn]:
        """The supervisor's memory: each earlier turn's signals, decided action and the best
        passage its answer used."""
        return [PastTurn(Signals.from_trace(trace.signals), trace.decision.get("action", ""),
                         _best_passage(trace))
                for trace in self.traces(conversation)]

    def _ground(
        self, brand: Brand, vector: Vectors, small_talk: bool, latency: dict[str, float],
        candidate: KnowledgeVersion | None = None,
    ) -> Grounding:
        """Retrieve from the brand's published knowledge (or the `candidate` version the
        release gate tries), unless there is none or the message is small talk; then pick
        the passages' sentences that bear on the message. Passages above the retrieval
        threshold with no such sentence ground nothing: an answer built on them would be
        about something else."""
        if small_talk:
            return Grounding("chat", "small_talk")
        started = time.perf_counter()
        try:
            version, hits = self._knowledge.search_vector(brand, vector, k=RETRIEVE_K,
                                                          version=candidate)
        except IndexUnavailable:
            # Knowledge exists but cannot be searched (index missing, embedder changed):
            # never answer as if there were none.
            log.exception("knowledge of %s is unavailable", brand.slug)
            return Grounding("no_answer", "knowledge_unavailable")
        latency["retrieval"] = _ms(started, time.perf_counter())
        if version is None:
            return Grounding("chat", "no_knowledge")
        policy = policy_of(brand)
        # The best passage decides whether the knowledge answers at all; the next ones may
        # score a little lower and still hold the sentence that answers ("what is your return
        # policy?": the return window is in the section after the one that scored best).
        # Each sentence must still be relevant on its own. A passage is also judged by its
        # best sentence: a long section scores low against a short question ("what does
        # processed mean?") even when one of its sentences answers it exactly. A sentence
        # scores higher than the passage around it, so alone it must clear a higher bar.
        floor = policy.knowledge_min_score - SUPPORT_MARGIN
        sentence_bar = policy.knowledge_min_score + SENTENCE_MARGIN
        started = time.perf_counter()
        ranked = self._quoter.rank(vector, hits[:PROMPT_K], policy.knowledge_min_relevance)
        latency["relevance"] = _ms(started, time.perf_counter())
        alone = {chosen.hit.chunk_id for chosen in ranked if chosen.relevance >= sentence_bar}
        relevant = [hit for hit in hits[:PROMPT_K]
                    if hit.score >= floor or hit.chunk_id in alone]
        if not relevant or (hits[0].score < policy.knowledge_min_score and not alone):
            return Grounding("no_answer", "knowledge_below_threshold", [], version.id,
                             version.number, hits)
        kept = {hit.chunk_id for hit in relevant}
        units = [chosen for chosen in ranked if chosen.hit.chunk_id in kept]
        if not units:
            return Grounding("no_answer", "no_relevant_sentence", [], version.id,
                             version.number, hits)
        used = {chosen.hit.chunk_id for chosen in units}
        return Grounding("grounded", "knowledge", [h for h in relevant if h.chunk_id in used],
                         version.id, version.number, hits, units)

    def _generate(self, turn: _Turn, decision: Decision, answering: bool
                  ) -> Iterator[TextDelta]:
        """Stream the routed model's reply through the sentence gate into the turn's reply:
        each sentence is checked (persona; with knowledge, grounding) before it is released."""
        reply, persona = turn.reply, turn.persona
        given = facts(turn.grounding.units, KNOWLEDGE_TOKENS, approx_tokens) if answering else []
        # The draft is checked against what the model was given: a fact it states from
        # elsewhere (a stale page it never saw) is invented, whatever else the passages hold.
        knowledge = [sentence for _, sentences in given for sentence in sentences]
        internal = [s for hit, sentences in given if not hit.customer_facing for s in sentences]
        customer = [s for hit, sentences in given if hit.customer_facing for s in sentences]

        def check(sentence: str) -> str | None:
            cleaned = clean_reply(sentence, persona)
            if not knowledge:
                return cleaned
            missing = ungrounded_facts(cleaned, knowledge)
            if missing or unsupported(cleaned, knowledge) or (
                    internal and quotes_internal(cleaned, internal, customer)):
                reply.ungrounded = missing or [cleaned]
                return None
            return cleaned

        system = system_prompt(turn.brand.name, persona, [
            (hit.title, sentences) for hit, sentences in given] if answering else None)
        gate = SentenceGate(check, (lambda sentence: says_something(
            sentence, knowledge, turn.text)) if knowledge else None)
        params = GenerationParams(
            max_tokens=self._limits.max_reply_tokens, timeout_s=self._limits.timeout_s,
            stop=TURN_MARKERS,
            # A draft that failed a check is replaced whatever follows, and one that ended (a
            # turn marker, a loop) has nothing more to give.
            stop_when=lambda: gate.failed or gate.ended,
        )

        def messages_for(model: ChatModel) -> Sequence[ChatMessage]:
            # The model reads placeholders, never the customer's personal data.
            return bounded_prompt(model, system, turn.history, turn.redacted,
                                  params.max_tokens, HISTORY_TOKENS)

        routed: RoutedCompletion | None = None
        try:
            for event in self._router.stream(decision.task, messages_for, params):
                if isinstance(event, RoutedCompletion):
                    routed = event
                    continue
                reply.first_token_at = reply.first_token_at or time.perf_counter()
                for piece in gate.feed(event.text):
                    yield TextDelta(piece)
            cut = routed is not None and routed.completion.finish_reason == "length"
            for piece in gate.flush(cut=cut):
                yield TextDelta(piece)
        except ModelError as exc:
            reply.decision["error"] = exc.code
        reply.generated_at = time.perf_counter()
        if routed is None:
            reply.model_id, reply.fallback = CANNED_MODEL, True
            return
        reply.text = "" if gate.failed else gate.text
        if gate.failed and not reply.ungrounded:
            # Every sentence passed the checks, and none said what the knowledge says.
            reply.ungrounded = [gate.held or "(no answer)"]
        reply.model_id, reply.fallback = routed.completion.model_id, routed.fallback
        reply.usage = {"prompt_tokens": routed.completion.prompt_tokens,
                       "completion_tokens": routed.completion.completion_tokens}
        if routed.failed:
            reply.decision["failed"] = [[a.model_id, a.error_code] for a in routed.failed]

    def _persist(self, turn: _Turn,
                 on_persist: Callable[[TurnResult], None] | None = None) -> TurnResult:
        """The customer's message, the reply, the turn's trace and the conversation's new
        state and status, in one transaction (a crash leaves the conversation as it was)."""
        reply, latency, conversation = turn.reply, turn.latency, turn.conversation
        prepared = turn.prepared or time.perf_counter()
        latency["prepare"] = _ms(turn.started, prepared)
        latency["llm"] = _ms(prepared, reply.generated_at or prepared)
        latency["ttft"] = _ms(prepared, reply.first_token_at or reply.generated_at or prepared)
        vault = turn.vault
        knowledge = turn.grounding.trace(turn.action) if turn.knowledge_used else None
        stored_reply = vault.redact(reply.text)
        real_state = turn.state.to_json() if turn.state is not None else None
        persist_started = time.perf_counter()
        with self._db.atomic():
            customer_message = Message.create(
                public_id=new_id("msg"), conversation=conversation, role="customer",
                text=turn.redacted)
            agent_message = Message.create(
                public_id=new_id("msg"), conversation=conversation, role="agent",
                text=stored_reply, model=reply.model_id, citations=reply.citations or None,
            )
            latency["persist"] = _ms(persist_started, time.perf_counter())
            latency["total"] = _ms(turn.started, time.perf_counter())
            latency["overhead"] = round(latency["total"] - latency["llm"], 3)
            trace = TurnTrace.create(
                conversation=conversation, customer_message=customer_message,
                agent_message=agent_message, model=reply.model_id, fallback=reply.fallback,
                prompt_tokens=reply.usage["prompt_tokens"],
                completion_tokens=reply.usage["completion_tokens"], latency_ms=latency,
                decision=vault.redact_json(reply.decision), action=reply.decision.get("action"),
                knowledge=vault.redact_json(knowledge),
                signals=vault.redact_json(turn.signals.trace()) if turn.read else None,
            )
            conversation.updated_at = utcnow()
            changes: dict[Any, Any] = {Conversation.updated_at: conversation.updated_at}
            if real_state is not None:
                verified_before = (conversation.state or {}).get("customer_id")
                conversation.state = real_state
                if real_state.get("customer_id") not in (None, verified_before):
                    # A customer a workflow verified is found by erasure and holds too
                    # (indexed once, on the turn that verified them).
                    self._subjects.record(conversation)
                conversation.state = vault.redact_json(real_state)
                changes[Conversation.state] = conversation.state
            conversation.customer = vault.redact_json(conversation.customer)
            if vault.changed:
                conversation.vault = self._vaults.seal(vault, conversation.public_id)
                changes[Conversation.vault] = conversation.vault
            if turn.escalation is not None:
                conversation.status = PENDING_HUMAN
                conversation.status_reason = turn.escalation
                changes.update({Conversation.status: PENDING_HUMAN,
                                Conversation.status_reason: turn.escalation})
            Conversation.update(changes).where(Conversation.id == conversation.id).execute()
            if turn.escalation is not None:
                self._handoffs.open(conversation, turn.escalation,
                                    trace.decision.get("evidence") or {})
                self._outcomes.attribute(conversation, HANDED_OFF)
            result = TurnResult(agent_message, conversation, reply.fallback, latency,
                                reply.usage, vault.reveal(stored_reply,
                                                          turn.policy.pii_shown_to_customer))
            if on_persist is not None:
                on_persist(result)
        metrics.record_turn(turn.brand.slug, latency)
        return result


@dataclass
class _Turn:
    """One turn's context, as the stages fill it in."""

    brand: Brand
    conversation: Conversation
    text: str
    #: perf_counter() when the turn began.
    started: float
    persona: Persona
    policy: Policy
    history: list[Message]
    #: The conversation's vault, open for the turn, and the message with placeholders.
    vault: Vault
    redacted: str
    latency: dict[str, float] = field(default_factory=dict)
    small_talk: bool = False
    #: Whether the message was read (signals, knowledge): not while a human has the turn.
    read: bool = False
    signals: Signals = field(default_factory=Signals)
    grounding: Grounding = field(default_factory=lambda: Grounding("chat", "pending_human"))
    flow: Flow | None = None
    #: When the reply started to be made (the end of reading and routing).
    prepared: float | None = None
    reply: Reply = field(default_factory=lambda: Reply(decision={}, citations=[]))
    #: The decided action, for the knowledge trace.
    action: str = ""
    #: Whether the knowledge's trace is recorded (not for a workflow's own reply).
    knowledge_used: bool = True
    #: The conversation's workflow state after the turn (None: unchanged).
    state: WorkflowState | None = None
    #: The rule that hands the conversation to a human, if one does.
    escalation: str | None = None


def bounded_prompt(
    model: ChatModel, system: str, history: Sequence[Message], text: str, reply_tokens: int,
    history_tokens: int,
) -> list[ChatMessage]:
    """System prompt, then the most recent history that fits both `history_tokens` and the
    model's context, then `text`."""
    # Chat templates add a few tokens per message; keep a margin for them.
    overhead_per_message = 8
    budget = model.spec.context_tokens - reply_tokens
    budget -= model.count_tokens(system) + model.count_tokens(text) + 2 * overhead_per_message
    budget = min(budget, history_tokens)
    kept: list[ChatMessage] = []
    for message in reversed(history[-MAX_HISTORY_MESSAGES:]):
        role = _ROLE_TO_CHAT.get(message.role)
        if role is None:
            continue
        cost = model.count_tokens(message.text) + overhead_per_message
        if cost > budget:
            break
        budget -= cost
        kept.append(ChatMessage(role, message.text))  # type: ignore[arg-type]
    return [ChatMessage("system", system), *reversed(kept), ChatMessage("user", text)]


def _ms(start: float, end: float | None) -> float:
    return round(((end or start) - start) * 1000, 3)
