"""A conversation's workflow state: the run in progress, the runs that finished, the verified
customer and what was said before any workflow started.

This module owns the shape saved in `Conversation.state` (a JSON column). Everything else
reads and changes the state through these types; `WorkflowState.from_json` reads every shape
saved so far (a missing key is its empty value, so older rows load), and `to_json` writes the
same keys back, so no row needs migrating:

    {"run": {"workflow", "version", "slots", "vars", "confirmed", "said", "looked_up",
             "written", "identity": {the same phase keys}, "texts", "asks",
             "prompt"?, "awaiting"?: {"step", "digest"}, "asked"?, "last_asked"?: {"prompt",
             "count"}}?,
     "history": [{"workflow", "status", "outcome", "reason", "slots"}],
     "customer_id"?, "assurance"?, "profile"?: {"tool", "args"},
     "values"?: {"customer": profile},
     "stale_profile"?, "loose": [texts], "offered_workflow"?, "failed_checks"?}

Keys marked ? are written only when set, as they always were. A customer saved before
`assurance` was kept was verified by contact details (email, or name + zip), the one way
there was: they load at that level.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

#: The saved key of the workflow offered after an answer (a yes starts it).
OFFERED = "offered_workflow"


def _dict(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key)
    return value if isinstance(value, list) else []


def _count(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key)
    return value if isinstance(value, int) and value > 0 else 0


def _text(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return None if value is None else str(value)


@dataclass
class PhaseState:
    """One workflow's progress within a run: its slot values, what its lookups saved and
    which of its steps are done (by step key `workflow:index`, with a digest of what was
    confirmed, said, looked up or written, so a changed detail does the step again)."""

    slots: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    confirmed: dict[str, str] = field(default_factory=dict)
    said: dict[str, str] = field(default_factory=dict)
    looked_up: dict[str, str] = field(default_factory=dict)
    written: dict[str, str] = field(default_factory=dict)

    @classmethod
    def _read(cls, raw: dict[str, Any]) -> dict[str, Any]:
        return {"slots": _dict(raw, "slots"), "vars": _dict(raw, "vars"),
                "confirmed": _dict(raw, "confirmed"), "said": _dict(raw, "said"),
                "looked_up": _dict(raw, "looked_up"), "written": _dict(raw, "written")}

    @classmethod
    def from_json(cls, raw: Any) -> PhaseState:
        return cls(**cls._read(raw if isinstance(raw, dict) else {}))

    def to_json(self) -> dict[str, Any]:
        return {"slots": self.slots, "vars": self.vars, "confirmed": self.confirmed,
                "said": self.said, "looked_up": self.looked_up, "written": self.written}


@dataclass(frozen=True)
class Awaiting:
    """The confirmation the customer was asked: its step and a digest of its text."""

    step: str
    digest: str


@dataclass(frozen=True)
class LastAsked:
    """The last question and how many turns in a row it was asked."""

    prompt: str | None
    count: int


@dataclass
class Run(PhaseState):
    """The workflow in progress. The identity workflow, when this one requires it, runs as a
    phase of it with its own `identity` progress."""

    workflow: str = ""
    #: The published version it started on (None after a switch).
    version: int | None = None
    identity: PhaseState = field(default_factory=PhaseState)
    #: The customer's recent messages in this request (details given before being asked).
    texts: list[str] = field(default_factory=list)
    #: How many times each slot was asked for.
    asks: dict[str, int] = field(default_factory=dict)
    #: The question waiting for an answer, the confirmation among them, and the slots it
    #: asked for.
    prompt: str | None = None
    awaiting: Awaiting | None = None
    asked: list[str] = field(default_factory=list)
    last_asked: LastAsked | None = None

    @classmethod
    def from_json(cls, raw: Any) -> Run:
        """The run saved as `raw` (see `saved`)."""
        awaiting, last = _dict(raw, "awaiting"), _dict(raw, "last_asked")
        version = raw.get("version")
        return cls(
            **cls._read(raw), workflow=str(raw["workflow"]),
            version=version if isinstance(version, int) else None,
            identity=PhaseState.from_json(raw.get("identity")),
            texts=[str(text) for text in _list(raw, "texts")], asks=_dict(raw, "asks"),
            prompt=_text(raw, "prompt"),
            awaiting=Awaiting(str(awaiting.get("step")), str(awaiting.get("digest")))
            if awaiting else None,
            asked=[str(name) for name in _list(raw, "asked")],
            last_asked=LastAsked(_text(last, "prompt"), int(last.get("count") or 0))
            if last else None)

    def to_json(self) -> dict[str, Any]:
        saved = {**super().to_json(), "workflow": self.workflow, "version": self.version,
                 "identity": self.identity.to_json(), "texts": self.texts, "asks": self.asks}
        if self.prompt is not None:
            saved["prompt"] = self.prompt
        if self.awaiting is not None:
            saved["awaiting"] = {"step": self.awaiting.step, "digest": self.awaiting.digest}
        if self.asked:
            saved["asked"] = self.asked
        if self.last_asked is not None:
            saved["last_asked"] = {"prompt": self.last_asked.prompt,
                                   "count": self.last_asked.count}
        return saved


@dataclass(frozen=True)
class FinishedRun:
    """A run that ended: how (the engine's status), its outcome or the reason it was handed
    off or switched, and the slots it had."""

    workflow: str
    status: str
    outcome: str | None = None
    reason: str | None = None
    slots: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FinishedRun:
        return cls(str(raw.get("workflow") or ""), str(raw.get("status") or ""),
                   _text(raw, "outcome"), _text(raw, "reason"), _dict(raw, "slots"))

    def to_json(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "status": self.status, "outcome": self.outcome,
                "reason": self.reason, "slots": self.slots}

    @property
    def ending(self) -> str:
        """Its outcome, or its status when it has none."""
        return self.outcome or self.status


@dataclass(frozen=True)
class ProfileCall:
    """The tool call that loaded the verified customer's profile (to load it again)."""

    tool: str
    args: dict[str, Any]


@dataclass
class Customer:
    """The customer verified in this conversation (one per conversation)."""

    id: str
    #: Their profile, as the brand's profile tool returned it (`customer` in expressions).
    profile: dict[str, Any] = field(default_factory=dict)
    lookup: ProfileCall | None = None
    #: How sure the agent is that they are who they say (an `appliance.identity.Assurance`
    #: label: contact, knowledge, one_time_code, asserted).
    assurance: str = "contact"

    @property
    def email(self) -> str | None:
        return _text(self.profile, "email")

    @property
    def name(self) -> str | None:
        """Their name as the profile gives it: a first and last name, or one string."""
        name = self.profile.get("name")
        if isinstance(name, dict):
            return " ".join(str(part) for part in (name.get("first_name"),
                                                   name.get("last_name")) if part) or None
        return str(name) if name else None


@dataclass
class WorkflowState:
    """A conversation's workflow state (see the module docstring for its saved shape)."""

    run: Run | None = None
    history: list[FinishedRun] = field(default_factory=list)
    customer: Customer | None = None
    #: A write may have changed the customer's profile: read it again next turn.
    stale_profile: bool = False
    #: The customer's messages since the last workflow ended (a new run starts with them).
    loose: list[str] = field(default_factory=list)
    #: The workflow offered after the last answer.
    offered: str | None = None
    #: Failed verifications in this conversation (the brand's policy locks out at a limit).
    failed_checks: int = 0

    @classmethod
    def from_json(cls, raw: Any) -> WorkflowState:
        """The state saved as `raw` (a dict of any shape saved so far, or None); the
        result shares nothing with `raw`."""
        if not isinstance(raw, dict):
            return cls()
        raw = copy.deepcopy(raw)
        return cls(
            run=Run.from_json(raw["run"]) if _is_run(raw.get("run")) else None,
            history=[FinishedRun.from_json(entry) for entry in _list(raw, "history")
                     if isinstance(entry, dict)],
            customer=_customer(raw), stale_profile=bool(raw.get("stale_profile")),
            loose=[str(text) for text in _list(raw, "loose")], offered=_text(raw, OFFERED),
            failed_checks=_count(raw, "failed_checks"))

    def to_json(self) -> dict[str, Any]:
        """What is saved; it shares nothing with this state."""
        saved: dict[str, Any] = {"history": [entry.to_json() for entry in self.history],
                                 "loose": self.loose}
        if self.run is not None:
            saved["run"] = self.run.to_json()
        if self.customer is not None:
            saved["customer_id"] = self.customer.id
            saved["assurance"] = self.customer.assurance
            saved["values"] = {"customer": self.customer.profile}
            if self.customer.lookup is not None:
                saved["profile"] = {"tool": self.customer.lookup.tool,
                                    "args": self.customer.lookup.args}
        if self.stale_profile:
            saved["stale_profile"] = True
        if self.offered is not None:
            saved[OFFERED] = self.offered
        if self.failed_checks:
            saved["failed_checks"] = self.failed_checks
        return copy.deepcopy(saved)

    @property
    def running(self) -> str | None:
        """The name of the workflow in progress."""
        return self.run.workflow if self.run is not None else None

    @property
    def customer_id(self) -> str | None:
        return self.customer.id if self.customer is not None else None

    @property
    def last(self) -> FinishedRun | None:
        """The run that finished last."""
        return self.history[-1] if self.history else None

    def values(self) -> dict[str, Any]:
        """What the state gives a workflow's expressions: the verified customer's profile."""
        return {"customer": self.customer.profile} if self.customer is not None else {}


def _is_run(run: Any) -> bool:
    """Whether `run` is a saved run (it names its workflow)."""
    return isinstance(run, dict) and bool(run.get("workflow"))


def _customer(raw: dict[str, Any]) -> Customer | None:
    if not raw.get("customer_id"):
        return None
    call = _dict(raw, "profile")
    return Customer(str(raw["customer_id"]), _dict(_dict(raw, "values"), "customer"),
                    ProfileCall(str(call["tool"]), _dict(call, "args"))
                    if call.get("tool") else None,
                    _text(raw, "assurance") or "contact")
