"""Run scripted eval conversations against the live engine and the brand's real systems.

Each case starts from a fresh copy of the brand's test system (`POST <tools base>/reset`,
which the demo backend serves), runs its customer turns through the same turn pipeline as
the API, then checks the writes the agent made (from the tool-call log), the system's state
afterwards, what the agent said and how the workflow ended. `run_task` plays a τ-bench task
with the scripted customer (customer.py) and checks the system's exact end state.

Run as several trials, a case varies as it would with customers: the phrasing of its turns
(cases.py) and the models' sampling, each trial with its own sampling seed derived from the
run's seed, so a run can be repeated (scores.py turns the trials into pass^k).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from appliance.agent.conversations import PENDING_HUMAN, TurnResult
from appliance.brands import policy_of
from appliance.db.models import Brand, Conversation, Message
from appliance.errors import ConfigError
from appliance.evals.cases import EVAL_CHANNEL, EvalCase, EvalSuite, Expectation, Goal
from appliance.evals.customer import ScriptedCustomer, Task, gold_state, state_of
from appliance.evals.simulator import Customer, LlmCustomer, SimulatedCustomer, contradictions
from appliance.llm.base import sampling_seed
from appliance.services import Services
from appliance.workflows.state import WorkflowState
from appliance.workflows.tools import OK

__all__ = ["EVAL_CHANNEL", "CaseResult", "run_suites", "run_task", "say"]


@dataclass
class CaseResult:
    #: The suite's name: the workflow it tests, or its own (`knowledge`).
    workflow: str
    name: str
    problems: list[str] = field(default_factory=list)
    transcript: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    #: Which trial of the case this was (0: the case as written).
    trial: int = 0
    #: Why the case is quarantined (reported apart, never gating), if it is.
    quarantine: str | None = None
    #: A failed goal's simulated customer contradicted its goal: the failure is the
    #: simulator's, not the agent's.
    simulator_error: str | None = None

    @property
    def counts(self) -> bool:
        """Whether the result judges the agent: not quarantined, not the simulator's fault."""
        return self.quarantine is None and self.simulator_error is None

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "name": self.name, "trial": self.trial,
                "passed": self.passed, "quarantine": self.quarantine,
                "simulator_error": self.simulator_error, "problems": self.problems,
                "seconds": round(self.seconds, 3),
                "transcript": [list(turn) for turn in self.transcript]}


def trial_seed(seed: int, suite: str, case: str, trial: int) -> int:
    """The models' sampling seed for one trial of one case: the same for the same run seed,
    different between trials and cases."""
    return zlib.crc32(f"{seed}:{suite}:{case}:{trial}".encode())


def run_suites(services: Services, brand: Brand, suites: list[EvalSuite],
               progress: Callable[[CaseResult], None] | None = None, *,
               trials: int = 1, seed: int = 0) -> list[CaseResult]:
    """Every case of `suites`, `trials` times each (trial by trial, so an interrupted run
    has whole trials), against the brand's test system."""
    if trials < 1:
        raise ValueError("trials must be at least 1")
    toolset = services.workflows.toolset(brand)
    if toolset is None:
        raise ConfigError(f"brand {brand.slug!r} has no tools to evaluate workflows against")
    policy = policy_of(brand)
    base_url = (policy.evals.test_base_url or policy.tools_base_url
                or toolset.base_url).rstrip("/")
    writes = {tool.name for tool in toolset.tools if tool.writes}
    results = []
    with httpx.Client(base_url=base_url, timeout=30) as system:
        for trial in range(trials):
            for suite in suites:
                every: tuple[EvalCase | Goal, ...] = (*suite.cases, *suite.goals)
                for case in every:
                    with sampling_seed(trial_seed(seed, suite.name, case.name, trial)):
                        if isinstance(case, Goal):
                            result = _run_goal(services, brand, system, writes, suite.name,
                                               case, trial, seed)
                        else:
                            result = _run_case(services, brand, system, writes, suite.name,
                                               case, case.said(trial, seed), trial)
                    results.append(result)
                    if progress is not None:
                        progress(result)
    return results


def _start(services: Services, brand: Brand, system: httpx.Client, suite: str, name: str,
           trial: int) -> Conversation:
    """A fresh test system and a new eval conversation."""
    try:
        system.post("/reset").raise_for_status()
    except httpx.HTTPError as exc:
        raise ConfigError(f"the brand's test system cannot be reset at "
                          f"{system.base_url}/reset: {exc}") from exc
    conversation, _ = services.conversations.start(
        brand, {"eval": suite, "case": name, "trial": trial}, EVAL_CHANNEL)
    return conversation


def _run_case(services: Services, brand: Brand, system: httpx.Client, writes: set[str],
              suite: str, case: EvalCase, turns: list[str], trial: int) -> CaseResult:
    started = time.perf_counter()
    result = CaseResult(suite, case.name, trial=trial, quarantine=case.quarantine)
    conversation = _start(services, brand, system, suite, case.name, trial)
    for text in turns:
        reply, conversation = say(services, brand, conversation, text)
        result.transcript += [("customer", text), ("agent", reply)]
    _judge(services, brand, system, writes, case.expect, conversation, result)
    result.seconds = time.perf_counter() - started
    return result


def _run_goal(services: Services, brand: Brand, system: httpx.Client, writes: set[str],
              suite: str, goal: Goal, trial: int, seed: int) -> CaseResult:
    """Play `goal` with the simulated customer (the LLM one where a model is routed to
    `simulate`) and judge the end as a scripted case's; a failure the simulator caused is
    marked as its own."""
    started = time.perf_counter()
    result = CaseResult(suite, goal.name, trial=trial, quarantine=goal.quarantine)
    conversation = _start(services, brand, system, suite, goal.name, trial)
    customer = customer_for(services, goal, suite, trial, seed)
    text: str | None = customer.opening()
    while text is not None:
        reply, conversation = say(services, brand, conversation, text)
        result.transcript += [("customer", text), ("agent", reply)]
        if conversation.status == PENDING_HUMAN:
            break
        text = customer.answer(reply)
    _judge(services, brand, system, writes, goal.expect, conversation, result)
    if result.problems:
        mistakes = contradictions(goal, customer) + [
            f"had no answer to {question!r}" for question in customer.unanswered]
        result.simulator_error = "; ".join(mistakes) or None
    result.seconds = time.perf_counter() - started
    return result


def customer_for(services: Services, goal: Goal, suite: str, trial: int,
                 seed: int) -> Customer:
    """Who plays `goal` in this trial: the model routed to `simulate` where there is one
    (the GPU profile), else the deterministic simulated customer."""
    if "simulate" in services.router.tasks:
        return LlmCustomer(goal, services.router, trial_seed(seed, suite, goal.name, trial))
    return SimulatedCustomer(goal, seed=f"{seed}:{trial}")


def _judge(services: Services, brand: Brand, system: httpx.Client, writes: set[str],
           expect: Expectation, conversation: Conversation, result: CaseResult) -> None:
    """Add to `result.problems` each way the conversation missed `expect`: the writes made,
    the system's state, what the agent said and cited, and how it ended."""
    calls = reversed(services.workflows.tool_calls(brand, conversation.id))
    made = [(call.tool, call.arguments) for call in calls
            if call.tool in writes and call.status == OK]
    expected = [(w.tool, w.args) for w in expect.writes]
    if len(made) != len(expected) or any(
            tool != want_tool or not _contains(args, want_args)
            for (tool, args), (want_tool, want_args) in zip(made, expected, strict=False)):
        result.problems.append(f"writes: expected {expected}, made {made}")
    for path, want in expect.state.items():
        response = system.get(path)
        if response.status_code != 200 or not _contains(response.json(), want):
            result.problems.append(f"state {path}: expected {want}, got "
                                   f"{_excerpt(response, want)}")
    said = " ".join(text for role, text in result.transcript if role == "agent").lower()
    result.problems += [
        "never said " + " or ".join(map(repr, _alternatives(phrase))) for phrase in expect.says
        if not any(one.lower() in said for one in _alternatives(phrase))]
    result.problems += [f"said {phrase!r}" for phrase in expect.never_says
                        if phrase.lower() in said]
    if expect.cites:
        cited = _cited(conversation)
        result.problems += [f"never cited {source!r} (cited: {cited})" for source in expect.cites
                            if not any(source.lower() in title.lower() for title in cited)]
    if expect.declines:
        result.problems += _declined(brand, conversation, said)
    if expect.outcome is not None:
        ended = outcome_of(conversation.status, WorkflowState.from_json(conversation.state))
        if ended != expect.outcome:
            result.problems.append(f"outcome: expected {expect.outcome}, got {ended}")


def say(services: Services, brand: Brand, conversation: Conversation,
        text: str) -> tuple[str, Conversation]:
    """One customer turn through the API's turn pipeline: the agent's reply and the
    conversation as it is afterwards."""
    reply = ""
    for event in services.conversations.reply(brand, conversation.public_id, text):
        if isinstance(event, TurnResult):
            reply, conversation = event.text, event.conversation
    return reply, conversation


@dataclass
class TaskResult:
    """A τ-bench task played by the scripted customer: whether the order system ended
    exactly as the gold writes leave it."""

    index: int
    passed: bool
    writes: int
    transcript: list[tuple[str, str]] = field(default_factory=list)
    status: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.index, "passed": self.passed, "writes": self.writes,
                "status": self.status, "seconds": round(self.seconds, 3),
                "transcript": [list(turn) for turn in self.transcript]}


def run_task(services: Services, brand: Brand, system: httpx.Client, task: Task,
             max_turns: int = 24) -> TaskResult:
    """Play `task` with the scripted customer against the brand's agent and its order
    system (reset first), and compare the end state with the gold writes'."""
    started = time.perf_counter()
    expected = gold_state(system, task)  # leaves the system reset
    customer = ScriptedCustomer.for_task(task, system)
    conversation, _ = services.conversations.start(brand, {"tau_task": task.index},
                                                   EVAL_CHANNEL)
    result = TaskResult(task.index, False, len(task.writes))
    text: str | None = customer.opening()
    while text is not None and len(result.transcript) < 2 * max_turns:
        reply, conversation = say(services, brand, conversation, text)
        result.transcript += [("customer", text), ("agent", reply)]
        if conversation.status == PENDING_HUMAN:
            break
        text = customer.answer(reply)
    result.status = outcome_of(conversation.status, WorkflowState.from_json(conversation.state))
    result.passed = state_of(system, task.user_id) == expected
    result.seconds = time.perf_counter() - started
    return result


def outcome_of(status: str, state: WorkflowState) -> str:
    """How the conversation's last workflow ended: escalated when it went to a human,
    running when one is still in progress, else the last finished workflow's outcome."""
    if status == PENDING_HUMAN:
        return "escalated"
    if state.run is not None:
        return "running"
    return state.last.ending if state.last is not None else "none"


def _alternatives(phrase: str | tuple[str, ...]) -> tuple[str, ...]:
    return (phrase,) if isinstance(phrase, str) else phrase


def _declined(brand: Brand, conversation: Conversation, said: str) -> list[str]:
    """Why a reply to a question the agent must not answer was not a decline: a cited
    source, or no colleague offered nor reached."""
    problems = [f"answered from {source!r}" for source in _cited(conversation)]
    policy = policy_of(brand)
    offers = (policy.no_answer_message, policy.out_of_scope_message, policy.clarify_message,
              policy.handoff_message)
    if conversation.status != PENDING_HUMAN and not any(
            offer.lower() in said for offer in offers):
        problems.append("offered no colleague")
    return problems


def _cited(conversation: Conversation) -> list[str]:
    """The sources the agent's replies cite, each as its title and article key."""
    replies = Message.select(Message.citations).where(
        (Message.conversation == conversation.id) & (Message.role == "agent"))
    return [f"{citation.get('title')} ({citation.get('article')})"
            for reply in replies for citation in reply.citations or []]


def _contains(actual: Any, expected: Any) -> bool:
    """Whether `actual` holds everything in `expected`: dicts recursively, a list of plain
    values as the same values in any order (item ids: their order means nothing), other
    values equal."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and _contains(actual[key], value) for key, value in expected.items())
    if isinstance(expected, list) and isinstance(actual, list) and not any(
            isinstance(value, Mapping | list) for value in (*expected, *actual)):
        return sorted(map(str, actual)) == sorted(map(str, expected))
    return bool(actual == expected)


def _excerpt(response: httpx.Response, want: Any) -> Any:
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    data = response.json()
    if isinstance(want, Mapping) and isinstance(data, Mapping):
        return {key: data.get(key) for key in want}
    return data
