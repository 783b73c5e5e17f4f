"""The release gate: a change a person publishes is judged by the brand's evals first.

Publishing a workflow version (CLI, Studio, `appliance workflows import`) or a knowledge
version (CLI, admin) by a person goes through `ReleaseGate`. It picks the suites the change
can affect, runs them twice in one call, on what is live and on the draft (the same cases,
trials and seed, so the comparison is like for like), and refuses the change
(`GateRefused`, HTTP 409, code `eval_gate_refused`, the failing cases listed with why) when
the draft's pass^1 over the change's own suites (the workflow's suite; for knowledge, every
suite it runs) is below the brand's `evals.floor`, or its pass^1 over all the suites run is
below what is live by more than `evals.tolerance`. The other suites a change runs (the
knowledge suite for new triggers, every suite for a threshold) are held to what is live, not
to the floor: their standing failures are the nightly run's to report, and would otherwise
block every unrelated change. Quarantined cases run and are reported apart; they never gate.

Which suites a change affects:
- a workflow version: the workflow's own suite; when its triggers are new or changed, the
  `knowledge` suite's cases with a message the draft would start another workflow on than
  what is live does (questions it may now take from the knowledge); every suite when it is
  the brand's identity workflow (the others run it). Other workflows' suites are left to
  the nightly run: a gate that ran everything on every change would take minutes per publish;
- a knowledge version: the `knowledge` suite and every other case that expects a citation.
A change with no suite to run passes, recorded as such ("no suites"). So does a change of a
brand without a test system (`evals.test_base_url`, or tools on the appliance's demo backends:
nightly.py's `eval_system`): the gate never plays its conversations against production.

The draft is swapped in only for the gate's own eval conversations (candidate.py), which act on
the brand's test systems: customers keep being served what is published while the gate runs.

`--force --reason` (CLI) and the admin's force form publish a refused change: only an
it_admin may, and the audit log keeps the gate's result with the reason. The system's own
paths are exempt and audited under their actor: the demo seed and `import_dir` publish
through `WorkflowService` directly, and knowledge a brand lets auto-publish after a nightly
ingestion. Rolling back is exempt too: it returns to a version customers were served, and is
the way out of a bad release.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from appliance import audit
from appliance.brands import Policy, policy_of
from appliance.db.models import Brand, KnowledgeVersion, WorkflowVersion
from appliance.errors import Conflict, InvalidRequest, PermissionDenied
from appliance.evals.candidate import Candidate, trying
from appliance.evals.cases import EvalCase, EvalSuite
from appliance.evals.nightly import eval_system
from appliance.evals.runner import CaseResult, run_suites
from appliance.evals.scores import pass_hat_k, tally
from appliance.services import Services
from appliance.workflows.service import BrandWorkflows

#: The suite of the brand's knowledge answers.
KNOWLEDGE_SUITE = "knowledge"
#: The role that may publish past a refusal.
FORCE_ROLE = "it_admin"
#: Both runs draw the same phrasings and sampling seeds, so they differ only by the change.
GATE_SEED = 0
#: Longest reason kept with a forced release.
REASON_MAX = 500
NO_SUITES = "no suites"
NO_THRESHOLD = "no threshold changed"
#: The policy's thresholds: how the agent reads and routes every turn (the supervisor's
#: rules, the knowledge's relevance, the identity levels). A change to one runs every suite;
#: the brand's words, hours and other settings change nothing the evals judge.
THRESHOLDS = ("supervision", "knowledge_min_score", "knowledge_min_relevance", "identity")
NO_TEST_SYSTEM = "no test system (set the brand's evals.test_base_url)"


@dataclass(frozen=True)
class Failure:
    """A case the draft failed: its suite, its name and why (the first failing trial's
    problems)."""

    suite: str
    case: str
    why: str


@dataclass(frozen=True)
class GateResult:
    """The gate's judgement of one change. `draft` and `live` are pass^1 over the gating
    (not quarantined) cases; both None when no suite was run."""

    change: str
    #: What the judgement was made on (the draft and what was live): a result is reused
    #: only while this is unchanged.
    basis: str
    suites: tuple[str, ...]
    floor: float
    tolerance: float
    trials: int
    draft: float | None = None
    live: float | None = None
    #: The change's own suites (a workflow's suite; for knowledge, every suite run) and the
    #: draft's pass^1 over them, which must reach the floor. Other suites run (the knowledge
    #: suite for a workflow with new triggers, every suite for a threshold) must only not
    #: drop below what is live: their standing failures are not this change's.
    own: tuple[str, ...] = ()
    floored: float | None = None
    failures: tuple[Failure, ...] = ()
    #: Quarantined cases the draft failed: reported, never gating.
    quarantined: tuple[Failure, ...] = ()
    note: str | None = None

    @property
    def reasons(self) -> list[str]:
        """Why the change is refused; empty when it passes."""
        if self.draft is None:
            return []
        found = []
        if self.floored is not None and self.floored < self.floor:
            found.append(f"pass^1 {self.floored:.2f} on {', '.join(self.own)} is below the "
                         f"brand's floor {self.floor:.2f}")
        if self.live is not None and self.draft < self.live - self.tolerance:
            found.append(f"pass^1 {self.draft:.2f} is more than {self.tolerance:.2f} below "
                         f"what is live ({self.live:.2f})")
        return found

    @property
    def passed(self) -> bool:
        return not self.reasons

    def summary(self) -> str:
        """One line: the verdict and the scores."""
        if self.draft is None:
            return f"{self.change}: passed ({self.note or NO_SUITES})"
        verdict = "passed" if self.passed else "refused: " + "; ".join(self.reasons)
        return (f"{self.change}: {verdict} (pass^1 draft {self.draft:.2f}, live "
                f"{self.live:.2f}, floor {self.floor:.2f}, tolerance {self.tolerance:.2f}, "
                f"{self.trials} trial(s); suites: {', '.join(self.suites)})")

    def as_dict(self, max_failures: int | None = None, max_why: int | None = None
                ) -> dict[str, Any]:
        """A JSON-ready copy (for the audit log, the CLI and the admin's session), the
        failures optionally cut to `max_failures` with each why cut to `max_why` characters;
        `omitted` counts the failures left out."""
        data = asdict(self)

        def cut(items: list[dict[str, str]]) -> list[dict[str, str]]:
            kept = items if max_failures is None else items[:max_failures]
            return kept if max_why is None else [{**one, "why": one["why"][:max_why]}
                                                 for one in kept]

        failures = cut(data["failures"])
        data.update(failures=failures, quarantined=cut(data["quarantined"]),
                    omitted=len(self.failures) - len(failures), passed=self.passed,
                    reasons=self.reasons, suites=list(self.suites), own=list(self.own))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        """The result `as_dict` wrote (without the failures it left out)."""
        return cls(
            change=data["change"], basis=data["basis"], suites=tuple(data["suites"]),
            floor=data["floor"], tolerance=data["tolerance"], trials=data["trials"],
            draft=data["draft"], live=data["live"], own=tuple(data.get("own", ())),
            floored=data.get("floored"),
            failures=tuple(Failure(**one) for one in data["failures"]),
            quarantined=tuple(Failure(**one) for one in data["quarantined"]),
            note=data["note"])


class GateRefused(Conflict):
    """The release gate refused a change: the message lists the failing cases with why."""

    code = "eval_gate_refused"

    def __init__(self, result: GateResult) -> None:
        listed = "; ".join(f"{one.suite} / {one.case}: {one.why}" for one in result.failures)
        super().__init__(f"{result.summary()}. Failing cases: {listed or 'none'}",
                         param="evals")
        self.result = result


@dataclass(frozen=True)
class Force:
    """Publish even if the gate refuses: who asks (their role) and why."""

    reason: str
    role: str


@dataclass
class ReleaseGate:
    """Judges and publishes changes (see the module docstring). Its verdicts are kept in the
    audit log with the change they judged; the evals' history keeps what was live."""

    services: Services

    # -- workflows -------------------------------------------------------------------------

    def check_workflow(self, brand: Brand, version: WorkflowVersion) -> GateResult:
        """Run the suites a workflow version affects on it and on what is live."""
        workflows = self.services.workflows
        draft = workflows.definition(version)
        running, drafted = workflows.running(brand), workflows.with_draft(brand, version)
        live = running.workflows.get(draft.name)
        retriggered = live is None or draft.triggers != live.triggers
        suites = []
        for suite in self.services.suites.suites(brand):
            if draft.provides_identity or suite.name == draft.name:
                suites.append(suite)
            elif suite.name == KNOWLEDGE_SUITE and retriggered:
                taken = tuple(case for case in suite.cases
                              if _rerouted(case, running, drafted))
                if taken:
                    suites.append(suite.model_copy(update={"cases": taken}))
        candidate = Candidate(brand.id, workflows=drafted)
        return self._judge(brand, f"workflow {draft.name} v{version.number}",
                           self.workflow_basis(brand, version), suites, candidate,
                           own=(draft.name,))

    def publish_workflow(self, brand: Brand, name: str, actor: str, number: int | None = None,
                         *, force: Force | None = None, checked: GateResult | None = None
                         ) -> tuple[WorkflowVersion, GateResult]:
        """Judge version `number` (default: the latest) and publish it when the gate passes
        or an it_admin forces it; raises GateRefused otherwise. `checked`, a result of
        `check_workflow`, is used instead of running the suites again while its basis holds."""
        _allowed(force)
        workflows = self.services.workflows
        version = workflows.version(workflows.get(brand, name), number)
        result = (checked if checked is not None
                  and checked.basis == self.workflow_basis(brand, version)
                  else self.check_workflow(brand, version))
        target = f"{brand.slug}/{name}"
        self._refuse(target, actor, result, force, "workflow")
        with self.services.db.atomic():
            _audit(target, actor, result, force, "workflow")
            published = workflows.publish(brand, name, actor, version.number)
        return published, result

    def workflow_basis(self, brand: Brand, version: WorkflowVersion) -> str:
        """What a check of `version` is made on: the draft as saved and the brand's live set."""
        live = sorted(self.services.workflows.running(brand).versions.items())
        return (f"workflow:{version.id}:{version.created_at.isoformat()}:{live}:"
                f"{self._judged_by(brand)}")

    # -- knowledge -------------------------------------------------------------------------

    def check_knowledge(self, brand: Brand, version: KnowledgeVersion) -> GateResult:
        """Run the knowledge suite and every case expecting a citation on the version and on
        the published one."""
        suites = []
        for suite in self.services.suites.suites(brand):
            if suite.name == KNOWLEDGE_SUITE:
                suites.append(suite)
                continue
            citing = tuple(case for case in suite.cases if case.expect.cites)
            if citing:
                suites.append(suite.model_copy(update={"cases": citing}))
        return self._judge(brand, f"knowledge v{version.number}",
                           self._knowledge_basis(brand, version), suites,
                           Candidate(brand.id, knowledge=version),
                           own=tuple(suite.name for suite in suites))

    def publish_knowledge(self, brand: Brand, number: int, actor: str, *,
                          force: Force | None = None) -> tuple[KnowledgeVersion, GateResult]:
        """Judge knowledge version `number` and publish it when the gate passes or an
        it_admin forces it; raises GateRefused otherwise."""
        _allowed(force)
        knowledge = self.services.knowledge
        result = self.check_knowledge(brand, knowledge.version(brand, number))
        self._refuse(brand.slug, actor, result, force, "knowledge")
        with self.services.db.atomic():
            _audit(brand.slug, actor, result, force, "knowledge")
            published = knowledge.publish(brand, number, actor=actor)
        return published, result

    def _knowledge_basis(self, brand: Brand, version: KnowledgeVersion) -> str:
        live = self.services.knowledge.published(brand)
        return f"knowledge:{version.id}:{live.id if live else None}:{self._judged_by(brand)}"

    def _judged_by(self, brand: Brand) -> str:
        """The suites as saved and the brand's eval policy: a verdict made on others is
        stale."""
        saved = [(row.name, row.updated_at.isoformat())
                 for row in self.services.suites.records(brand)]
        return f"{saved}:{policy_of(brand).evals.model_dump_json()}"

    # -- policy ----------------------------------------------------------------------------

    def check_policy(self, brand: Brand, draft: Policy) -> GateResult:
        """Run every suite of the brand on the draft policy and on the live one, when the
        draft changes a threshold (`THRESHOLDS`: they act on every turn, so every suite is
        affected); a change of anything else passes without running."""
        live = policy_of(brand)
        changed = sorted(name for name in THRESHOLDS
                         if getattr(draft, name) != getattr(live, name))
        change = "policy " + (", ".join(changed) or "(no threshold)")
        basis = f"policy:{draft.model_dump_json()}:{self._judged_by(brand)}"
        if not changed:
            return GateResult(change, basis, (), live.evals.floor, live.evals.tolerance,
                              live.evals.trials, note=NO_THRESHOLD)
        # The eval conversations run on a copy of the brand holding the draft; the evals'
        # own settings stay the live ones, so both runs use the same test system.
        trial = Brand(**{**brand.__data__, "policy": draft.model_copy(
            update={"evals": live.evals}).model_dump(mode="json")})
        return self._judge(brand, change, basis, self.services.suites.suites(brand),
                           Candidate(brand.id), own=(), draft_brand=trial)

    def publish_policy(self, brand: Brand, draft: Policy, actor: str, *,
                       force: Force | None = None) -> tuple[Brand, GateResult]:
        """Judge the draft policy and make it the brand's when the gate passes or an
        it_admin forces it; raises GateRefused otherwise."""
        _allowed(force)
        result = self.check_policy(brand, draft)
        self._refuse(brand.slug, actor, result, force, "policy")
        with self.services.db.atomic():
            _audit(brand.slug, actor, result, force, "policy")
            updated = self.services.brands.update(brand.slug, policy=draft, actor=actor)
        return updated, result

    # -- judging ---------------------------------------------------------------------------

    def _judge(self, brand: Brand, change: str, basis: str, suites: list[EvalSuite],
               candidate: Candidate, *, own: tuple[str, ...],
               draft_brand: Brand | None = None) -> GateResult:
        """Run `suites` on what is live and on the candidate (or on `draft_brand`, the brand
        as the change would leave it), with the same seed; `own` are the change's own suites,
        held to the floor."""
        evals = policy_of(brand).evals
        if not suites or eval_system(self.services, brand) is None:
            # Nothing to run, or nowhere to run it but production: passed, and noted so.
            return GateResult(change, basis, (), evals.floor, evals.tolerance, evals.trials,
                              note=NO_SUITES if not suites else NO_TEST_SYSTEM)
        live = run_suites(self.services, brand, suites, trials=evals.trials, seed=GATE_SEED)
        with trying(candidate):
            draft = run_suites(self.services, draft_brand or brand, suites,
                               trials=evals.trials, seed=GATE_SEED)
        mine = [result for result in draft if result.workflow in own]
        result = GateResult(
            change, basis, tuple(suite.name for suite in suites), evals.floor,
            evals.tolerance, evals.trials, draft=_pass_1(draft), live=_pass_1(live),
            own=tuple(name for name in own if any(r.workflow == name for r in mine)),
            floored=_pass_1(mine) if mine else None,
            failures=_failures(draft, quarantined=False),
            quarantined=_failures(draft, quarantined=True))
        return result

    def _refuse(self, target: str, actor: str, result: GateResult, force: Force | None,
                kind: str) -> None:
        """Raise GateRefused unless the change passed or is forced; the refusal is audited
        though nothing is published."""
        if result.passed or force is not None:
            return
        with self.services.db.atomic():
            audit.record(actor, f"{kind}.release_gate.refuse", target, result.as_dict())
        raise GateRefused(result)


def _audit(target: str, actor: str, result: GateResult, force: Force | None,
           kind: str) -> None:
    """The gate's verdict on a change being published, in the publish's transaction: passed,
    or forced with the reason."""
    if result.passed or force is None:  # None only when passed: _refuse stops the rest
        audit.record(actor, f"{kind}.release_gate.pass", target, result.as_dict())
    else:
        audit.record(actor, f"{kind}.release_gate.force", target,
                     {**result.as_dict(), "reason": force.reason})


def _allowed(force: Force | None) -> None:
    """Only an it_admin may force, and only with a reason: checked before anything runs."""
    if force is None:
        return
    if force.role != FORCE_ROLE:
        raise PermissionDenied("only an it_admin may publish past the release gate",
                               code="force_not_allowed")
    if not force.reason.strip():
        raise InvalidRequest("a forced release needs a reason", param="reason",
                             code="reason_required")
    if len(force.reason) > REASON_MAX:
        raise InvalidRequest(f"the reason is longer than {REASON_MAX} characters",
                             param="reason", code="reason_too_long")


def _rerouted(case: EvalCase, live: BrandWorkflows, draft: BrandWorkflows) -> bool:
    """Whether the draft set starts another workflow than the live set does (or one where
    it started none) on any message of the case, in any of its phrasings: the knowledge
    cases new triggers can take from the knowledge."""
    for turn in case.turns:
        for text in (turn,) if isinstance(turn, str) else turn:
            before, after = (found.match(text, found.embed(text) if found.embed else None,
                                         None, False) for found in (live, draft))
            if (before and before.workflow) != (after and after.workflow):
                return True
    return False


def _pass_1(results: list[CaseResult]) -> float:
    gating = tally((r.workflow, r.name, r.passed) for r in results if r.counts)
    return pass_hat_k(gating).get("1", 1.0)


def _failures(results: list[CaseResult], *, quarantined: bool) -> tuple[Failure, ...]:
    """Each failing case once, with how many of its trials failed and the first's
    problems."""
    failed: dict[tuple[str, str], list[CaseResult]] = {}
    trials: dict[tuple[str, str], int] = {}
    for result in results:
        if (result.quarantine is not None) != quarantined:
            continue
        key = (result.workflow, result.name)
        trials[key] = trials.get(key, 0) + 1
        if not result.passed:
            failed.setdefault(key, []).append(result)
    return tuple(
        Failure(suite, name, (f"failed {len(runs)} of {trials[suite, name]} trials: "
                              if trials[suite, name] > 1 else "") + "; ".join(runs[0].problems))
        for (suite, name), runs in failed.items())
