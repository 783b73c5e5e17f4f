"""Scripted eval conversations: customer turns and what must come of them.

One YAML file per workflow (`evals/<workflow>.yaml` beside the brand's workflows):

    workflow: cancel_order
    cases:
      - name: reason given up front
        turns:
          - "cancel order #W3657213, I ordered it by mistake"
          - olivia.ito5204@example.com
          - yes
        expect:
          writes: [{tool: cancel_order, args: {order_id: "#W3657213", reason: ordered by mistake}}]
          state: {/orders/%23W3657213: {status: cancelled}}
          says: [cancelled]
          outcome: resolved

`writes` lists every write the agent must make, in order, and nothing else happens: an empty
list means no write at all; an argument that is a list of plain values (item ids) matches the
same values in any order. `state` maps paths of the brand's system to values its answer must
contain. `says` are phrases some agent reply must contain (case-insensitive; a list in place
of a phrase means any one of its phrases, for a fact a generated answer may word in several
ways), `never_says` phrases none may contain. `cites` are phrases that the title or article
key of some source an agent reply cites must contain (case-insensitive). `outcome` is how the
conversation's last workflow ends (resolved, informed, abandoned, escalated; `none` when no
workflow ran). `declines: true` is a question the agent must not answer: no reply cites a
source, and the agent offers a colleague (the brand's no-answer, out-of-scope, clarify or
handoff message) or hands the customer to one.

A suite that tests no single workflow names itself instead (`suite: knowledge`, for the
answers the knowledge gives); its cases expect the same things.

`quarantine: WHY` marks a flaky case: it runs and is reported apart, and never gates a
release or raises an alert.

A turn may be a list of phrasings of the same thing (`- [yes, "yes please", "sure, go
ahead"]`). Run once, a case says the first of each; run as several trials
(`appliance eval run --trials K`), the first trial says the case as written and each later
trial draws one phrasing per turn from the run's seed, so the trials vary as customers do.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from appliance.workflows.schema import parse_document

#: The channel of the conversations evals hold: their tool calls go to the brand's test
#: systems (`evals.test_base_url`), and reports leave them out.
EVAL_CHANNEL = "eval"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExpectedWrite(_Strict):
    tool: str
    #: Arguments that must match exactly (others are not checked).
    args: dict[str, Any] = Field(default_factory=dict)


class Expectation(_Strict):
    writes: tuple[ExpectedWrite, ...] = ()
    state: dict[str, Any] = Field(default_factory=dict)
    says: tuple[str | tuple[str, ...], ...] = ()
    never_says: tuple[str, ...] = ()
    cites: tuple[str, ...] = ()
    #: The agent must not answer: it cites nothing and offers a colleague (one of the brand's
    #: messages that do) or hands the customer to one.
    declines: bool = False
    outcome: str | None = None

    @model_validator(mode="after")
    def _declines_cites_nothing(self) -> Expectation:
        if self.declines and self.cites:
            raise ValueError("a case that declines cites nothing: drop `cites` or `declines`")
        return self


def _word(item: Any) -> Any:
    # YAML reads a bare `yes` / `no` turn as a boolean: it was meant as the word.
    return ("yes" if item else "no") if isinstance(item, bool) else item


class EvalCase(_Strict):
    name: str = Field(min_length=1)
    #: The customer's turns; a turn may be a list of phrasings (see the module docstring).
    turns: tuple[str | tuple[str, ...], ...] = Field(min_length=1)
    expect: Expectation
    #: A flaky case, with why: still run and reported, apart, but it never gates a release
    #: nor raises an alert.
    quarantine: str | None = Field(default=None, min_length=1, max_length=500)

    @field_validator("turns", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [[_word(one) for one in item] if isinstance(item, list | tuple)
                    else _word(item) for item in value]
        return value

    @field_validator("turns")
    @classmethod
    def _phrasings(cls, value: tuple[str | tuple[str, ...], ...]
                   ) -> tuple[str | tuple[str, ...], ...]:
        if any(not isinstance(turn, str) and not turn for turn in value):
            raise ValueError("a turn's list of phrasings must not be empty")
        return value

    def said(self, trial: int = 0, seed: int = 0) -> list[str]:
        """What the customer says in `trial` (0: the first phrasing of each turn; later
        trials draw one per turn from `seed`, the same draw for the same seed)."""
        draw = random.Random(f"{seed}:{self.name}:{trial}")
        return [turn if isinstance(turn, str) else turn[0] if trial == 0
                else draw.choice(turn) for turn in self.turns]


#: How a simulated customer talks (appliance/evals/simulator.py).
Persona = Literal["plain", "terse", "chatty", "angry", "changes_mind"]


class Fact(_Strict):
    """Something the simulated customer knows: its value, and for a customer who changes
    their mind, what they say first (corrected when the agent reads it back)."""

    value: str = Field(min_length=1)
    first: str | None = None


class Reply(_Strict):
    """What the customer says when an agent reply contains any of `when` (case-insensitive):
    an answer to an offer, a choice the facts cannot make."""

    when: tuple[str, ...] = Field(min_length=1)
    say: str | tuple[str, ...]


class Goal(_Strict):
    """A case written as what the customer wants rather than what they type: the simulator
    (appliance/evals/simulator.py) plays it, and `expect` judges it as a scripted case's."""

    name: str = Field(min_length=1)
    #: The request, in one or more phrasings; `{fact}` is a fact's value.
    wants: tuple[str, ...] = Field(min_length=1)
    #: What the customer knows, by name (email, order, reason, date_of_birth, card, ...).
    facts: dict[str, Fact] = Field(default_factory=dict)
    #: Extra words by which the agent asks for a fact, beyond the simulator's defaults.
    asked: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    #: A confirmation is said yes to only when it contains all of these (else the customer
    #: says it is not right).
    accepts: tuple[str, ...] = ()
    replies: tuple[Reply, ...] = ()
    persona: Persona = "plain"
    expect: Expectation
    quarantine: str | None = Field(default=None, min_length=1, max_length=500)

    @field_validator("facts", mode="before")
    @classmethod
    def _plain_values(cls, value: Any) -> Any:
        # `email: jo@x.com` is short for `email: {value: jo@x.com}`.
        if isinstance(value, dict):
            return {name: fact if isinstance(fact, dict) else {"value": str(fact)}
                    for name, fact in value.items()}
        return value

    @model_validator(mode="after")
    def _knows_what_it_says(self) -> Goal:
        for text in (*self.wants, *(r.say for r in self.replies if isinstance(r.say, str)),
                     *(s for r in self.replies if not isinstance(r.say, str) for s in r.say)):
            for name in re.findall(r"\{(\w+)\}", text):
                if name not in self.facts:
                    raise ValueError(f"{text!r} names {{{name}}}, which is not a fact")
        if self.persona == "changes_mind" and not any(f.first for f in self.facts.values()):
            raise ValueError("a customer who changes their mind needs a fact with `first`")
        return self


class EvalSuite(_Strict):
    #: The workflow the suite tests; or None for a suite named by `suite`.
    workflow: str | None = None
    suite: str | None = None
    cases: tuple[EvalCase, ...] = ()
    goals: tuple[Goal, ...] = ()

    @model_validator(mode="after")
    def _named_once(self) -> EvalSuite:
        if (self.workflow is None) == (self.suite is None):
            raise ValueError("name either the workflow the suite tests or the suite")
        if not self.cases and not self.goals:
            raise ValueError("a suite needs cases or goals")
        return self

    @property
    def name(self) -> str:
        """The workflow's name, or the suite's."""
        return self.workflow or self.suite or ""


def load_suites(directory: Path, name: str | None = None) -> list[EvalSuite]:
    """The suites in `directory/*.yaml`, optionally only the one called `name` (a workflow's
    or a suite's name)."""
    suites = [parse_document(path.read_text(encoding="utf-8"), EvalSuite, path.name)
              for path in sorted(directory.glob("*.yaml"))]
    return [suite for suite in suites if name is None or suite.name == name]
