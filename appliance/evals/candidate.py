"""A candidate release tried out by the gate's own eval conversations, and by nothing else.

The release gate (gate.py) runs a draft (a workflow version, a knowledge version) through the
same turn pipeline as customers. The draft is swapped in only inside `trying(...)`, which the
gate holds while it runs its suites in its own thread, and only for conversations on the eval
channel of the candidate's brand: a customer's turn served meanwhile, in this process or
another, still runs what is published.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from appliance.db.models import Conversation, KnowledgeVersion
from appliance.evals.cases import EVAL_CHANNEL
from appliance.workflows.service import BrandWorkflows


@dataclass(frozen=True)
class Candidate:
    """What an eval conversation of `brand_id` runs in place of what is published: a set of
    workflows with the draft swapped in, and/or a knowledge version to answer from."""

    brand_id: int
    workflows: BrandWorkflows | None = None
    knowledge: KnowledgeVersion | None = None


_tried: ContextVar[Candidate | None] = ContextVar("release_candidate", default=None)


@contextmanager
def trying(candidate: Candidate) -> Iterator[None]:
    """Within the block (this thread or task only), eval conversations of the candidate's
    brand run the candidate."""
    token = _tried.set(candidate)
    try:
        yield
    finally:
        _tried.reset(token)


def candidate_for(conversation: Conversation) -> Candidate | None:
    """The candidate `conversation` runs: only an eval conversation of the candidate's brand,
    inside `trying`; None for every other conversation."""
    candidate = _tried.get()
    if (candidate is None or conversation.channel != EVAL_CHANNEL
            or conversation.brand_id != candidate.brand_id):
        return None
    return candidate
