"""Conversations and the turn pipeline.

A turn: validate the customer's text, load the conversation (scoped to the caller's brand),
build the prompt in the brand's voice with history bounded to the model's context, generate
through the router (ordered fallback; a canned reply when no model answers), check the draft,
then persist the customer message, the reply and the turn trace in one transaction, so a crash
mid-turn leaves the conversation as it was.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import peewee

from appliance.agent.persona import clean_reply, system_prompt
from appliance.brands import persona_of, policy_of
from appliance.db.models import Brand, Conversation, Message, TurnTrace, utcnow
from appliance.errors import Conflict, InvalidRequest, ModelError, NotFound, PayloadTooLarge
from appliance.llm.base import ChatMessage, ChatModel, GenerationParams, TextDelta
from appliance.llm.router import ModelRouter, RoutedCompletion

ACTIVE, PENDING_HUMAN, CLOSED = "active", "pending_human", "closed"
CANNED_MODEL = "canned"
#: Sent when a model returns nothing usable after the checks.
EMPTY_REPLY = "Sorry, could you tell me a little more about what you need?"
#: Most past messages offered to a model, before the token budget trims further.
MAX_HISTORY_MESSAGES = 24
_ROLE_TO_CHAT = {"customer": "user", "agent": "assistant", "human": "assistant"}


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


class ConversationService:
    """Start, read, reply in and close conversations, always within one brand."""

    def __init__(self, db: peewee.Database, router: ModelRouter, limits: AgentLimits) -> None:
        self._db = db
        self._router = router
        self._limits = limits

    def start(
        self, brand: Brand, customer: dict[str, Any], channel: str
    ) -> tuple[Conversation, Message]:
        """Open a conversation; the greeting is its first message."""
        persona = persona_of(brand)
        with self._db.atomic():
            conversation = Conversation.create(
                public_id=new_id("conv"), brand=brand, customer=customer, channel=channel,
                status=ACTIVE,
            )
            greeting = Message.create(
                public_id=new_id("msg"), conversation=conversation, role="agent",
                text=persona.greeting,
            )
        return conversation, greeting

    def get(self, brand: Brand, public_id: str) -> Conversation:
        """The brand's conversation; another brand's looks exactly like a missing one."""
        conversation = Conversation.get_or_none(
            (Conversation.public_id == public_id) & (Conversation.brand == brand.id)
        )
        if conversation is None:
            raise NotFound(f"no conversation {public_id!r}", code="conversation_not_found")
        conversation.brand = brand
        return conversation

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
        return conversation

    def recent(self, limit: int = 20, brand_id: int | None = None) -> list[Conversation]:
        """The most recently active conversations, of one brand or of all."""
        query = Conversation.select(Conversation, Brand).join(Brand)
        if brand_id is not None:
            query = query.where(Conversation.brand == brand_id)
        return list(query.order_by(Conversation.updated_at.desc()).limit(limit))

    def close_idle(self, idle_minutes: int) -> int:
        """Close active conversations with no activity for `idle_minutes`; return how many."""
        now = utcnow()
        cutoff = now - dt.timedelta(minutes=idle_minutes)
        with self._db.atomic():
            return int(
                Conversation.update(status=CLOSED, closed_at=now, status_reason="idle")
                .where((Conversation.status == ACTIVE) & (Conversation.updated_at < cutoff))
                .execute()
            )

    def reply(self, brand: Brand, public_id: str, text: str) -> Iterator[TextDelta | TurnResult]:
        """Run one turn: return an iterator of the reply's text deltas, then one TurnResult.

        Checks happen at call time, before any generation: raises InvalidRequest or
        PayloadTooLarge for bad text, NotFound for an unknown conversation and Conflict for a
        closed one.
        """
        started = time.perf_counter()
        text = self._validated_text(text)
        conversation = self.get(brand, public_id)
        if conversation.status == CLOSED:
            raise Conflict("conversation is closed", code="conversation_closed")
        return self._turn(brand, conversation, text, started)

    def _turn(
        self, brand: Brand, conversation: Conversation, text: str, started: float
    ) -> Iterator[TextDelta | TurnResult]:
        persona = persona_of(brand)
        history = self.messages(conversation)
        system = system_prompt(brand.name, persona)
        params = GenerationParams(
            max_tokens=self._limits.max_reply_tokens, timeout_s=self._limits.timeout_s,
            stop=("<|im_end|>", "\nCustomer:", "\nUser:"),
        )

        def messages_for(model: ChatModel) -> Sequence[ChatMessage]:
            return bounded_prompt(model, system, history, text, params.max_tokens)

        prepared = time.perf_counter()
        routed: RoutedCompletion | None = None
        first_token: float | None = None
        decision: dict[str, Any] = {"action": "reply", "rule": "default", "task": "reply"}
        try:
            for event in self._router.stream("reply", messages_for, params):
                if isinstance(event, RoutedCompletion):
                    routed = event
                else:
                    first_token = first_token or time.perf_counter()
                    yield event
        except ModelError as exc:
            decision = {"action": "canned_reply", "rule": "no_model_answered",
                        "error": exc.code, "task": "reply"}
        generated = time.perf_counter()

        if routed is not None:
            reply_text = clean_reply(routed.completion.text, persona) or EMPTY_REPLY
            model_id, fallback = routed.completion.model_id, routed.fallback
            usage = {"prompt_tokens": routed.completion.prompt_tokens,
                     "completion_tokens": routed.completion.completion_tokens}
            if routed.failed:
                decision["failed"] = [[a.model_id, a.error_code] for a in routed.failed]
        else:
            reply_text = policy_of(brand).unavailable_message
            model_id, fallback = CANNED_MODEL, True
            usage = {"prompt_tokens": 0, "completion_tokens": 0}

        latency = {
            "prepare": _ms(started, prepared),
            "llm": _ms(prepared, generated),
            "ttft": _ms(prepared, first_token) if first_token else _ms(prepared, generated),
        }
        message = self._persist(conversation, text, reply_text, model_id, fallback, usage,
                                latency, decision, started)
        yield TurnResult(message, conversation, fallback, latency, usage)

    def _validated_text(self, text: str) -> str:
        text = text.strip()
        if not text:
            raise InvalidRequest("text: must not be empty", param="text", code="empty_message")
        if len(text) > self._limits.max_message_chars:
            raise PayloadTooLarge(
                f"text: longer than {self._limits.max_message_chars} characters",
                param="text", code="message_too_long",
            )
        return text

    def _persist(
        self, conversation: Conversation, text: str, reply_text: str, model_id: str,
        fallback: bool, usage: dict[str, int], latency: dict[str, float],
        decision: dict[str, Any], started: float,
    ) -> Message:
        persist_started = time.perf_counter()
        with self._db.atomic():
            customer_message = Message.create(
                public_id=new_id("msg"), conversation=conversation, role="customer", text=text
            )
            agent_message = Message.create(
                public_id=new_id("msg"), conversation=conversation, role="agent",
                text=reply_text, model=model_id,
            )
            latency["persist"] = _ms(persist_started, time.perf_counter())
            latency["total"] = _ms(started, time.perf_counter())
            latency["overhead"] = round(latency["total"] - latency["llm"], 3)
            TurnTrace.create(
                conversation=conversation, customer_message=customer_message,
                agent_message=agent_message, model=model_id, fallback=fallback,
                prompt_tokens=usage["prompt_tokens"],
                completion_tokens=usage["completion_tokens"], latency_ms=latency,
                decision=decision,
            )
            conversation.updated_at = utcnow()
            Conversation.update(updated_at=conversation.updated_at).where(
                Conversation.id == conversation.id
            ).execute()
        return agent_message


def bounded_prompt(
    model: ChatModel, system: str, history: Sequence[Message], text: str, reply_tokens: int
) -> list[ChatMessage]:
    """System prompt, then as much recent history as fits the model's context, then `text`."""
    # Chat templates add a few tokens per message; keep a margin for them.
    overhead_per_message = 8
    budget = model.spec.context_tokens - reply_tokens
    budget -= model.count_tokens(system) + model.count_tokens(text) + 2 * overhead_per_message
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
