"""What the transcript shows of each agent turn: the supervisor's decision and the evidence
behind it, the signals read from the customer's message and the models that read them, the
reply model, and where the time went.

Traces are stored JSON written by several versions of the agent; `turn_view` reads what is
there and leaves out what an older trace lacks (no signals, no evidence, fewer stages).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.agent.conversations import CANNED_MODEL, TEMPLATE_MODEL
from appliance.agent.supervisor import ESCALATE
from appliance.db.models import TurnTrace
from appliance.signals.service import HUMAN_REQUEST, INTENT, SENTIMENT, Signals

#: Latency stages in the order a turn runs them (see ConversationService._turn); `prepare`
#: spans embed, signals and retrieval.
LATENCY_STAGES = (
    "embed", "signals", "retrieval", "prepare", "ttft", "llm", "persist", "overhead", "total")
#: Evidence keys holding the bar a rule compared a signal with, not the signal's value.
THRESHOLD_KEYS = frozenset({"threshold", "min", "turns", "escalate_on_degraded"})
#: How a decision's router task reads to a person.
TASKS = {"reply": "small model first", "reply_large": "large model", "": "no model"}


@dataclass(frozen=True)
class Evidence:
    key: str
    value: str
    #: A threshold (or other bar) the rule compared with, rather than a signal's value.
    threshold: bool


@dataclass(frozen=True)
class SignalRow:
    """One signal as read from the message: its reading and the model version that read it."""

    name: str
    #: The model version (name@sha12), or None when no model read this signal.
    model: str | None
    reading: str
    #: Runner-up labels with their probabilities (intents only).
    runners_up: tuple[tuple[str, str], ...] = ()
    flag: str | None = None


@dataclass(frozen=True)
class TurnView:
    trace: TurnTrace
    action: str
    rule: str
    #: The router task as a person reads it; None on traces from before the supervisor.
    task: str | None
    escalated: bool
    #: The reply came from a fallback model (the preferred one failed or was skipped).
    fallback: bool
    #: The supervisor handed off because a fallback answered (brand policy).
    degraded: bool
    #: A template or canned reply: no model phrased it.
    templated: bool
    evidence: tuple[Evidence, ...]
    failed: tuple[tuple[str, str], ...]
    error: str | None
    ungrounded: tuple[str, ...]
    #: None for traces written before signals were read.
    signals: tuple[SignalRow, ...] | None
    signals_ms: float | None
    latency: tuple[tuple[str, float | None], ...]

    @property
    def total_ms(self) -> float:
        return dict(self.latency).get("total") or 0.0


def number(value: object) -> str:
    """A score, probability or threshold as a person reads it: at most four decimals."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.1f}"
    if isinstance(value, list | tuple):
        return " → ".join(number(item) for item in value)
    return str(value)


def turn_view(trace: TurnTrace) -> TurnView:
    decision: Mapping[str, Any] = trace.decision if isinstance(trace.decision, dict) else {}
    action = str(decision.get("action") or "")
    rule = str(decision.get("rule") or "")
    evidence = decision.get("evidence")
    task = decision.get("task")
    return TurnView(
        trace=trace, action=action, rule=rule,
        task=TASKS.get(task, task) if isinstance(task, str) else None,
        escalated=action == ESCALATE, fallback=bool(trace.fallback),
        degraded=rule == "degraded_answer",
        templated=trace.model in (TEMPLATE_MODEL, CANNED_MODEL),
        evidence=tuple(
            Evidence(str(key), number(value), key in THRESHOLD_KEYS)
            for key, value in (evidence.items() if isinstance(evidence, dict) else ())),
        failed=tuple((str(pair[0]), str(pair[1])) for pair in decision.get("failed") or ()
                     if isinstance(pair, list | tuple) and len(pair) == 2),
        error=str(decision["error"]) if decision.get("error") else None,
        ungrounded=tuple(str(line) for line in decision.get("ungrounded") or ()),
        signals=_signal_rows(trace.signals),
        signals_ms=_float(trace.signals.get("latency_ms"))
        if isinstance(trace.signals, dict) else None,
        latency=_latency(trace.latency_ms if isinstance(trace.latency_ms, dict) else {}),
    )


def turn_views(traces: Sequence[TurnTrace]) -> dict[int, TurnView]:
    """Each trace's view by the id of the agent message it explains."""
    return {trace.agent_message_id: turn_view(trace) for trace in traces}


def _signal_rows(data: object) -> tuple[SignalRow, ...] | None:
    if not isinstance(data, dict) or not data:
        return None
    signals = Signals.from_trace(data)
    models = signals.models
    if INTENT in models and signals.unclear:
        # Below the brand's threshold: shown as unclear, never by the label it guessed.
        intent = SignalRow("intent", models[INTENT],
                           f"unclear ({number(signals.intent_confidence)})", (),
                           "out of scope" if signals.out_of_scope else None)
    elif INTENT in models and signals.intent is not None:
        intent = SignalRow(
            "intent", models[INTENT], f"{signals.intent} ({number(signals.intent_confidence)})",
            tuple((label, number(p)) for label, p in signals.intent_top
                  if label != signals.intent),
            "out of scope" if signals.out_of_scope else None)
    else:
        intent = SignalRow("intent", None, "no intent model for this brand")
    sentiment = SignalRow("sentiment", None, "not read")
    if SENTIMENT in models:
        sentiment = SignalRow("sentiment", models[SENTIMENT],
                              f"{signals.sentiment}, frustration {number(signals.frustration)}")
    human = SignalRow("human request", None, "not read")
    if HUMAN_REQUEST in models:
        human = SignalRow("human request", models[HUMAN_REQUEST], number(signals.human_request))
    return intent, sentiment, human


def _latency(stages: Mapping[str, Any]) -> tuple[tuple[str, float | None], ...]:
    """Every known stage (None where this turn did not run it), then any others recorded."""
    extra = sorted(key for key in stages if key not in LATENCY_STAGES)
    return tuple((stage, _float(stages.get(stage))) for stage in (*LATENCY_STAGES, *extra))


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
