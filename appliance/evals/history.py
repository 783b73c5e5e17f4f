"""Eval runs kept as history: each run of a brand's suites (nightly, from the CLI, from the
release gate, asked for in the admin) with its pass^k overall and per suite, each case's
passes and failures, and the live versions it judged, so a trend can be drawn and a regulator
can read what was judged when.

A nightly run is compared with the brand's previous nightly run: a suite whose pass^1 (on its
non-quarantined cases) fell by more than the brand's `evals.tolerance` is a regression. The
regressions are stored on the run (the admin's alert) and sent as one `evals.regressed`
webhook event, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import peewee

from appliance import audit
from appliance.brands import policy_of
from appliance.db.models import Brand, EvalRun, Workflow, WorkflowVersion, utcnow
from appliance.errors import Conflict
from appliance.evals.scores import by_suite, pass_hat_k, tally
from appliance.handoff.webhooks import WebhookService
from appliance.knowledge.service import KnowledgeService
from appliance.llm.manifest import Manifest
from appliance.llm.router import ModelRouter

if TYPE_CHECKING:  # the runner needs Services, which holds this service
    from appliance.evals.runner import CaseResult

#: A run still "running" after this was left by a scheduler that stopped mid-run.
RUN_GIVEN_UP_AFTER = dt.timedelta(hours=6)
TRIGGERS = ("nightly", "cli", "gate", "admin")
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
REGRESSED_EVENT = "evals.regressed"
#: A stored failure keeps at most this many turns of its transcript, each this long: enough
#: to see why, never a whole conversation per trial per night.
TRANSCRIPT_TURNS = 12
TURN_CHARS = 400


@dataclass(frozen=True)
class Regression:
    """A suite whose pass^1 fell beyond the tolerance since the previous nightly run."""

    suite: str
    before: float
    after: float
    tolerance: float
    #: The suite's non-quarantined cases that failed at least one trial this run.
    failing: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "before": self.before, "after": self.after,
                "tolerance": self.tolerance, "failing": list(self.failing)}


def summarise(results: Sequence[CaseResult], *, trim: bool = True
              ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A run's scores (pass^k overall and per suite over the non-quarantined cases, and the
    quarantined cases' apart) and its cases, each with passes, trials, quarantine and its
    failed trials with their problems and the transcript (its last turns, each cut, when
    `trim`: what the history keeps)."""
    # A trial the simulated customer spoiled judges nobody: it is kept, not scored.
    gating = tally((r.workflow, r.name, r.passed) for r in results if r.counts)
    quarantined = tally((r.workflow, r.name, r.passed) for r in results if r.quarantine)
    scores = {"pass_hat_k": pass_hat_k(gating), "by_suite": by_suite(gating),
              "quarantined": pass_hat_k(quarantined)}
    reasons = {(r.workflow, r.name): r.quarantine for r in results}
    failures: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for result in results:
        if not result.passed:
            failures.setdefault((result.workflow, result.name), []).append({
                "trial": result.trial + 1, "problems": result.problems,
                "simulator_error": result.simulator_error,
                "transcript": ([[role, text[:TURN_CHARS]]
                                for role, text in result.transcript[-TRANSCRIPT_TURNS:]]
                               if trim else [list(turn) for turn in result.transcript])})
    cases = [{"suite": case.suite, "name": case.name, "passes": case.passes,
              "trials": case.trials, "quarantine": reasons[(case.suite, case.name)],
              "failures": failures.get((case.suite, case.name), [])}
             for case in tally((r.workflow, r.name, r.passed) for r in results)]
    return scores, cases


def regressions(previous: EvalRun | None, current: EvalRun,
                tolerance: float) -> list[Regression]:
    """The suites of `current` whose pass^1 is below `previous`'s by more than `tolerance`;
    suites either run lacks are not compared."""
    if previous is None or not previous.scores or not current.scores:
        return []
    before, after = previous.scores["by_suite"], current.scores["by_suite"]
    found = []
    for suite in sorted(set(before) & set(after)):
        drop = before[suite]["1"] - after[suite]["1"]
        if drop > tolerance + 1e-9:  # scores are rounded to 4 places
            failing = tuple(case["name"] for case in current.cases
                            if case["suite"] == suite and case["quarantine"] is None
                            and case["passes"] < case["trials"])
            found.append(Regression(suite, before[suite]["1"], after[suite]["1"], tolerance,
                                    failing))
    return found


class EvalHistory:
    """The brand's eval runs: queue one, start and finish it, read the history back.

    Every write is one transaction; a nightly run's regressions and their webhook event are
    stored together (WebhookService.enqueue's contract).
    """

    def __init__(self, db: peewee.Database, manifest: Manifest, router: ModelRouter,
                 knowledge: KnowledgeService, webhooks: WebhookService) -> None:
        self._db = db
        self._manifest = manifest
        self._router = router
        self._knowledge = knowledge
        self._webhooks = webhooks

    # -- what is live ------------------------------------------------------------------

    def live_versions(self, brand: Brand) -> dict[str, Any]:
        """What a run judges: the published workflows (name -> version number and id), the
        published knowledge version, the routed models per task with each file's sha256
        from the manifest, the classifiers that read the brand's messages, and the brand's
        thresholds."""
        rows = (WorkflowVersion.select(WorkflowVersion, Workflow).join(Workflow)
                .where((Workflow.brand == brand) & (Workflow.status == "published")
                       & (WorkflowVersion.number == Workflow.published_version))
                .order_by(Workflow.name))
        knowledge = self._knowledge.published(brand)
        routes = {task: list(self._router.route(task)) for task in self._router.tasks}
        routed = sorted({model_id for ids in routes.values() for model_id in ids})
        policy = policy_of(brand)
        return {
            "workflows": {row.workflow.name: {"version": row.number, "id": row.id}
                          for row in rows},
            "knowledge": knowledge.number if knowledge is not None else None,
            "routes": routes,
            "models": {model_id: self._sha256(model_id) for model_id in routed},
            "classifiers": {
                spec.id: {"signal": spec.options.get("signal"), "sha256": spec.sha256}
                for spec in sorted(self._manifest.models.values(), key=lambda s: s.id)
                if spec.role == "classifier" and spec.options.get("brand") in (None, brand.slug)},
            "thresholds": {
                "knowledge_min_score": policy.knowledge_min_score,
                "knowledge_min_relevance": policy.knowledge_min_relevance,
                "supervision": policy.supervision.model_dump(mode="json"),
                "evals": policy.evals.model_dump(mode="json"),
            },
        }

    def _sha256(self, model_id: str) -> str | None:
        spec = self._manifest.models.get(model_id)
        return spec.sha256 if spec is not None else None

    # -- a run's life ------------------------------------------------------------------

    def queue(self, brand: Brand, actor: str, suite: str | None = None,
              remote_addr: str | None = None) -> EvalRun:
        """Ask the scheduler to run the brand's suites (or one) with its trials; Conflict
        while one asked for is still waiting or running (a run left running longer than
        RUN_GIVEN_UP_AFTER, by a scheduler that stopped mid-run, no longer counts)."""
        with self._db.atomic():
            waiting = EvalRun.select().where(
                (EvalRun.brand == brand) & (EvalRun.trigger == "admin")
                & ((EvalRun.status == QUEUED)
                   | ((EvalRun.status == RUNNING)
                      & (EvalRun.started_at > utcnow() - RUN_GIVEN_UP_AFTER)))).exists()
            if waiting:
                raise Conflict(f"an eval run of {brand.slug!r} is already waiting or running",
                               code="eval_run_waiting")
            run = EvalRun.create(brand=brand, trigger="admin", status=QUEUED, suite=suite,
                                 trials=policy_of(brand).evals.trials, seed=0,
                                 requested_by=actor)
            audit.record(actor, "eval_run.request", brand.slug,
                         {"run": run.id, "suite": suite}, remote_addr)
        return run

    def claim(self, run: EvalRun) -> bool:
        """Move a queued run to running, in one conditional UPDATE: exactly one claimer
        wins."""
        claimed = EvalRun.update(status=RUNNING, started_at=utcnow(), node=platform.node()
                                 ).where((EvalRun.id == run.id)
                                         & (EvalRun.status == QUEUED)).execute()
        return bool(claimed == 1)

    def queued(self) -> list[EvalRun]:
        """Runs asked for and not yet started, oldest first."""
        return list(EvalRun.select().where(EvalRun.status == QUEUED).order_by(EvalRun.id))

    def start(self, brand: Brand, trigger: str, trials: int, seed: int, actor: str,
              suite: str | None = None) -> EvalRun:
        """A run that starts now (status running)."""
        if trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}")
        run: EvalRun = EvalRun.create(
            brand=brand, trigger=trigger, status=RUNNING, trials=trials, seed=seed,
            suite=suite, requested_by=actor, started_at=utcnow(), node=platform.node())
        return run

    def finish(self, run: EvalRun, results: Sequence[CaseResult]) -> list[Regression]:
        """Store the run's results and the live versions it judged; a nightly run is
        compared with the previous one, and its regressions are stored and sent as
        `evals.regressed`. Returns the regressions."""
        brand = Brand.get_by_id(run.brand_id)
        run.scores, run.cases = summarise(results)
        run.versions = self.live_versions(brand)
        run.status, run.finished_at = DONE, utcnow()
        found: list[Regression] = []
        with self._db.atomic():
            if run.trigger == "nightly":
                found = regressions(self.previous_nightly(run), run,
                                    policy_of(brand).evals.tolerance)
                run.regressions = [regression.as_dict() for regression in found]
                if found:
                    self._webhooks.enqueue(brand, REGRESSED_EVENT, {
                        "eval_run": {"id": run.id, "trigger": run.trigger,
                                     "finished_at": run.finished_at.isoformat(
                                         timespec="seconds") + "Z",
                                     "url": self._webhooks.console_link(
                                         f"/admin/brands/{brand.slug}/evals")},
                        "regressions": run.regressions})
            run.save()
        return found

    def fail(self, run: EvalRun, error: str) -> None:
        """The run could not be made (its test system unreachable): kept with why, never
        counted as a fail."""
        run.status, run.error, run.finished_at = FAILED, error, utcnow()
        run.save()

    # -- reading the history -----------------------------------------------------------

    def runs(self, brand: Brand, limit: int = 30) -> list[EvalRun]:
        """The brand's runs, newest first."""
        return list(EvalRun.select().where(EvalRun.brand == brand)
                    .order_by(EvalRun.created_at.desc(), EvalRun.id.desc()).limit(limit))

    def get(self, brand: Brand, run_id: int) -> EvalRun | None:
        run: EvalRun | None = EvalRun.get_or_none((EvalRun.brand == brand)
                                                  & (EvalRun.id == run_id))
        return run

    def latest(self, brand: Brand) -> EvalRun | None:
        """The brand's newest finished run."""
        run: EvalRun | None = (EvalRun.select().where((EvalRun.brand == brand)
                                                      & (EvalRun.status == DONE))
                               .order_by(EvalRun.finished_at.desc(), EvalRun.id.desc()).first())
        return run

    def previous_nightly(self, run: EvalRun) -> EvalRun | None:
        """The brand's nightly run finished before `run`."""
        query = EvalRun.select().where(
            (EvalRun.brand == run.brand_id) & (EvalRun.trigger == "nightly")
            & (EvalRun.status == DONE))
        if run.id is not None:
            query = query.where(EvalRun.id < run.id)
        previous: EvalRun | None = query.order_by(EvalRun.id.desc()).first()
        return previous

    def nightly_since(self, brand: Brand, since: dt.datetime) -> EvalRun | None:
        """The brand's nightly run started (or finished) since `since`, if any: what makes
        the nightly job run each brand once a day."""
        run: EvalRun | None = EvalRun.select().where(
            (EvalRun.brand == brand) & (EvalRun.trigger == "nightly")
            & EvalRun.status.in_((RUNNING, DONE)) & (EvalRun.created_at >= since)).first()
        return run

    def trend(self, runs: Iterable[EvalRun]) -> dict[str, list[tuple[EvalRun, float]]]:
        """pass^1 per suite over `runs` (finished ones, oldest first)."""
        points: dict[str, list[tuple[EvalRun, float]]] = {}
        for run in sorted((r for r in runs if r.status == DONE and r.scores),
                          key=lambda r: r.id):
            for suite, scores in sorted(run.scores["by_suite"].items()):
                points.setdefault(suite, []).append((run, scores["1"]))
        return points

    def alerts(self, brand_ids: Sequence[int] | None = None) -> list[EvalRun]:
        """Each brand's latest nightly run when it found regressions (the admin's alerts);
        `brand_ids` limits the brands (None: all)."""
        latest = (EvalRun.select(peewee.fn.MAX(EvalRun.id))
                  .where((EvalRun.trigger == "nightly") & (EvalRun.status == DONE))
                  .group_by(EvalRun.brand))
        if brand_ids is not None:
            latest = latest.where(EvalRun.brand.in_(list(brand_ids)))
        ids = [last for (last,) in cast(list[tuple[int]], list(latest.tuples()))]
        return [run for run in EvalRun.select(EvalRun, Brand).join(Brand)
                .where(EvalRun.id.in_(ids)).order_by(Brand.name) if run.regressions]
