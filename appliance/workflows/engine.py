"""The workflow engine: a deterministic state machine per conversation.

Each turn the engine fills slots from the message (any slot of the running workflow, so
details given up front are used and a later message can correct one), then walks the
workflow's steps from the top. Steps whose work is done are passed over (a lookup with the
same arguments is not repeated, a write is done once, a message is said once), so the walk
stops at the first step that needs the customer: a question, or a confirmation. Walking from
the top on every turn is what makes corrections safe: change the order id and the lookups,
checks and confirmation that depended on it run again.

Guards, enforced here and not left to the definition:
- a tool runs only from a step of the running workflow that names it, and the workflow
  must list it in `tools`;
- a write runs only when the confirmation step before it was answered "yes" on the turn
  right after it was asked, for exactly the details it listed;
- tools that read account data need a customer verified at the level the workflow needs for
  reads (`identity.read`), writes the level it needs for writes (`identity.write`); a lower
  level walks the identity workflow again to ask for more (`identity.needed` in its
  expressions) before a confirmation is asked;
- a result that belongs to another customer (the tool's `owner` field) is refused: one
  customer per conversation; once verified, an identify step that finds another customer
  switches nothing, and a request about someone else's account is refused at any level.

The engine's state is a WorkflowState (state.py), saved with the turn as
`Conversation.state`. It knows no brand: the brand's slot formats (its toolset's `formats`)
say how its identifiers are written, and what the engine says outside the workflows'
templates is the brand's policy (`workflow_messages`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from appliance.brands import IdentityPolicy, WorkflowMessages
from appliance.workflows.expressions import ExpressionError, argument, evaluate, render
from appliance.workflows.extract import (
    EMAIL,
    NO_FORMATS,
    Formats,
    affirmation,
    extract,
    wants_to_stop,
)
from appliance.workflows.schema import LEVELS, IdentityNeeds, Slot, Step, ToolSpec, Workflow
from appliance.workflows.state import (
    Awaiting,
    Customer,
    FinishedRun,
    LastAsked,
    PhaseState,
    ProfileCall,
    Run,
    WorkflowState,
)
from appliance.workflows.tools import OK, REJECTED, ToolResult

log = logging.getLogger(__name__)

#: A slot asked this many times without an answer hands the conversation to a human.
MAX_ASKS = 3
#: Customer messages kept to read details given before they were asked for.
REMEMBERED_MESSAGES = 6
#: What the engine did with a turn.
WAITING, DONE, HANDOFF, KNOWLEDGE, STOPPED, REFUSED, SWITCHED = (
    "waiting", "done", "hand_off", "knowledge", "stopped", "refused", "switched")


#: Slot types replaced only when they are what the agent asked for: a later message naming
#: "the blue one" or a number is not a correction of them (and formats that say so).
_ANSWER_ONLY = frozenset({"first_name", "last_name", "text", "choice", "choices",
                          "variants", "number"})
_CHOICES = frozenset({"choice", "choices", "variants"})


def _rank(level: str | None) -> int:
    """A level's place among LEVELS, weakest first; -1 for none."""
    return LEVELS.index(level) if level in LEVELS else -1


def _depends_on(slot: Slot, name: str) -> bool:
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    return any(pattern.search(expression or "") for expression in (
        slot.options, slot.items, slot.products, slot.default))


#: Reads a slot with an LLM (see llm_extract.py): the value, validated, or None.
LlmExtract = Callable[[Slot, str, Mapping[str, Any], Formats], Any]


class ToolCaller(Protocol):
    """What the engine needs from the tool layer."""

    def spec(self, name: str) -> ToolSpec | None:
        """The brand's tool called `name`, if it defines one."""

    def call(self, spec: ToolSpec, arguments: Mapping[str, Any],
             idempotency_key: str | None) -> ToolResult:
        """Call it; never raises for the system's failures (see ToolResult.status)."""


@dataclass
class TurnOutcome:
    """What the engine did with one customer message."""

    status: str
    workflow: str
    messages: list[str] = field(default_factory=list)
    #: The step the walk stopped at (index and kind), for the trace.
    step: dict[str, Any] = field(default_factory=dict)
    #: For a finished workflow: its outcome; for a hand-off: the reason.
    outcome: str | None = None
    reason: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(message for message in self.messages if message)

    def trace(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "status": self.status, "step": self.step,
                "outcome": self.outcome, "reason": self.reason, "tools": self.tools,
                "filled": self.filled}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Stop(Exception):
    """Ends the walk of this turn with an outcome."""

    def __init__(self, status: str, reason: str | None = None, outcome: str | None = None):
        super().__init__(status)
        self.status, self.reason, self.outcome = status, reason, outcome


class _Restart(Exception):
    """A failed check cleared slots: walk again from the top."""


@dataclass
class _Phase:
    """One workflow being walked with its own slot values (the identity workflow runs as a
    phase before a workflow that requires identity)."""

    workflow: Workflow
    state: PhaseState

    @property
    def slots(self) -> dict[str, Any]:
        return self.state.slots

    @property
    def vars(self) -> dict[str, Any]:
        return self.state.vars


class Engine:
    """Runs a conversation's workflows. One instance per turn: it holds the turn's state."""

    def __init__(self, state: WorkflowState, tools: ToolCaller, *, conversation_id: str,
                 identity: Workflow | None, llm_extract: LlmExtract | None = None,
                 workflows: Mapping[str, Workflow] | None = None,
                 formats: Formats = NO_FORMATS,
                 messages: WorkflowMessages | None = None,
                 identity_policy: IdentityPolicy | None = None,
                 asserted: str | None = None) -> None:
        self.state = state
        #: The levels workflows need unless they declare their own, and what says a request
        #: is about someone else's account.
        self._identity_policy = identity_policy or IdentityPolicy()
        self._third_party = [re.compile(phrase, re.IGNORECASE)
                             for phrase in self._identity_policy.third_party_phrases]
        #: The customer id the brand's site signed for this conversation, if it did.
        self._asserted = asserted
        #: The level the identity workflow is walked for this turn (`identity.needed`).
        self._needed: str = self._identity_policy.read
        #: The workflow this turn runs (its levels decide what the identity phase reads).
        self._current: Workflow | None = None
        self._tools = tools
        #: How the brand writes its identifiers, and what the engine says in its name.
        self._formats = formats
        self._say = messages or WorkflowMessages()
        #: The brand's workflows, for a `switch` step to hand over to.
        self._workflows = workflows or {}
        #: For slots with `extractor: llm`, when the patterns find nothing in their answer.
        self._llm_extract = llm_extract
        self._conversation_id = conversation_id
        self._identity = identity
        #: This turn's message and the slots asked for before it (see _ask).
        self._text = ""
        self._asked: Sequence[str] = ()
        #: Values a check or a lookup refused this turn: not read again from old messages.
        self._rejected: dict[str, list[Any]] = {}

    # -- entry points ---------------------------------------------------------------------

    @property
    def running(self) -> str | None:
        return self.state.running

    @property
    def customer_id(self) -> str | None:
        return self.state.customer_id

    @property
    def _run(self) -> Run:
        """The run in progress, where the turn has one."""
        assert self.state.run is not None
        return self.state.run

    def remember(self, text: str) -> None:
        """Keep the message: a workflow that starts later, or asks later, reads what the
        customer already said ("hi, I'm jo@x.com" ... "cancel my order")."""
        run = self.state.run
        texts = run.texts if run is not None else self.state.loose
        texts.append(text)
        del texts[:-REMEMBERED_MESSAGES]

    def start(self, workflow: Workflow, version_id: int | None) -> None:
        """Start `workflow`; the messages since the last workflow ended come with it."""
        self.state.run = Run(workflow=workflow.name, version=version_id,
                             texts=self.state.loose)
        self.state.loose = []

    def pending_prompt(self) -> str | None:
        """The question the customer has not answered yet (to resume after a digression)."""
        run = self.state.run
        return run.prompt if run is not None else None

    def takes(self, workflow: Workflow, text: str) -> bool:
        """Whether the message is for the running workflow: it fills a slot, answers a
        confirmation or stops it. A message that is none of these may be a digression."""
        run = self.state.run or Run()
        if wants_to_stop(text) or (run.awaiting and affirmation(text) is not None):
            return True
        values = self._values(_Phase(workflow, run))
        asked = run.asked
        slots = self._slots_in_play(workflow)
        if self._llm_extract is not None and any(
                slots[name].extractor == "llm" for name in asked if name in slots):
            return True  # the model reads the answer to this question in the turn itself
        return any(extract(slot, text, values, asked=name in asked,
                           formats=self._formats) is not None
                   for name, slot in slots.items()
                   if name in asked or not slot.only_when_asked)

    def refuse_third_party(self, text: str) -> TurnOutcome | None:
        """A request about someone else's account ("my wife's card", "my friend's order") is
        refused whatever the level, with how the holder can reach the brand; the running
        workflow, if any, ends without doing anything."""
        if not any(pattern.search(text) for pattern in self._third_party):
            return None
        run = self.state.run
        outcome = TurnOutcome(REFUSED, run.workflow if run else "", reason="third_party")
        if run is None:
            outcome.messages.append(self._say.third_party)
            return outcome
        return self._finish(outcome, REFUSED, "informed", [self._say.third_party],
                            reason="third_party")

    def refuse_other_customer(self, text: str, *, new_email: bool = False) -> TurnOutcome | None:
        """Once a customer is verified, a message naming another account's email is refused:
        one customer per conversation. The running workflow, if any, waits as it was.
        `new_email`: the workflow the message is for takes an email of its own (a change of
        contact details), so an email is no other customer's."""
        customer = self.state.customer
        emails = {match.lower().rstrip(".") for match in EMAIL.findall(text)}
        if customer is None or not emails or new_email or emails == {
                (customer.email or "").lower()}:
            return None
        run = self.state.run or Run()
        outcome = TurnOutcome(REFUSED, run.workflow, reason="other_customer")
        outcome.messages.append(self._say.other_customer)
        if run.prompt:
            outcome.messages.append(run.prompt)
        return outcome

    def turn(self, workflow: Workflow, text: str, *, switched: bool = False) -> TurnOutcome:
        """Handle one customer message in the running workflow. `switched`: another workflow
        handed this one the message (at most once a turn)."""
        outcome = self._turn(workflow, text, switched=switched)
        return outcome if switched else self._without_loops(outcome)

    def _without_loops(self, outcome: TurnOutcome) -> TurnOutcome:
        """The agent never asks the same thing twice in a row the same way: a customer whose
        message changed nothing is asked differently, and one still stuck at the same
        confirmation goes to a human (`no_progress`; a slot's question hands off as
        `slot_not_understood` after MAX_ASKS)."""
        run = self.state.run
        if outcome.status != WAITING or run is None:
            return outcome
        # The same question again, the customer's message having changed nothing.
        last = run.last_asked or LastAsked(None, 0)
        same = last.prompt == run.prompt and not outcome.filled
        count = last.count + 1 if same else 1
        run.last_asked = LastAsked(run.prompt, count)
        if count == 1:
            return outcome
        if count > 2 and outcome.step.get("kind") != "ask":
            outcome.messages = [self._say.no_progress]
            return self._finish(outcome, HANDOFF, None, [], reason="no_progress")
        rephrased = self._say.rephrased
        outcome.messages.insert(0, rephrased[min(count - 2, len(rephrased) - 1)])
        return outcome

    def _turn(self, workflow: Workflow, text: str, *, switched: bool) -> TurnOutcome:
        run = self._run
        self._current = workflow
        outcome = TurnOutcome(WAITING, workflow.name)
        awaiting, asked = run.awaiting, run.asked
        run.awaiting, run.asked, run.prompt = None, [], None
        self._text, self._asked = text, asked
        if wants_to_stop(text):
            return self._finish(outcome, STOPPED, "abandoned", [self._say.stopped])
        phases = self._phases(workflow)
        for phase in phases:
            # A yes at a confirmation corrects nothing; a no may ("no, not the watch").
            reviewing = bool(awaiting) and affirmation(text) is not True
            outcome.filled += self._fill(phase, text, asked, reviewing=reviewing)
        if self.state.stale_profile:
            self.state.stale_profile = False
            self._refresh_profile(outcome)
        answer = affirmation(text) if awaiting else None
        if awaiting and answer is False and not outcome.filled:
            return self._finish(outcome, STOPPED, "abandoned", [self._say.declined])
        try:
            for phase in phases:
                if phase.workflow.provides_identity:
                    self._identify(phase, outcome, awaiting if answer else None,
                                   self._needs(workflow).read)
                    continue
                self._walk(phase, outcome, awaiting if answer else None)
        except ExpressionError as exc:
            # A template past its limits or unevaluable on these values: the definition's
            # fault, not the customer's. Say so plainly and hand off; the trace keeps why.
            log.warning("workflow %s: %s", workflow.name, exc.message)
            return self._finish(outcome, HANDOFF, None, [self._say.tool_failed],
                                reason="workflow_template_failed")
        except _Stop as stop:
            if stop.status == WAITING:
                return outcome
            if stop.status == SWITCHED and not switched:
                return self._switch(workflow, str(stop.reason), text, outcome)
            if stop.status == SWITCHED:
                stop = _Stop(HANDOFF, "workflow_loop")
            return self._finish(outcome, stop.status, stop.outcome,
                                [] if stop.status != DONE else [self._say.anything_else],
                                reason=stop.reason)
        return self._finish(outcome, DONE, workflow.outcome,
                            [self._say.how_can_i_help if workflow.provides_identity
                             else self._say.anything_else])

    # -- the walk ---------------------------------------------------------------------------

    def _phases(self, workflow: Workflow) -> list[_Phase]:
        run = self._run
        phases = []
        if workflow.requires_identity and self._identity is not None:
            phases.append(_Phase(self._identity, run.identity))
        phases.append(_Phase(workflow, run))
        return phases

    def _slots_in_play(self, workflow: Workflow) -> dict[str, Any]:
        slots = dict(workflow.slots)
        if workflow.requires_identity and self._identity is not None and not self._assured(
                self._needs(workflow).write):
            slots.update(self._identity.slots)
        return slots

    # -- identity levels --------------------------------------------------------------------

    def _needs(self, workflow: Workflow) -> IdentityNeeds:
        """The levels `workflow` needs: its own, or the brand's."""
        return workflow.identity or self._identity_policy

    @property
    def _level(self) -> str | None:
        customer = self.state.customer
        return customer.assurance if customer is not None else None

    def _assured(self, needed: str) -> bool:
        """Whether the customer is verified at `needed` or a stronger level."""
        return self.customer_id is not None and _rank(self._level) >= _rank(needed)

    def _identify(self, phase: _Phase, outcome: TurnOutcome, confirmed_now: Awaiting | None,
                  needed: str) -> None:
        """Walk the identity workflow until the customer is verified at `needed`: it reads
        the level as `identity.needed` (a one-time code on top of what the customer knows).
        A walk that ends short of it hands off."""
        if self._assured(needed):
            return
        self._unless_locked_out(outcome)
        self._needed = needed
        self._walk(phase, outcome, confirmed_now)
        if not self._assured(needed):
            raise _Stop(HANDOFF, "identity_insufficient")

    def _unless_locked_out(self, outcome: TurnOutcome) -> None:
        """A customer who failed verification as often as the brand allows is not asked
        again in this conversation: handed off, or told so, as the policy says."""
        policy = self._identity_policy
        if self.state.failed_checks < policy.max_failed_checks:
            return
        outcome.messages.append(self._say.identity_locked)
        if policy.when_locked == "hand_off":
            raise _Stop(HANDOFF, "identity_locked")
        raise _Stop(REFUSED, "identity_locked", outcome="informed")

    def _step_up(self, phase: _Phase, outcome: TurnOutcome,
                 confirmed_now: Awaiting | None) -> None:
        """Before a workflow's confirmation: a customer verified below the level its writes
        need is asked for more by the identity workflow first."""
        if phase.workflow.provides_identity or not phase.workflow.requires_identity:
            return
        needed = self._needs(phase.workflow).write
        if self._assured(needed):
            return
        if self._identity is None:
            raise _Stop(HANDOFF, "identity_required")
        self._identify(_Phase(self._identity, self._run.identity), outcome, confirmed_now,
                       needed)

    def _values(self, phase: _Phase) -> dict[str, Any]:
        identity = {"needed": self._needed, "level": self._level or "none",
                    "asserted": self._asserted}
        return {**self.state.values(), **phase.vars, **phase.slots,
                "limits": phase.workflow.limits, "identity": identity}

    def _fill(self, phase: _Phase, text: str, asked: Sequence[str], *,
              reviewing: bool) -> list[str]:
        """Read every slot from the message. Choices are replaced only when asked for or
        while the customer reviews a confirmation ("actually, the sneakers")."""
        if phase.workflow.provides_identity and self._assured(
                self._needs(self._current or phase.workflow).write):
            return []
        filled = []
        for name, slot in phase.workflow.slots.items():
            if slot.only_when_asked and name not in asked:
                continue
            current = phase.slots.get(name)
            held = current not in (None, "", []) and name not in asked and (
                self._answer_only(slot))
            # Reviewing a confirmation, the customer may correct a choice ("no, not the
            # watch") or a reason ("actually, I ordered it by mistake").
            if held and not (reviewing and slot.type in (*_CHOICES, "enum")):
                continue  # only replace these when they are what was asked
            value = extract(slot, text, self._values(phase), asked=name in asked,
                            current=current, formats=self._formats)
            if held and slot.type == "enum" and affirmation(str(value)) is not None:
                continue  # "no" declines the confirmation; it is no enum's new value
            if (value is None and slot.extractor == "llm" and name in asked
                    and self._llm_extract is not None):
                value = self._llm_extract(slot, text, self._values(phase), self._formats)
            if value is None or value == current:
                continue
            phase.slots[name] = value
            filled.append(name)
            # Slots read against this one (the new options of the chosen items) start over.
            for other, other_slot in phase.workflow.slots.items():
                if other != name and _depends_on(other_slot, name):
                    phase.slots.pop(other, None)
        return filled

    def _answer_only(self, slot: Slot) -> bool:
        slot_format = self._formats.get(slot.type)
        return slot.type in _ANSWER_ONLY or (
            slot_format is not None and slot_format.replaced_only_when_asked)

    def _walk(self, phase: _Phase, outcome: TurnOutcome,
              confirmed_now: Awaiting | None) -> None:
        for _ in range(4):
            try:
                self._walk_once(phase, outcome, confirmed_now)
                return
            except _Restart:
                continue
        raise _Stop(HANDOFF, "workflow_loop")

    def _walk_once(self, phase: _Phase, outcome: TurnOutcome,
                   confirmed_now: Awaiting | None) -> None:
        workflow, progress = phase.workflow, phase.state
        confirmed_in_walk = False
        for index, step in enumerate(workflow.steps):
            values = self._values(phase)
            if step.when and not evaluate(step.when, values):
                continue
            where = {"workflow": workflow.name, "index": index, "kind": step.kind}
            outcome.step = where
            key = f"{workflow.name}:{index}"
            match step.kind:
                case "ask":
                    self._ask(phase, step, values, outcome)
                case "lookup":
                    self._lookup(phase, step, values, key, outcome)
                case "check":
                    if not evaluate(step.check or "", values):
                        self._fail(phase, step, values, outcome, render(step.message or "",
                                                                        values))
                case "confirm":
                    self._step_up(phase, outcome, confirmed_now)
                    values = self._values(phase)
                    text = render(step.confirm or "", values)
                    digest = _digest(text)
                    done = progress.confirmed
                    if done.get(key) == digest:
                        confirmed_in_walk = True
                        continue
                    if confirmed_now == Awaiting(key, digest):
                        done[key] = digest
                        confirmed_in_walk = True
                        continue
                    confirmed_in_walk = False
                    self._wait(outcome, text, awaiting=Awaiting(key, digest))
                case "write":
                    if not confirmed_in_walk:
                        raise _Stop(HANDOFF, "write_without_confirmation")
                    self._write(phase, step, values, key, outcome)
                case "say":
                    text = render(step.say or "", values)
                    said = progress.said
                    if said.get(key) != _digest(text):
                        said[key] = _digest(text)
                        outcome.messages.append(text)
                case "record":
                    phase.slots.update(argument(dict(step.record or {}), values))
                case "identify":
                    self._verify(phase, step, values, outcome)
                    values = self._values(phase)
                case "answer":
                    raise _Stop(KNOWLEDGE, outcome=step.outcome or "informed")
                case "hand_off":
                    if step.message:
                        outcome.messages.append(render(step.message, values))
                    raise _Stop(HANDOFF, step.hand_off)
                case "switch":
                    if step.message:
                        outcome.messages.append(render(step.message, values))
                    raise _Stop(SWITCHED, step.switch)
                case "end":
                    if step.message:
                        outcome.messages.append(render(step.message, values))
                    raise _Stop(DONE, outcome=step.outcome or step.end or workflow.outcome)

    def _ask(self, phase: _Phase, step: Step, values: Mapping[str, Any],
             outcome: TurnOutcome) -> None:
        groups = [step.asks, *step.alternatives]

        def filled(slot: str) -> bool:
            return phase.slots.get(slot) not in (None, "", [])

        # Read what the customer said so far in this request, newest first, before asking:
        # details given up front are not lost, including those that can only be read now
        # (an order's items, once the order is looked up).
        texts = list(reversed(self._run.texts or [self._text]))
        for slot in (s for group in groups for s in group if not filled(s)):
            if phase.workflow.slots[slot].only_when_asked:
                continue  # only this turn's answer to it, which _fill read
            for text in texts:
                value = extract(phase.workflow.slots[slot], text, values,
                                asked=text == self._text and slot in self._asked,
                                formats=self._formats)
                if value is not None and value not in self._rejected.get(slot, ()):
                    phase.slots[slot] = value
                    break
        if any(all(filled(slot) for slot in group) for group in groups):
            return
        # Ask for what is missing from the set the customer has started on.
        best = max(groups, key=lambda group: sum(filled(slot) for slot in group))
        started = any(filled(slot) for slot in best)
        name = next(slot for slot in best if not filled(slot))
        run = self._run
        asks = run.asks
        asks[name] = asks.get(name, 0) + 1
        if asks[name] > MAX_ASKS:
            raise _Stop(HANDOFF, "slot_not_understood")
        template = phase.workflow.slots[name].prompt if started or not step.prompt else (
            step.prompt)
        prompt = render(template, values)
        run.asked = [slot for group in groups for slot in group]
        self._wait(outcome, prompt)

    def _wait(self, outcome: TurnOutcome, text: str,
              awaiting: Awaiting | None = None) -> None:
        """Say `text` and stop the walk until the customer answers it."""
        run = self._run
        if awaiting is not None:
            run.awaiting = awaiting
        run.prompt = text
        outcome.messages.append(text)
        raise _Stop(WAITING)

    def _fail(self, phase: _Phase, step: Step, values: Mapping[str, Any],
              outcome: TurnOutcome, message: str) -> None:
        if phase.workflow.provides_identity and step.on_fail == "reask":
            # A failed verification: counted for the conversation, whichever workflow asked.
            self.state.failed_checks += 1
            self._unless_locked_out(outcome)
        if message:
            outcome.messages.append(message)
        if step.on_fail == "hand_off":
            raise _Stop(HANDOFF, "policy_limit")
        if step.on_fail == "end":
            raise _Stop(DONE, outcome=step.outcome or "informed")
        for slot in step.clear:
            self._rejected.setdefault(slot, []).append(phase.slots.pop(slot, None))
        raise _Restart

    def _call(self, phase: _Phase, name: str, arguments: dict[str, Any],
              outcome: TurnOutcome, idempotency_key: str | None = None) -> ToolResult:
        # An argument whose expression gives nothing is not sent: a detail the customer did
        # not give ("{{ phone | default(None) }}") is no detail, not a null one.
        arguments = {key: value for key, value in arguments.items() if value is not None}
        spec = self._tools.spec(name)
        if spec is None or name not in phase.workflow.tools:
            raise _Stop(HANDOFF, "tool_not_allowed")
        if spec.requires_identity and not phase.workflow.provides_identity:
            needs = self._needs(phase.workflow)
            if not self._assured(needs.write if spec.writes else needs.read):
                raise _Stop(HANDOFF, "identity_required")
        result = self._tools.call(spec, arguments, idempotency_key)
        if result.ok:
            # Keys in the order the saved state will have them (sorted), so a confirmation
            # reads the same on the turn it is asked and on the turn it is answered.
            result = dataclasses.replace(result, data=json.loads(
                json.dumps(result.data, sort_keys=True)))
        if result.ok and spec.owner and self.customer_id:
            owner: Any = result.data
            for part in spec.owner.split("."):
                owner = owner.get(part) if isinstance(owner, Mapping) else None
            if owner != self.customer_id:
                result = ToolResult(name, REJECTED, http_status=result.http_status,
                                    code="not_owner", message=self._say.not_owner)
        outcome.tools.append({"tool": name, "status": result.status, "code": result.code,
                              "http_status": result.http_status, "writes": spec.writes,
                              "arguments": {k: ("***" if k in spec.redact else v)
                                            for k, v in arguments.items()}})
        return result

    def _lookup(self, phase: _Phase, step: Step, values: Mapping[str, Any], key: str,
                outcome: TurnOutcome) -> None:
        assert step.lookup and step.save_as
        if step.each:
            elements = evaluate(step.each, values) or []
            calls = [argument(step.args, {**values, "it": element}) for element in elements]
        else:
            calls = [argument(step.args, values)]
        digest = _digest(calls)
        cache = phase.state.looked_up
        if cache.get(key) == digest and step.save_as in phase.vars:
            return
        results = []
        for arguments in calls:
            result = self._call(phase, step.lookup, arguments, outcome)
            if result.status == OK:
                results.append(result.data)
                continue
            phase.vars.pop(step.save_as, None)
            cache.pop(key, None)
            if result.status == REJECTED:
                error = result.message.rstrip(".")
                self._fail(phase, step, {**values, "error": error}, outcome,
                           render(step.message or "{{ error }}.", {**values, "error": error}))
            outcome.messages.append(self._say.tool_failed)
            raise _Stop(HANDOFF, "tool_failure")
        phase.vars[step.save_as] = results if step.each else results[0]
        cache[key] = digest

    def _write(self, phase: _Phase, step: Step, values: Mapping[str, Any], key: str,
               outcome: TurnOutcome) -> None:
        assert step.write
        arguments = argument(step.args, values)
        digest = _digest(arguments)
        done = phase.state.written
        if done.get(key) == digest:
            return
        # The same write asked again in a later request of the conversation (a second
        # referral for the same card) is a new write: the key names the request by how many
        # runs ended before it. A retried turn has the same state, so the same key.
        idempotency_key = f"{self._conversation_id}:{len(self.state.history)}:{key}:{digest}"
        result = self._call(phase, step.write, arguments, outcome, idempotency_key)
        if result.status == OK:
            done[key] = digest
            if step.save_as:
                phase.vars[step.save_as] = result.data
            # A write may change the profile (a refund back on a gift card): read it again
            # before the next turn relies on it.
            self.state.stale_profile = True
            return
        if result.status == REJECTED:
            error = result.message.rstrip(".")
            message = (render(step.message, {**values, "error": error}) if step.message
                       else self._say.write_rejected.replace("{error}", error))
            outcome.messages.append(message)
            raise _Stop(DONE, outcome="informed")
        outcome.messages.append(self._say.tool_failed)
        raise _Stop(HANDOFF, "tool_failure")

    def _verify(self, phase: _Phase, step: Step, values: Mapping[str, Any],
                outcome: TurnOutcome) -> None:
        customer_id = render(step.identify or "", values)
        if not customer_id:
            raise _Stop(HANDOFF, "identity_not_found")
        # Before the profile is read: nothing of another customer is fetched.
        level: str = step.assurance
        if level == "asserted" and customer_id != self._asserted:
            # Only the id the brand's site signed is asserted.
            raise _Stop(HANDOFF, "identity_not_asserted")
        known = self.state.customer
        if known is not None and known.id != customer_id:
            # Another customer's details never switch the conversation's customer.
            outcome.messages.append(self._say.other_customer)
            raise _Stop(REFUSED, "other_customer", outcome="informed")
        assert step.profile
        arguments = argument(step.args, values)
        result = self._call(phase, step.profile, arguments, outcome)
        if result.status != OK:
            outcome.messages.append(self._say.tool_failed)
            raise _Stop(HANDOFF, "tool_failure")
        if known is not None and _rank(known.assurance) > _rank(level):
            level = known.assurance
        self.state.customer = Customer(customer_id, _profile(result),
                                       ProfileCall(step.profile, arguments), level)
        if step.message:
            outcome.messages.append(render(step.message, {**values,
                                                          "customer": result.data}))

    def _switch(self, workflow: Workflow, name: str, text: str,
                outcome: TurnOutcome) -> TurnOutcome:
        """Hand the request to workflow `name` (an exchange asked of an order that has not
        shipped goes to the item change): it starts with the slots the two share and the
        request's messages, and takes this message."""
        target = self._workflows.get(name)
        if target is None:
            return self._finish(outcome, HANDOFF, None, [], reason="workflow_not_found")
        run = self._run
        self.state.history.append(FinishedRun(workflow.name, SWITCHED, None, name, run.slots))
        self.state.run = Run(
            workflow=name, version=None, texts=run.texts, identity=run.identity,
            slots={slot: value for slot, value in run.slots.items() if slot in target.slots})
        after = self.turn(target, text, switched=True)
        after.messages[:0] = outcome.messages
        after.tools[:0] = outcome.tools
        return after

    def _refresh_profile(self, outcome: TurnOutcome) -> None:
        """Load the verified customer's profile again, with the call that verified them."""
        customer = self.state.customer
        if customer is None or customer.lookup is None or self._identity is None:
            return
        phase = _Phase(self._identity, PhaseState())
        result = self._call(phase, customer.lookup.tool, customer.lookup.args, outcome)
        if result.status == OK:
            customer.profile = _profile(result)

    def _finish(self, outcome: TurnOutcome, status: str, result: str | None,
                messages: list[str], reason: str | None = None) -> TurnOutcome:
        outcome.status, outcome.outcome, outcome.reason = status, result, reason or outcome.reason
        outcome.messages.extend(messages)
        run, self.state.run = self.state.run, None
        self.state.history.append(FinishedRun(outcome.workflow, status, result, outcome.reason,
                                              run.slots if run is not None else {}))
        return outcome


def _profile(result: ToolResult) -> dict[str, Any]:
    """The customer's profile from the profile tool's answer (an object)."""
    return result.data if isinstance(result.data, dict) else {}
