"""How each of a brand's workflows does with customers, read from its conversations' workflow
state (appliance/workflows/state.py): every finished run is in its history, its run is the one
in progress. The Studio's own test chats are left out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from appliance.agent.conversations import CLOSED
from appliance.db.models import Brand, Conversation
from appliance.workflows.engine import DONE, HANDOFF, STOPPED
from appliance.workflows.state import FinishedRun, WorkflowState

#: The channel of the Studio's test chats.
SANDBOX_CHANNEL = "studio"
#: The outcomes of a finished run that count as the customer's request resolved.
RESOLVED_OUTCOMES = ("resolved", "informed")


@dataclass
class Metrics:
    """One workflow's runs: resolved (done with a resolved or informed outcome), handed to a
    human, abandoned (the customer stopped or declined, or left the conversation mid-run)
    and still in progress."""

    runs: int = 0
    resolved: int = 0
    handed_off: int = 0
    abandoned: int = 0
    in_progress: int = 0

    @property
    def finished(self) -> int:
        return self.runs - self.in_progress

    @property
    def resolution_rate(self) -> float | None:
        """Resolved runs among the finished ones; None before any finished."""
        return self.resolved / self.finished if self.finished else None


def _count(metrics: Metrics, entry: FinishedRun) -> None:
    metrics.runs += 1
    status, outcome = entry.status, entry.outcome
    if status == DONE and outcome in RESOLVED_OUTCOMES:
        metrics.resolved += 1
    elif status == HANDOFF:
        metrics.handed_off += 1
    elif status == STOPPED or outcome == "abandoned":
        metrics.abandoned += 1


def workflow_metrics(brand: Brand) -> dict[str, Metrics]:
    """Metrics by workflow name (a workflow without runs is missing)."""
    found: defaultdict[str, Metrics] = defaultdict(Metrics)
    rows = (Conversation.select(Conversation.state, Conversation.status)
            .where((Conversation.brand == brand) & (Conversation.channel != SANDBOX_CHANNEL)
                   & Conversation.state.is_null(False)))
    for row in rows:
        state = WorkflowState.from_json(row.state)
        for entry in state.history:
            if entry.workflow:
                _count(found[entry.workflow], entry)
        if state.running:
            metrics = found[state.running]
            metrics.runs += 1
            if row.status == CLOSED:
                metrics.abandoned += 1
            else:
                metrics.in_progress += 1
    return dict(found)
