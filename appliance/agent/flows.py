"""Workflows in a turn: which workflow a message continues or starts, running it in the engine,
and what follows the knowledge's answer when a workflow is concerned (its question again after a
digression, or the offer to do what the customer asked about)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.agent.requests import asks_about_policy
from appliance.agent.supervisor import ESCALATE, Decision, understood
from appliance.brands import Policy, policy_of
from appliance.db.models import Brand, Conversation
from appliance.evals.cases import EVAL_CHANNEL
from appliance.llm.router import ModelRouter
from appliance.signals.base import Vectors
from appliance.signals.service import Signals
from appliance.workflows.engine import DONE, HANDOFF, KNOWLEDGE, Engine, TurnOutcome
from appliance.workflows.extract import affirmation, asks_for_information
from appliance.workflows.llm_extract import LlmExtractor
from appliance.workflows.schema import Toolset, ToolSpec, Workflow
from appliance.workflows.service import BrandWorkflows, Match, WorkflowService
from appliance.workflows.state import WorkflowState
from appliance.workflows.tools import ToolResult, ToolRunner

WORKFLOW = "workflow"
NO_TOOLS = Toolset(base_url="http://127.0.0.1")


class Flows:
    """The brand's workflows as a turn sees them."""

    def __init__(self, workflows: WorkflowService, router: ModelRouter) -> None:
        self._workflows = workflows
        # Workflow slots configured with `extractor: llm` are read by the extraction route.
        self._llm_extract = LlmExtractor(router) if "extraction" in router.tasks else None

    def flow(
        self, brand: Brand, conversation: Conversation, text: str, vector: Vectors | None,
        signals: Signals, override: BrandWorkflows | None,
        redact: Callable[[Any], Any] = lambda value: value,
    ) -> Flow | None:
        """The conversation's workflow engine and what the message would start, when the
        brand has workflows to run (`override`: a draft set, for the Studio's test chat)."""
        running = override or self._workflows.running(brand)
        if not running.workflows:
            return None
        policy = policy_of(brand)
        state = WorkflowState.from_json(conversation.state)
        # A brand without tools still runs workflows that only talk.
        toolset = running.toolset or NO_TOOLS
        # An eval's conversation acts on the brand's test systems, never production.
        base_url = (policy.evals.test_base_url if conversation.channel == EVAL_CHANNEL
                    and policy.evals.test_base_url else policy.tools_base_url)
        # The tool-call log keeps placeholders; the tools get the real values.
        caller = _ToolCaller(self._workflows.runner(
            brand, toolset, base_url, conversation.id, lambda: state.running, redact))
        engine = Engine(state, caller, conversation_id=conversation.public_id,
                        identity=running.identity, llm_extract=self._llm_extract,
                        workflows=running.workflows, formats=running.formats,
                        messages=policy.workflow_messages, identity_policy=policy.identity,
                        asserted=_asserted(conversation))
        current = state.running
        workflow = running.workflows.get(current) if current else None
        if current and workflow is None:
            state.run = None  # unpublished or disabled since: start afresh
        match = running.match(text, vector, signals.intent,
                              understood(signals, policy.supervision))
        return Flow(running, engine, state, workflow, match)

    def run(
        self, flow: Flow, text: str, grounded: bool, small_talk: bool, policy: Policy,
    ) -> tuple[Decision, TurnOutcome, WorkflowState] | Followup | None:
        """Run the turn in a workflow when one is running or the message starts one.

        Returns (decision, what the engine did, the new state); or what follows the
        knowledge's answer: the workflow's question again when the message is a question
        asked in the middle of it, or the offer to start a workflow when the message asks
        about what one does ("what is your return policy?"); or None when no workflow is
        concerned."""
        engine, match, workflow = flow.engine, flow.match, flow.workflow
        offered, flow.state.offered = flow.state.offered, None
        engine.remember(text)
        target = workflow or (flow.running.workflows[match.workflow] if match else None)
        refused = engine.refuse_third_party(text) or engine.refuse_other_customer(
            text, new_email=target is not None and not target.provides_identity and any(
                slot.type == "email" for slot in target.slots.values()))
        if refused is not None:
            return Decision(WORKFLOW, refused.reason or "other_customer", "reply",
                            {"workflow": refused.trace()}), refused, flow.state
        if workflow is not None and not flow.answers(text):
            if (match is not None and match.workflow != workflow.name and match.via == "example"
                    and not asks_for_information(text)):
                workflow = None  # a new request: the old one is dropped
            elif grounded and not small_talk:
                pending = engine.pending_prompt()
                lead = policy.workflow_messages.resume_lead
                return Followup(f"{lead} {pending}", "resumes_workflow",
                                workflow.name) if pending else None
        if workflow is None and offered in flow.running.workflows and _takes_offer(
                flow, offered, text, small_talk):
            workflow = flow.running.workflows[offered]
            engine.start(workflow, flow.running.versions.get(workflow.name))
        elif workflow is None:
            if match is None or (flow.running.workflows[match.workflow].provides_identity and (
                    engine.customer_id)):
                return None
            if grounded and asks_about_policy(text):
                # A question about what the workflow does: the knowledge answers, and the
                # agent offers to do it.
                target = flow.running.workflows[match.workflow]
                flow.state.offered = target.name
                offer = policy.workflow_offer_message.replace(
                    "{workflow}", target.title[:1].lower() + target.title[1:])
                return Followup(offer, "offers_workflow", target.name)
            workflow = flow.running.workflows[match.workflow]
            engine.start(workflow, flow.running.versions.get(workflow.name))
        outcome = engine.turn(workflow, text)
        evidence: dict[str, Any] = {"workflow": outcome.trace()}
        if match is not None:
            evidence["match"] = {"workflow": match.workflow, "score": round(match.score, 4),
                                 "via": match.via}
        if outcome.status == HANDOFF:
            return Decision(ESCALATE, outcome.reason or "workflow_handoff", "reply",
                            evidence), outcome, flow.state
        if outcome.status == KNOWLEDGE:
            return None
        rule = f"workflow_{'done' if outcome.status == DONE else outcome.status}"
        return Decision(WORKFLOW, rule, "reply", evidence), outcome, flow.state


def _asserted(conversation: Conversation) -> str | None:
    """The customer id the brand's site signed for this conversation (identity.py), if any."""
    customer = conversation.customer if isinstance(conversation.customer, dict) else {}
    identifier = customer.get("id") or customer.get("email")
    return str(identifier) if customer.get("assurance") == "asserted" and identifier else None


def _takes_offer(flow: Flow, offered: str, text: str, small_talk: bool) -> bool:
    """Whether the message takes up the workflow offered after the last answer: a yes, or
    what the workflow will need ("jo@example.com", "order #W2611340") rather than a new
    question or another request."""
    if affirmation(text):
        return True
    if small_talk or asks_about_policy(text):
        return False
    match = flow.match
    return match is None or match.workflow == offered or (
        flow.running.workflows[match.workflow].provides_identity)


@dataclass(frozen=True)
class Followup:
    """What follows the knowledge's answer in a turn a workflow is concerned with."""

    text: str
    #: Recorded on the turn's decision with the workflow's name: resumes_workflow (its
    #: question again after a digression) or offers_workflow (to do what was asked about).
    kind: str
    workflow: str


@dataclass
class Flow:
    """A turn's view of the conversation's workflows."""

    running: BrandWorkflows
    engine: Engine
    state: WorkflowState
    #: The workflow in progress, if any.
    workflow: Workflow | None
    #: The workflow the message would start.
    match: Match | None
    _answers: dict[str, bool] = field(default_factory=dict)

    def answers(self, text: str) -> bool:
        """Whether the message answers the running workflow (fills a slot, confirms, stops)."""
        if self.workflow is None:
            return False
        if text not in self._answers:
            self._answers[text] = self.engine.takes(self.workflow, text)
        return self._answers[text]


class _ToolCaller:
    """The engine's view of the brand's tools."""

    def __init__(self, runner: ToolRunner) -> None:
        self._runner = runner

    def spec(self, name: str) -> ToolSpec | None:
        return self._runner.toolset.get(name)

    def call(self, spec: ToolSpec, arguments: Mapping[str, Any],
             idempotency_key: str | None) -> ToolResult:
        return self._runner.call(spec, arguments, idempotency_key=idempotency_key)
