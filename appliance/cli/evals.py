"""`appliance eval ...`: run a brand's scripted evals (its workflows', its knowledge's answers)
against the live engine."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click

from appliance.cli.context import CliContext, pass_cli, table
from appliance.db.models import EvalRun
from appliance.evals import report as risk_report
from appliance.evals.cases import load_suites
from appliance.evals.history import summarise
from appliance.evals.runner import CaseResult, run_suites
from appliance.evals.scores import by_suite, pass_hat_k, tally


def register(cli: click.Group) -> None:
    cli.add_command(eval_)


@click.group("eval")
def eval_() -> None:
    """Scripted conversations with expected writes, state, replies and citations."""


@eval_.command("list")
@click.option("--brand", "slug", required=True, help="Brand slug.")
@pass_cli
def list_(ctx: CliContext, slug: str) -> None:
    """The brand's stored suites: scripted cases, goals and quarantined ones."""
    services = ctx.services
    brand = services.brands.get(slug)
    rows = []
    for record, suite in zip(services.suites.records(brand), services.suites.suites(brand),
                             strict=True):
        quarantined = sum(case.quarantine is not None for case in suite.cases) + sum(
            goal.quarantine is not None for goal in suite.goals)
        rows.append((suite.name, str(len(suite.cases)), str(len(suite.goals)),
                     str(quarantined), record.updated_by,
                     record.updated_at.strftime("%Y-%m-%d %H:%M")))
    table(rows, ("suite", "cases", "goals", "quarantined", "updated by", "updated"))


@eval_.command("import")
@click.option("--brand", "slug", required=True, help="Brand slug.")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@pass_cli
def import_(ctx: CliContext, slug: str, directory: Path) -> None:
    """Store every DIRECTORY/*.yaml suite for the brand (all validate, or none is saved)."""
    services = ctx.services
    names = services.suites.import_dir(services.brands.get(slug), directory, ctx.actor)
    click.echo(f"stored {len(names)} suites: {', '.join(names)}")


@eval_.command("export")
@click.option("--brand", "slug", required=True, help="Brand slug.")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_cli
def export(ctx: CliContext, slug: str, directory: Path) -> None:
    """Write the brand's suites as DIRECTORY/<suite>.yaml."""
    services = ctx.services
    for path in services.suites.export_dir(services.brands.get(slug), directory):
        click.echo(str(path))


@eval_.command("run")
@click.option("--brand", "slug", required=True, help="Brand slug.")
@click.option("--suite", "--workflow", "suite",
              help="Only this suite's cases: a workflow's name, or e.g. knowledge.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Run the suites in this folder instead of the brand's stored ones.")
@click.option("--trials", type=click.IntRange(1, 20), default=1, show_default=True,
              help="Run each case this many times (phrasing and sampling vary) for pass^k.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the trials' phrasing and sampling: the same seed, the same run.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--min-pass", type=click.FloatRange(0, 1), default=0.0,
              help="Exit 1 when pass^1 (the pass rate over all trials) is below this (0-1).")
@click.option("--record", is_flag=True,
              help="Keep the run in the brand's eval history (the admin's trend, the report).")
@pass_cli
def run(ctx: CliContext, slug: str, suite: str | None, directory: Path | None, trials: int,
        seed: int, as_json: bool, min_pass: float, record: bool) -> None:
    """Run the cases and print pass^1..K per suite, and each failure with why.

    Each case starts from a fresh copy of the brand's test system (POST /reset on the tools'
    base URL): run it against a test or demo system, never production. With --record the
    run is kept in the history (only the brand's stored suites, not a --dir)."""
    services = ctx.services
    brand = services.brands.get(slug)
    suites = (load_suites(directory, suite) if directory is not None
              else services.suites.suites(brand, suite))
    if not suites:
        raise click.ClickException(f"no eval cases in {directory or f'brand {slug!r}'}"
                                   + (f" for suite {suite!r}" if suite else ""))

    def progress(result: CaseResult) -> None:
        if not as_json:
            trial = f" (trial {result.trial + 1})" if trials > 1 else ""
            click.echo(f"{'pass' if result.passed else 'FAIL'}  {result.workflow}: "
                       f"{result.name}{trial}", err=True)

    if record and directory is not None:
        raise click.UsageError("--record keeps runs of the brand's stored suites, not of --dir")
    recorded = (services.evals.start(brand, "cli", trials, seed, ctx.actor, suite)
                if record else None)
    results = run_suites(services, brand, suites, progress, trials=trials, seed=seed)
    if recorded is not None:
        services.evals.finish(recorded, results)
    gating = [r for r in results if r.counts]
    cases = tally((r.workflow, r.name, r.passed) for r in gating)
    overall = pass_hat_k(cases) or {str(k): 1.0 for k in range(1, trials + 1)}
    if as_json:
        ran = report(slug, trials, seed, results)
        if recorded is not None:
            ran["eval_run"] = recorded.id
        click.echo(json.dumps(ran, indent=2))
    else:
        per_suite = by_suite(cases)
        ks = [str(k) for k in range(1, trials + 1)]
        rows = [(name, str(len([c for c in cases if c.suite == name])),
                 *(f"{scores[k]:.3f}" for k in ks)) for name, scores in per_suite.items()]
        rows.append(("all", str(len(cases)), *(f"{overall[k]:.3f}" for k in ks)))
        quarantined = tally((r.workflow, r.name, r.passed) for r in results
                            if r.quarantine is not None)
        if quarantined:
            scores = pass_hat_k(quarantined)
            rows.append(("quarantined (not gating)", str(len(quarantined)),
                         *(f"{scores[k]:.3f}" for k in ks)))
        table(rows, ("suite", "cases", *(f"pass^{k}" for k in ks)))
        for result in results:
            if not result.passed:
                trial = f" (trial {result.trial + 1})" if trials > 1 else ""
                click.echo(f"\nFAIL {result.workflow}: {result.name}{trial}")
                for problem in result.problems:
                    click.echo(f"  - {problem}")
        if recorded is not None:
            click.echo(f"\nrecorded as eval run {recorded.id}")
    if overall["1"] < min_pass:
        sys.exit(1)


@eval_.command("history")
@click.option("--brand", "slug", required=True, help="Brand slug.")
@click.option("--limit", type=click.IntRange(1, 1000), default=30, show_default=True,
              help="How many runs, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@pass_cli
def history(ctx: CliContext, slug: str, limit: int, as_json: bool) -> None:
    """The brand's recorded eval runs, newest first: trigger, status, pass^1..k and the
    suites a nightly run found regressed."""
    services = ctx.services
    runs = services.evals.runs(services.brands.get(slug), limit)
    if as_json:
        click.echo(json.dumps([run_json(run) for run in runs], indent=2))
        return
    rows = []
    for run in runs:
        scores = (run.scores or {}).get("pass_hat_k", {})
        rows.append((str(run.id), _when(run.finished_at or run.created_at), run.trigger,
                     run.suite or "all", run.status,
                     " ".join(f"{scores[k]:.3f}" for k in sorted(scores, key=int)) or "-",
                     ", ".join(r["suite"] for r in run.regressions or []) or run.error or ""))
    table(rows, ("run", "when", "trigger", "suites", "status", "pass^1..k",
                 "regressed / error"))


@eval_.command("report")
@click.option("--brand", "slug", required=True, help="Brand slug.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write it: a .html or .pdf file.")
@pass_cli
def report_(ctx: CliContext, slug: str, out: Path) -> None:
    """Write the brand's model-risk report (versions live, latest results with pass^k, the
    history, quarantined cases, who changed what) as HTML or PDF, by OUT's extension."""
    if out.suffix.lower() not in (".html", ".pdf"):
        raise click.BadParameter("must end in .html or .pdf", param_hint="--out")
    services = ctx.services
    built = risk_report.build(services, services.brands.get(slug))
    if out.suffix.lower() == ".pdf":
        out.write_bytes(risk_report.to_pdf(built))
    else:
        out.write_text(risk_report.to_html(built), encoding="utf-8")
    click.echo(str(out))


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def run_json(run: EvalRun) -> dict[str, Any]:
    """A recorded run as JSON (times in UTC, ISO 8601)."""
    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat(timespec="seconds") + "Z" if value is not None else None

    return {"id": run.id, "trigger": run.trigger, "status": run.status, "suite": run.suite,
            "trials": run.trials, "seed": run.seed, "requested_by": run.requested_by,
            "created_at": iso(run.created_at), "started_at": iso(run.started_at),
            "finished_at": iso(run.finished_at), "node": run.node, "error": run.error,
            "scores": run.scores, "cases": run.cases, "versions": run.versions,
            "regressions": run.regressions or []}


def report(slug: str, trials: int, seed: int, results: list[CaseResult]) -> dict[str, Any]:
    """The run as JSON: each case's passes over its trials with the failures and why (whole
    transcripts), and pass^k overall and per workflow (or suite), as the history scores it."""
    scores, cases = summarise(results, trim=False)
    passed = sum(result.passed for result in results if result.counts)
    runs = sum(result.counts for result in results)
    return {
        "brand": slug, "trials": trials, "seed": seed,
        "cases": [{"id": f"{case['suite']}/{case['name']}", "workflow": case["suite"],
                   **{key: value for key, value in case.items() if key != "suite"}}
                  for case in cases],
        "runs": runs, "passed": passed, "pass_rate": round(passed / runs, 4) if runs else 1.0,
        "pass_hat_k": scores["pass_hat_k"], "by_workflow": scores["by_suite"],
        "quarantined": scores["quarantined"],
        "simulator_errors": sum(result.simulator_error is not None for result in results),
    }
