"""Reporting: what the agent achieved per brand (or box-wide) over a date range, computed with
SQL aggregates so it scales to millions of conversations on SQLite and PostgreSQL.

The admin dashboard, `GET /v1/metrics/summary` and `appliance report` all call `summary`; the
admin's conversation list calls `conversations` with the same `Selection` a figure was counted
with, so every number links to exactly the conversations behind it.

What is counted (docs/reporting.md): the conversations created in the range, on every channel
but the Studio's and the evals' test chats. A conversation has ended when it has an outcome
that was not reversed; the rest are open. Involved: ended conversations in which the customer
wrote (every outcome but `greeting_only`). Rates:

rate          numerator                              denominator
involvement   involved                               ended
resolution    resolved + saved + upsell              involved
confirmed,    resolved that way                      involved
assumed,
workflow
deflection    involved - escalated                   involved
escalation    escalated                              involved
abandonment   abandoned                              ended
automation    involvement x resolution

CSAT counts each conversation's latest rating. A workflow's funnel counts the workflow each
ended conversation ran last, by the furthest stage it reached (appliance/outcomes.py,
`workflow_stage`). Money comes from the ledger and the invoice service, never priced again:
`billed` is what the range's outcomes bill, net of reversals; `billable_this_period` the open
invoice of the month the range ends in.

`unanswered` groups the customers' messages the agent could not answer (nothing in the
knowledge, asked to rephrase, out of scope) by meaning: the newest of the range are embedded
and clustered (average-linkage agglomerative clustering on cosine distance), so the CX team
sees which questions to add to the knowledge, biggest first, each with example conversations.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import operator
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

import numpy as np
import peewee
from peewee import JOIN, fn
from sklearn.cluster import AgglomerativeClustering

from appliance.agent.supervisor import CLARIFY, NO_ANSWER, OUT_OF_SCOPE
from appliance.billing.contracts import contract_at
from appliance.billing.invoices import InvoiceService
from appliance.billing.ledger import Ledger, naive_utc
from appliance.db.models import (
    Brand,
    Conversation,
    Feedback,
    Handoff,
    Message,
    Outcome,
    TurnTrace,
    utcnow,
)
from appliance.errors import InvalidRequest
from appliance.outcomes import (
    ABANDONED,
    ASSUMED,
    BILLABLE,
    CONFIRMED,
    ESCALATED,
    RESOLVED,
    REVERSED,
    STAGES,
    TYPES,
    WORKFLOW,
)
from appliance.signals.base import Embedder

#: The supervisor's actions that leave a customer's message unanswered.
UNANSWERED = (NO_ANSWER, CLARIFY, OUT_OF_SCOPE)
#: The newest unanswered messages of a range that are clustered.
UNANSWERED_SAMPLE = 500
#: Cosine distance under which two groups of messages ask the same thing (average linkage):
#: rephrasings of one question fall under it, neighbouring topics above it.
SAME_QUESTION = 0.3
#: Groups a report lists, and example conversations per group.
TOP_QUESTIONS = 10
EXAMPLES = 5
#: The channels of test chats (the Studio's sandbox, eval runs), never reported.
TEST_CHANNELS = ("studio", "eval")
#: The longest range a report covers.
MAX_RANGE = dt.timedelta(days=366)
#: The range when none is given: the last 30 days.
DEFAULT_RANGE = dt.timedelta(days=30)
GROUPS = ("day", "workflow")
#: What `Selection.outcome` takes besides an outcome type.
_SETS = ("open", "ended", "involved")
#: The rule of a conversation in which the customer never wrote.
_NOT_INVOLVED = "greeting_only"
#: How many handoff reasons a report lists.
TOP_REASONS = 10
#: The group of conversations that ran no workflow.
NO_WORKFLOW = "none"


def _parse_time(name: str, raw: str) -> tuple[dt.datetime, bool]:
    """`raw` as naive UTC, and whether it was a bare date."""
    try:
        return dt.datetime.combine(dt.date.fromisoformat(raw), dt.time()), True
    except ValueError:
        pass
    try:
        return naive_utc(dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))), False
    except ValueError:
        raise InvalidRequest(f"{name}: not an ISO 8601 date or time", param=name) from None


@dataclass(frozen=True)
class DateRange:
    """[since, until), naive UTC."""

    since: dt.datetime
    until: dt.datetime

    @classmethod
    def parse(cls, since: str | None, until: str | None,
              now: dt.datetime | None = None) -> DateRange:
        """The range of two ISO 8601 dates or times. A bare date as `until` includes that
        whole day. Defaults: until now, since 30 days before `until`. InvalidRequest naming
        the parameter for a bad value, `since` after `until`, or a range over a year."""
        end = naive_utc(now or utcnow())
        if until:
            end, whole_day = _parse_time("until", until)
            end += dt.timedelta(days=1) if whole_day else dt.timedelta()
        start = _parse_time("since", since)[0] if since else end - DEFAULT_RANGE
        if start > end:
            raise InvalidRequest("since: after until", param="since", code="invalid_range")
        if end - start > MAX_RANGE:
            raise InvalidRequest("until: the range is over a year (366 days at most)",
                                 param="until", code="invalid_range")
        return cls(start, end)

    @property
    def period(self) -> str:
        """The invoice month (`YYYY-MM`) the range ends in."""
        return (self.until - dt.timedelta(microseconds=1)).strftime("%Y-%m")

    def days(self) -> Iterator[DateRange]:
        """Each UTC day the range touches, clipped to it."""
        day = self.since.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < self.until:
            following = day + dt.timedelta(days=1)
            yield DateRange(max(day, self.since), min(following, self.until))
            day = following

    def query(self) -> dict[str, str]:
        """The range as query parameters that parse back to it."""
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}


@dataclass(frozen=True)
class Selection:
    """Which of the range's conversations a figure counts (each field narrows it)."""

    #: An outcome type, "open" (no outcome, or a reversed one), "ended" or "involved".
    outcome: str | None = None
    #: For resolutions: confirmed, assumed or workflow.
    how: str | None = None
    #: The workflow the conversation ran last ("none": no workflow).
    workflow: str | None = None
    #: That workflow reached at least this funnel stage (1 to 4).
    stage: int | None = None
    #: It was handed off for this reason.
    reason: str | None = None
    #: Its latest rating.
    csat: int | None = None

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> Selection:
        """The selection named by query parameters; InvalidRequest naming a bad one."""
        def choice(name: str, allowed: Sequence[str]) -> str | None:
            value = args.get(name) or None
            if value is not None and value not in allowed:
                raise InvalidRequest(f"{name}: one of {', '.join(allowed)}", param=name)
            return value

        def number(name: str, allowed: range) -> int | None:
            value = choice(name, [str(n) for n in allowed])
            return int(value) if value is not None else None

        def text(name: str) -> str | None:
            value = args.get(name) or None
            if value is not None and len(value) > 64:
                raise InvalidRequest(f"{name}: 64 characters at most", param=name)
            return value

        return cls(outcome=choice("outcome", (*TYPES, *_SETS)),
                   how=choice("how", (CONFIRMED, ASSUMED, WORKFLOW)),
                   workflow=text("workflow"), stage=number("stage", range(1, len(STAGES) + 1)),
                   reason=text("reason"), csat=number("csat", range(1, 6)))

    def query(self) -> dict[str, str]:
        return {name: str(value) for name, value in vars(self).items() if value is not None}


@dataclass
class Figures:
    """The counts of a set of conversations, and the rates derived from them."""

    conversations: int = 0
    ended: int = 0
    involved: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    resolutions: Counter[str] = field(default_factory=Counter)
    upsell_cents: int = 0

    @property
    def open(self) -> int:
        return self.conversations - self.ended

    @property
    def resolved(self) -> int:
        """Resolutions of every kind: resolved, saved and upsold."""
        return sum(self.outcomes[kind] for kind in BILLABLE)

    def add(self, outcome: str | None, how: str | None, rule: str | None, count: int,
            cents: int) -> None:
        self.conversations += count
        if outcome is None:
            return
        self.ended += count
        self.involved += count if rule != _NOT_INVOLVED else 0
        self.outcomes[outcome] += count
        if outcome == RESOLVED and how:
            self.resolutions[how] += count
        self.upsell_cents += cents

    def merge(self, other: Figures) -> None:
        """Add `other`'s counts to these."""
        self.conversations += other.conversations
        self.ended += other.ended
        self.involved += other.involved
        self.outcomes.update(other.outcomes)
        self.resolutions.update(other.resolutions)
        self.upsell_cents += other.upsell_cents

    def rates(self) -> dict[str, float | None]:
        def ratio(part: int, whole: int) -> float | None:
            return round(part / whole, 4) if whole else None

        involved, ended = self.involved, self.ended
        involvement, resolution = ratio(involved, ended), ratio(self.resolved, involved)
        return {
            "involvement": involvement, "resolution": resolution,
            **{how: ratio(self.resolutions[how], involved)
               for how in (CONFIRMED, ASSUMED, WORKFLOW)},
            "deflection": ratio(involved - self.outcomes[ESCALATED], involved),
            "escalation": ratio(self.outcomes[ESCALATED], involved),
            "abandonment": ratio(self.outcomes[ABANDONED], ended),
            "automation": None if involvement is None or resolution is None
            else round(involvement * resolution, 4),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "conversations": self.conversations, "open": self.open, "ended": self.ended,
            "involved": self.involved,
            "outcomes": {kind: self.outcomes[kind] for kind in TYPES},
            "resolutions": {how: self.resolutions[how] for how in (CONFIRMED, ASSUMED, WORKFLOW)},
            "upsell_value": _money(Decimal(self.upsell_cents) / 100),
            "rates": self.rates(),
        }


@dataclass(frozen=True)
class Funnel:
    workflow: str
    #: How many runs reached each stage, started first.
    stages: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        return {"workflow": self.workflow,
                **{name: count for name, count in zip(STAGES.values(), self.stages, strict=True)}}


@dataclass(frozen=True)
class Billing:
    """A brand's money over the range, from the ledger and the invoice service."""

    currency: str
    billed: Decimal
    period: str
    billable_this_period: Decimal
    human_cost_per_contact: Decimal
    resolutions: int

    @property
    def cost_per_resolution(self) -> Decimal | None:
        return (self.billed / self.resolutions).quantize(Decimal("0.01")) \
            if self.resolutions else None

    @property
    def savings(self) -> Decimal | None:
        """What the range's resolutions would have cost the brand's people, less what the
        agent billed; None while the human cost is not configured."""
        if not self.human_cost_per_contact:
            return None
        return self.human_cost_per_contact * self.resolutions - self.billed

    def as_json(self) -> dict[str, Any]:
        return {"currency": self.currency, "billed": _money(self.billed),
                "period": self.period,
                "billable_this_period": _money(self.billable_this_period),
                "cost_per_resolution": _money(self.cost_per_resolution),
                "human_cost_per_contact": _money(self.human_cost_per_contact),
                "savings": _money(self.savings)}


@dataclass(frozen=True)
class Report:
    brand: Brand | None
    range: DateRange
    group_by: str | None
    totals: Figures
    groups: list[tuple[str, Figures]]
    csat: dict[int, int]
    handoff_reasons: list[tuple[str, int]]
    funnels: list[Funnel]
    billing: Billing | None

    @property
    def csat_average(self) -> float | None:
        answers = sum(self.csat.values())
        return round(sum(score * n for score, n in self.csat.items()) / answers, 2) \
            if answers else None

    def as_json(self) -> dict[str, Any]:
        return {
            "brand": self.brand.slug if self.brand is not None else None,
            "since": self.range.since.isoformat() + "Z",
            "until": self.range.until.isoformat() + "Z",
            "group_by": self.group_by,
            "totals": self.totals.as_json(),
            "groups": [{"key": key, **figures.as_json()} for key, figures in self.groups],
            "csat": {"responses": sum(self.csat.values()), "average": self.csat_average,
                     "distribution": {str(score): self.csat[score] for score in range(1, 6)}},
            "handoff_reasons": [{"reason": reason, "count": count}
                                for reason, count in self.handoff_reasons],
            "funnels": [funnel.as_json() for funnel in self.funnels],
            "billing": self.billing.as_json() if self.billing is not None else None,
        }


@dataclass(frozen=True)
class Example:
    """One unanswered message: its conversation and what the supervisor did."""

    conversation: str
    text: str
    action: str


@dataclass(frozen=True)
class Question:
    """Unanswered customer messages that ask the same thing."""

    #: The member nearest the group's centre: the question as customers put it.
    text: str
    count: int
    #: How many were not answered, asked to rephrase, or out of scope.
    actions: dict[str, int]
    #: The newest members first, at most EXAMPLES.
    examples: list[Example]

    def as_json(self) -> dict[str, Any]:
        return {"question": self.text, "count": self.count, "actions": self.actions,
                "examples": [{"conversation": e.conversation, "text": e.text,
                              "action": e.action} for e in self.examples]}


@dataclass(frozen=True)
class Unanswered:
    """The range's unanswered messages, and the biggest groups of the newest of them."""

    total: int
    clustered: int
    questions: list[Question]

    def as_json(self) -> dict[str, Any]:
        return {"total": self.total, "clustered": self.clustered,
                "questions": [question.as_json() for question in self.questions]}


def _cluster(vectors: np.ndarray[Any, np.dtype[np.float32]]) -> list[list[int]]:
    """Groups of row indices whose messages ask the same thing, biggest first (ties: the
    group holding the earliest row, i.e. the newest message)."""
    if len(vectors) < 2:
        return [list(range(len(vectors)))] if len(vectors) else []
    labels = AgglomerativeClustering(
        n_clusters=None, distance_threshold=SAME_QUESTION, metric="cosine",
        linkage="average").fit_predict(vectors)
    groups: defaultdict[int, list[int]] = defaultdict(list)
    for row, label in enumerate(labels):
        groups[int(label)].append(row)
    return sorted(groups.values(), key=lambda rows: (-len(rows), rows[0]))


def _central(vectors: np.ndarray[Any, np.dtype[np.float32]], rows: list[int]) -> int:
    """The row of `rows` most similar, on average, to the others (unit vectors)."""
    members = vectors[rows]
    return rows[int(np.argmax((members @ members.T).sum(axis=1)))]


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.01")))


def _rows(query: peewee.SelectQuery) -> list[tuple[Any, ...]]:
    """An aggregate query's rows as tuples."""
    return cast(list[tuple[Any, ...]], list(query.tuples()))


def _current_outcome() -> peewee.Expression:
    """Joins a conversation to its outcome unless that was reversed (it is open again)."""
    return (Outcome.conversation == Conversation.id) & (Outcome.state != REVERSED)


def _latest_rating() -> peewee.Expression:
    """A feedback row is its conversation's latest rating: it has one and no later row does
    (an index lookup per row; an IN over a grouped MAX made SQLite rescan per conversation)."""
    later = Feedback.alias()
    latest: peewee.Expression = Feedback.csat.is_null(False) & ~fn.EXISTS(
        later.select(later.id).where((later.conversation == Feedback.conversation)
                                     & later.csat.is_null(False) & (later.id > Feedback.id)))
    return latest


def _selected(selection: Selection) -> peewee.Expression:
    """The condition on a conversation joined to its current outcome."""
    clauses: list[peewee.Expression] = []
    if selection.outcome == "open":
        clauses.append(Outcome.id.is_null())
    elif selection.outcome == "ended":
        clauses.append(Outcome.id.is_null(False))
    elif selection.outcome == "involved":
        clauses.append(Outcome.rule != _NOT_INVOLVED)
    elif selection.outcome is not None:
        clauses.append(Outcome.type == selection.outcome)
    if selection.how is not None:
        clauses.append(Outcome.how == selection.how)
    if selection.workflow == NO_WORKFLOW:
        clauses.append(Outcome.workflow.is_null())
    elif selection.workflow is not None:
        clauses.append(Outcome.workflow == selection.workflow)
    if selection.stage is not None:
        clauses.append(Outcome.stage >= selection.stage)
    if selection.reason is not None:
        clauses.append(Conversation.id.in_(Handoff.select(Handoff.conversation)
                                           .where(Handoff.reason == selection.reason)))
    if selection.csat is not None:
        clauses.append(Conversation.id.in_(Feedback.select(Feedback.conversation).where(
            _latest_rating() & (Feedback.csat == selection.csat))))
    return functools.reduce(operator.and_, clauses, Conversation.id.is_null(False))


class ReportService:
    """Reports from the outcomes, handoffs and feedback, with the ledger's money."""

    def __init__(self, ledger: Ledger, invoices: InvoiceService, embedder: Embedder) -> None:
        self._ledger = ledger
        self._invoices = invoices
        self._embedder = embedder

    def summary(self, brand: Brand | None, period: DateRange,
                group_by: str | None = None) -> Report:
        """The report of `brand` (None: every brand) over `period`, with its figures per day
        or per workflow when `group_by` says so."""
        if group_by is not None and group_by not in GROUPS:
            raise InvalidRequest(f"group_by: one of {', '.join(GROUPS)}", param="group_by")
        scope = self._scope(brand, period)
        grouped = self._figures(scope, group_by)
        totals = Figures()
        for figures in grouped.values():
            totals.merge(figures)
        return Report(
            brand=brand, range=period, group_by=group_by, totals=totals,
            groups=sorted(grouped.items()) if group_by else [],
            csat=self._csat(scope), handoff_reasons=self._reasons(scope),
            funnels=self._funnels(scope),
            billing=self._billing(brand, period, totals) if brand is not None else None)

    def unanswered(self, brand: Brand | None, period: DateRange) -> Unanswered:
        """The messages of `brand` (None: every brand) over `period` the agent did not answer,
        the newest UNANSWERED_SAMPLE of them grouped by meaning, the TOP_QUESTIONS biggest
        groups listed."""
        scope = self._scope(brand, period) & TurnTrace.action.in_(UNANSWERED)
        traces = TurnTrace.select().join(Conversation).where(scope)
        rows = _rows(TurnTrace.select(Conversation.public_id, Message.text, TurnTrace.action)
                     .join(Conversation).switch(TurnTrace)
                     .join(Message, on=TurnTrace.customer_message == Message.id)
                     .where(scope).order_by(TurnTrace.id.desc()).limit(UNANSWERED_SAMPLE))
        examples = [Example(str(public_id), str(text), str(action))
                    for public_id, text, action in rows]
        vectors = self._embedder.embed([example.text for example in examples]) \
            if examples else np.zeros((0, self._embedder.dim), np.float32)
        questions = []
        for members in _cluster(vectors)[:TOP_QUESTIONS]:
            actions = Counter(examples[row].action for row in members)
            questions.append(Question(
                text=examples[_central(vectors, members)].text, count=len(members),
                actions=dict(sorted(actions.items())),
                examples=[examples[row] for row in members[:EXAMPLES]]))
        return Unanswered(total=traces.count(), clustered=len(examples), questions=questions)

    def conversations(self, brand_ids: Sequence[int] | None, period: DateRange,
                      selection: Selection, limit: int = 100) -> tuple[int, list[Conversation]]:
        """How many of the range's conversations `selection` picks (among `brand_ids`;
        None: every brand), and the newest `limit` of them with their brands."""
        condition = self._range(period) & _selected(selection)
        if brand_ids is not None:
            condition &= Conversation.brand.in_(list(brand_ids))
        query = (Conversation.select(Conversation, Brand).join(Brand).switch(Conversation)
                 .join(Outcome, JOIN.LEFT_OUTER, on=_current_outcome()).where(condition))
        rows = list(query.order_by(Conversation.created_at.desc(), Conversation.id.desc())
                    .limit(limit))
        return query.count(), rows

    @staticmethod
    def _range(period: DateRange) -> peewee.Expression:
        return ((Conversation.created_at >= period.since)
                & (Conversation.created_at < period.until)
                & Conversation.channel.not_in(TEST_CHANNELS))

    def _scope(self, brand: Brand | None, period: DateRange) -> peewee.Expression:
        condition = self._range(period)
        return condition if brand is None else condition & (Conversation.brand == brand.id)

    @staticmethod
    def _figures(scope: peewee.Expression, group_by: str | None) -> dict[str, Figures]:
        """Figures per group (one group "" without `group_by`), from one GROUP BY."""
        # The day as the database writes it ("YYYY-MM-DD", or a date), not read back as a time.
        day = fn.DATE(Conversation.created_at).coerce(False)
        keys: list[Any] = ([day] if group_by == "day" else
                           [Outcome.workflow] if group_by == "workflow" else [])
        columns = [Outcome.type, Outcome.how, Outcome.rule]
        query = (Conversation.select(*keys, *columns, fn.COUNT(Conversation.id),
                                     fn.SUM(Outcome.value_cents))
                 .join(Outcome, JOIN.LEFT_OUTER, on=_current_outcome())
                 .where(scope).group_by(*keys, *columns))
        found: defaultdict[str, Figures] = defaultdict(Figures)
        for row in _rows(query):
            key = (str(row[0]) if row[0] is not None else NO_WORKFLOW) if keys else ""
            outcome, how, rule, count, cents = row[len(keys):]
            found[key].add(outcome, how, rule, int(count), int(cents or 0))
        return dict(found)

    @staticmethod
    def _csat(scope: peewee.Expression) -> dict[int, int]:
        query = (Feedback.select(Feedback.csat, fn.COUNT(Feedback.id)).join(Conversation)
                 .where(scope & _latest_rating())
                 .group_by(Feedback.csat))
        found = Counter({score: 0 for score in range(1, 6)})
        found.update({int(score): int(count) for score, count in _rows(query)})
        return dict(found)

    @staticmethod
    def _reasons(scope: peewee.Expression) -> list[tuple[str, int]]:
        count = fn.COUNT(Handoff.id)
        query = (Handoff.select(Handoff.reason, count).join(Conversation).where(scope)
                 .group_by(Handoff.reason).order_by(count.desc(), Handoff.reason)
                 .limit(TOP_REASONS))
        return [(str(reason), int(n)) for reason, n in _rows(query)]

    @staticmethod
    def _funnels(scope: peewee.Expression) -> list[Funnel]:
        query = (Outcome.select(Outcome.workflow, Outcome.stage, fn.COUNT(Outcome.id))
                 .join(Conversation, on=_current_outcome())
                 .where(scope & (Outcome.stage > 0))
                 .group_by(Outcome.workflow, Outcome.stage))
        reached: defaultdict[str, Counter[int]] = defaultdict(Counter)
        for workflow, stage, count in _rows(query):
            for passed in range(1, int(stage) + 1):  # a run at stage n passed each before it
                reached[str(workflow)][passed] += int(count)
        return [Funnel(name, tuple(counts[stage] for stage in STAGES))
                for name, counts in sorted(reached.items())]

    def _billing(self, brand: Brand, period: DateRange, totals: Figures) -> Billing | None:
        """None for a brand without a contract in force when the range ends."""
        contract = contract_at(brand, period.until - dt.timedelta(microseconds=1))
        if contract is None:
            return None
        invoice = self._invoices.draft(brand, period.period)
        return Billing(
            currency=contract.terms.currency,
            billed=self._ledger.billed(brand, period.since, period.until),
            period=period.period, billable_this_period=Decimal(invoice["total"]),
            human_cost_per_contact=contract.terms.human_cost_per_contact,
            resolutions=totals.resolved)


#: The columns of the report as rows (the CSV export, the CLI's table).
ROW_COLUMNS = ("group", "figure", "value")


def report_rows(report: Report) -> list[tuple[str, str, str]]:
    """The report one figure a row: the totals (group "all"), then each group, the CSAT,
    billing, handoff reasons and each workflow's funnel."""
    data = report.as_json()
    found: list[tuple[str, str, Any]] = []
    for group, figures in [("all", data["totals"]),
                           *((entry["key"], entry) for entry in data["groups"])]:
        found.extend((group, name, value) for name, value in _flatten(figures) if name != "key")
    for section in ("csat", "billing"):
        found.extend(("all", f"{section}.{name}", value)
                     for name, value in _flatten(data[section] or {}))
    found.extend(("all", f"handoff_reasons.{entry['reason']}", entry["count"])
                 for entry in data["handoff_reasons"])
    found.extend((funnel["workflow"], f"funnel.{stage}", funnel[stage])
                 for funnel in data["funnels"] for stage in STAGES.values())
    return [(group, name, "" if value is None else str(value)) for group, name, value in found]


def report_csv(report: Report) -> str:
    """The report's rows as CSV, with a header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows([ROW_COLUMNS, *report_rows(report)])
    return out.getvalue()


def _flatten(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in data.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value
