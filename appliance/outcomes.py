"""Outcomes: what each conversation achieved, decided by rules over its record, with evidence.

A conversation's outcome is attributed when it ends (closed by the channel, closed as idle,
or handed to a human) and starts `provisional`. The rules, first match wins:

rule                   outcome               when
handed_off             escalated             it was ever handed to a human (a human finished it)
greeting_only          abandoned             the customer never wrote
feedback_unresolved    unresolved            the customer's latest feedback says it did not help
workflow_saved         saved                 a `saved` workflow completed its write
workflow_upsold        upsell                an `upsold` workflow completed its write
workflow_resolved      resolved (workflow)   a `resolved` workflow completed its write
feedback_resolved      resolved (confirmed)  the customer's latest feedback says it helped
confirmed_in_words     resolved (confirmed)  after an answer, the customer's last message thanks
                                             or confirms, and asks nothing
answered_then_left     resolved (assumed)    the agent's last reply answered from the knowledge
                                             and the customer asked nothing more
left_mid_workflow      abandoned             a workflow was still waiting on the customer
not_answered           unresolved            anything else

Only resolved, saved and upsell are billable. A provisional outcome settles once its window has
passed (`settle`): the reopen window after attribution, and for an assumed resolution the
assume window after the agent's last answer too. A customer who writes again in a conversation
closed as idle, inside the reopen window, reopens it and reverses its outcome. Evidence holds
the message ids, the workflow run and tool calls, the feedback and the rule, and the outcome
keeps a sha256 of the transcript as it was when attributed (appliance/billing/evidence.py).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import peewee

from appliance import metrics
from appliance.billing.chain import amount_text
from appliance.billing.contracts import ContractVersion, contract_at
from appliance.billing.evidence import transcript_sha256
from appliance.billing.ledger import EntryType, Ledger
from appliance.db.models import (
    Brand,
    Conversation,
    Feedback,
    Handoff,
    Message,
    Outcome,
    ToolCall,
    utcnow,
)
from appliance.workflows.state import WorkflowState

RESOLVED, SAVED, UPSELL = "resolved", "saved", "upsell"
ESCALATED, UNRESOLVED, ABANDONED = "escalated", "unresolved", "abandoned"
TYPES = (RESOLVED, SAVED, UPSELL, ESCALATED, UNRESOLVED, ABANDONED)
BILLABLE = frozenset({RESOLVED, SAVED, UPSELL})
CONFIRMED, WORKFLOW, ASSUMED = "confirmed", "workflow", "assumed"
PROVISIONAL, SETTLED, REVERSED = "provisional", "settled", "reversed"
#: How a conversation ended, as the evidence records it.
CLOSED_BY_CHANNEL, CLOSED_IDLE, HANDED_OFF = "closed", "idle", "handed_off"
#: The workflow outcomes that bill, and what they bill as.
_WORKFLOW_OUTCOMES = {"saved": (SAVED, None, "workflow_saved"),
                      "upsold": (UPSELL, None, "workflow_upsold"),
                      "resolved": (RESOLVED, WORKFLOW, "workflow_resolved")}
_WORKFLOW_DONE = "done"

#: A customer's message that thanks or confirms, and neither asks nor denies. Measured on
#: CLINC150's public `thank_you` phrasings and its other intents (docs/outcomes.md).
_CONFIRMS = re.compile(
    r"\b(thanks?|thank you|thankful|thx|ty|cheers|gracias|merci|danke|much obliged"
    r"|appreciat\w*|grateful|gratitude|that (helped|helps|solved it|worked|did it|answers it)"
    r"|(problem|issue) solved|perfect|great|awesome|excellent|brilliant|good job|got it"
    r"|all (good|set|sorted)|sorted|solved|resolved|makes sense|you('re| are) the best"
    r"|helped me|happy with)\b", re.I)
_NOT_CONFIRMING = re.compile(
    r"\?|\b(not|no|didn'?t|doesn'?t|isn'?t|still|but|however|if you|would|i need)\b"
    r"|^(how|what|when|where|why|which|who|can|could|do|does|is|are|will|would)\b", re.I)
#: Thanks that only looks like a denial.
_EMPHATIC_THANKS = re.compile(r"\b(can ?not|can'?t) thank you enough\b", re.I)

#: The slot (or workflow variable) in which an `upsold` workflow records the upsell's value.
UPSELL_VALUE = "upsell_value"


@dataclass(frozen=True)
class Windows:
    """How long an outcome stays open: the brand's contract sets these."""

    #: An answer the customer left without asking more counts after this long.
    assume_hours: float = 24.0
    #: A customer who returns within this long reverses the resolution.
    reopen_hours: float = 72.0

    @classmethod
    def of(cls, contract: ContractVersion | None) -> Windows:
        if contract is None:
            return cls()
        return cls(contract.terms.assume_resolved_after_hours,
                   contract.terms.reopen_window_hours)


def price(outcome: Outcome, contract: ContractVersion) -> Decimal:
    """What a billable outcome costs under `contract`: 0 for one that is not billable, and
    for an upsell whose value the workflow did not record."""
    terms = contract.terms
    if outcome.type == RESOLVED:
        return terms.price_per_resolution
    if outcome.type == SAVED:
        return terms.price_per_save
    if outcome.type == UPSELL:
        value = _slot_value((outcome.evidence.get("workflow") or {}).get("slots") or {})
        return (terms.upsell_share * value).quantize(Decimal("0.01")) if value > 0 else \
            Decimal(0)
    return Decimal(0)


@dataclass(frozen=True)
class Attribution:
    type: str
    how: str | None
    rule: str
    evidence: dict[str, Any] = field(default_factory=dict)
    #: For an assumed resolution: when the agent's last answer was sent.
    answered_at: dt.datetime | None = None


def confirms(text: str) -> bool:
    """Whether a customer's message thanks or confirms that the answer helped."""
    if _EMPHATIC_THANKS.search(text):
        return True
    return bool(_CONFIRMS.search(text)) and not _NOT_CONFIRMING.search(text)


def attribute(messages: Sequence[Message], state: WorkflowState, *, handoffs: Sequence[str],
              feedback: Feedback | None, writes: Sequence[ToolCall]) -> Attribution:
    """The outcome of a conversation from its record (see the module's table).

    `messages` in order; `handoffs` the public ids of its handoffs; `feedback` the latest;
    `writes` its successful calls of write tools, in order.
    """
    if handoffs:
        return Attribution(ESCALATED, None, "handed_off", {"handoffs": list(handoffs)})
    said = [m for m in messages if m.role == "customer"]
    if not said:
        return Attribution(ABANDONED, None, "greeting_only")
    given = _feedback_evidence(feedback)
    if feedback is not None and feedback.resolved is False:
        return Attribution(UNRESOLVED, None, "feedback_unresolved", given)
    finished = state.last
    if finished is not None and finished.status == _WORKFLOW_DONE and writes:
        billed = _WORKFLOW_OUTCOMES.get(finished.outcome or "")
        ran = [call for call in writes if call.workflow == finished.workflow]
        if billed is not None and ran:
            kind, how, rule = billed
            return Attribution(kind, how, rule, {
                "workflow": {"name": finished.workflow, "outcome": finished.outcome,
                             "slots": finished.slots},
                "tool_calls": [call.id for call in ran], **given})
    last_agent = next((m for m in reversed(messages) if m.role == "agent"), None)
    if feedback is not None and feedback.resolved:
        return Attribution(RESOLVED, CONFIRMED, "feedback_resolved", given)
    last_said = said[-1]
    answered = [m for m in messages if m.role == "agent" and m.citations
                and m.created_at <= last_said.created_at]
    if answered and confirms(last_said.text):
        return Attribution(RESOLVED, CONFIRMED, "confirmed_in_words",
                           {"messages": [answered[-1].public_id, last_said.public_id]})
    if last_agent is not None and last_agent.citations and last_agent.created_at >= \
            last_said.created_at:
        return Attribution(RESOLVED, ASSUMED, "answered_then_left",
                           {"messages": [last_said.public_id, last_agent.public_id],
                            "citations": [c.get("article") for c in last_agent.citations]},
                           answered_at=last_agent.created_at)
    if state.run is not None:
        return Attribution(ABANDONED, None, "left_mid_workflow",
                           {"workflow": {"name": state.run.workflow}})
    return Attribution(UNRESOLVED, None, "not_answered",
                       {"messages": [last_said.public_id]})


#: A workflow's funnel, as the reports count it: each stage is reached by every run that
#: reached the next.
STARTED, IDENTITY, CONFIRMED_STAGE, WRITTEN = 1, 2, 3, 4
STAGES = {STARTED: "started", IDENTITY: "identity", CONFIRMED_STAGE: "confirmed",
          WRITTEN: "written"}


def workflow_stage(state: WorkflowState, writes: Sequence[ToolCall]) -> tuple[str | None, int]:
    """The workflow the conversation ran last and how far it got (0 when none ran): started;
    the customer verified; the customer confirmed what it would do (a confirmed step, or the
    run finished done); a write tool of that workflow succeeded."""
    if state.run is not None:
        name, confirmed = state.run.workflow, bool(state.run.confirmed)
    elif state.last is not None:
        name, confirmed = state.last.workflow, state.last.status == _WORKFLOW_DONE
    else:
        return None, 0
    if any(call.workflow == name for call in writes):
        return name, WRITTEN
    if confirmed:
        return name, CONFIRMED_STAGE
    return name, IDENTITY if state.customer is not None else STARTED


def _cents(outcome_type: str, evidence: dict[str, Any]) -> int:
    """An upsell's recorded value in cents (0 for anything else, or a value not recorded)."""
    if outcome_type != UPSELL:
        return 0
    value = _slot_value((evidence.get("workflow") or {}).get("slots") or {})
    return int((value * 100).quantize(Decimal(1)))


def _slot_value(slots: dict[str, Any]) -> Decimal:
    try:
        value = Decimal(str(slots.get(UPSELL_VALUE, "0")))
    except InvalidOperation:
        return Decimal(0)
    return value if value > 0 else Decimal(0)


def _feedback_evidence(feedback: Feedback | None) -> dict[str, Any]:
    if feedback is None:
        return {}
    return {"feedback": {"id": feedback.id, "resolved": feedback.resolved,
                         "csat": feedback.csat}}


class OutcomeService:
    """Attributes, reverses and settles outcomes, and writes what they bill to the brand's
    ledger under the contract in force when each was attributed (a brand without a contract
    is billed nothing). `write_tools(brand)` names the brand's tools that write."""

    def __init__(self, db: peewee.Database, ledger: Ledger,
                 write_tools: Callable[[Brand], set[str]]) -> None:
        self._db = db
        self._ledger = ledger
        self._write_tools = write_tools

    def of(self, conversation: Conversation) -> Outcome | None:
        return Outcome.get_or_none(Outcome.conversation == conversation.id)

    def attribute(self, conversation: Conversation, ended: str,
                  now: dt.datetime | None = None) -> Outcome:
        """Attribute (or re-attribute, while provisional) `conversation`'s outcome. Call inside
        the transaction that ended it. A settled or reversed outcome is kept as it is."""
        now = now or utcnow()
        existing = self.of(conversation)
        if existing is not None and existing.state != PROVISIONAL:
            return existing
        brand = conversation.brand
        messages = list(Message.select().where(Message.conversation == conversation)
                        .order_by(Message.created_at, Message.id))
        handoffs = [h.public_id for h in Handoff.select(Handoff.public_id)
                    .where(Handoff.conversation == conversation).order_by(Handoff.id)]
        feedback = (Feedback.select().where(Feedback.conversation == conversation)
                    .order_by(Feedback.id.desc()).first())
        writes = list(ToolCall.select().where(
            (ToolCall.conversation == conversation) & (ToolCall.status == "ok")
            & ToolCall.tool.in_(sorted(self._write_tools(brand)) or [""])
        ).order_by(ToolCall.id))
        state = WorkflowState.from_json(conversation.state)
        found = attribute(messages, state, handoffs=handoffs, feedback=feedback, writes=writes)
        workflow, stage = workflow_stage(state, writes)
        contract = contract_at(brand, now)
        windows = Windows.of(contract)
        settles_at = now + dt.timedelta(hours=windows.reopen_hours)
        if found.answered_at is not None:
            settles_at = max(settles_at,
                             found.answered_at + dt.timedelta(hours=windows.assume_hours))
        values = {
            "type": found.type, "how": found.how, "state": PROVISIONAL,
            "evidence": {"rule": found.rule, "ended": ended, **found.evidence},
            "transcript_sha256": transcript_sha256(conversation),
            "attributed_at": now, "settles_at": settles_at, "rule": found.rule,
            "workflow": workflow, "stage": stage, "value_cents": _cents(found.type,
                                                                       found.evidence),
        }
        if existing is not None and (existing.type, existing.how) == (found.type, found.how):
            return existing  # the same outcome again: nothing new to record or bill
        if existing is not None:
            self._bill(existing, EntryType.REVERSAL, now, "attributed again")
            Outcome.update(values).where(Outcome.id == existing.id).execute()
            outcome: Outcome = Outcome.get_by_id(existing.id)
        else:
            outcome = Outcome.create(conversation=conversation, brand=conversation.brand_id,
                                     **values)
        self._bill(outcome, EntryType.PROVISIONAL, now)
        metrics.record_outcome(brand.slug, workflow, found.type)
        return outcome

    def _bill(self, outcome: Outcome, kind: EntryType, at: dt.datetime,
              reason: str | None = None) -> None:
        """Append what `outcome` bills to the ledger: provisional and settled at its price,
        a reversal at minus it. Nothing for an outcome that is not billable, or a brand
        without a contract when it was attributed. Call inside the outcome's transaction."""
        if outcome.type not in BILLABLE:
            return
        brand = outcome.conversation.brand
        contract = contract_at(brand, outcome.attributed_at)
        if contract is None:
            return
        amount = price(outcome, contract)
        body = {"outcome": outcome.type, "how": outcome.how,
                "rule": outcome.evidence.get("rule"), "contract_version": contract.version,
                "unit_price": amount_text(amount), "outcome_id": outcome.id,
                **({"reason": reason} if reason else {})}
        self._ledger.append(brand, kind, amount=-amount if kind == EntryType.REVERSAL else amount,
                            currency=contract.terms.currency, body=body,
                            conversation=outcome.conversation, at=at)

    def reverse(self, conversation: Conversation, reason: str,
                now: dt.datetime | None = None) -> Outcome | None:
        """Reverse a provisional outcome (the customer came back); None when there is none."""
        outcome = self.of(conversation)
        if outcome is None or outcome.state != PROVISIONAL:
            return None
        now = now or utcnow()
        with self._db.atomic():
            changed = (Outcome.update(state=REVERSED, reversed_at=now, reversal_reason=reason)
                       .where((Outcome.id == outcome.id) & (Outcome.state == PROVISIONAL))
                       .execute())
            if changed:
                self._bill(outcome, EntryType.REVERSAL, now, reason)
        return Outcome.get_by_id(outcome.id)

    def may_reopen(self, conversation: Conversation, now: dt.datetime | None = None) -> bool:
        """Whether a customer message may reopen this closed conversation: it was closed as
        idle, not by its channel, and its outcome is still provisional."""
        outcome = self.of(conversation)
        return (conversation.status_reason == CLOSED_IDLE and outcome is not None
                and outcome.state == PROVISIONAL and (now or utcnow()) < outcome.settles_at)

    def settle(self, now: dt.datetime | None = None) -> int:
        """Settle every provisional outcome whose window has passed; return how many. Running
        it twice, or on two nodes at once, settles each outcome once."""
        now = now or utcnow()
        due = (Outcome.select(Outcome.id).where((Outcome.state == PROVISIONAL)
                                                & (Outcome.settles_at <= now))
               .order_by(Outcome.id))
        settled = 0
        for row in list(due):
            # Each in its own transaction, moved only if still provisional: a second run, or
            # another node, finds it settled and bills nothing.
            with self._db.atomic():
                changed = (Outcome.update(state=SETTLED, settled_at=now)
                           .where((Outcome.id == row.id) & (Outcome.state == PROVISIONAL))
                           .execute())
                if changed:
                    self._bill(Outcome.get_by_id(row.id), EntryType.SETTLED, now)
                    settled += 1
        return settled

    def feedback(self, conversation: Conversation, *, resolved: bool | None, csat: int | None,
                 comment: str | None) -> Feedback:
        """Record the customer's feedback; the latest counts. On an ended conversation whose
        outcome is still provisional, the outcome is attributed again with it; a settled one
        keeps its outcome (the feedback stays on record for the reports)."""
        with self._db.atomic():
            last_agent = (Message.select().where((Message.conversation == conversation)
                                                 & (Message.role == "agent"))
                          .order_by(Message.created_at.desc(), Message.id.desc()).first())
            given = Feedback.create(conversation=conversation, resolved=resolved, csat=csat,
                                    comment=comment, message=last_agent)
            outcome = self.of(conversation)
            if outcome is not None and outcome.state == PROVISIONAL:
                self.attribute(conversation, outcome.evidence.get("ended", CLOSED_BY_CHANNEL))
        return given

    def list(self, brand: Brand, since: dt.datetime | None = None,
             until: dt.datetime | None = None) -> list[tuple[Outcome, str]]:
        """The brand's outcomes attributed in [since, until), oldest first, each with its
        conversation's public id."""
        query = (Outcome.select(Outcome, Conversation.public_id).join(Conversation)
                 .where(Outcome.brand == brand.id))
        if since is not None:
            query = query.where(Outcome.attributed_at >= since)
        if until is not None:
            query = query.where(Outcome.attributed_at < until)
        return [(row, row.conversation.public_id)
                for row in query.order_by(Outcome.attributed_at, Outcome.id)]


def outcome_json(outcome: Outcome, conversation_id: str, brand: Brand) -> dict[str, Any]:
    """An outcome as the API and the CLI show it, with what it bills (`amount` and
    `currency` under the brand's contract when it was attributed; None without one)."""

    def iso(value: dt.datetime | None) -> str | None:
        return None if value is None else value.isoformat(timespec="seconds") + "Z"

    contract = contract_at(brand, outcome.attributed_at)
    amount = None if contract is None else amount_text(price(outcome, contract))
    return {"conversation": conversation_id, "type": outcome.type, "how": outcome.how,
            "state": outcome.state, "billable": outcome.type in BILLABLE,
            "amount": amount, "currency": None if contract is None else contract.terms.currency,
            "evidence": outcome.evidence, "transcript_sha256": outcome.transcript_sha256,
            "attributed_at": iso(outcome.attributed_at), "settles_at": iso(outcome.settles_at),
            "settled_at": iso(outcome.settled_at), "reversed_at": iso(outcome.reversed_at),
            "reversal_reason": outcome.reversal_reason}
