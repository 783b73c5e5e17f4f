"""`appliance eval ...`: run a brand's scripted evals (its workflows', its knowledge's answers)
against the live engine."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import click

from appliance.cli.context import CliContext, pass_cli, table
from appliance.demo.seed import WORKFLOWS_DIR
from appliance.evals.cases import load_suites
from appliance.evals.runner import CaseResult, run_suites


def register(cli: click.Group) -> None:
    cli.add_command(eval_)


@click.group("eval")
def eval_() -> None:
    """Scripted conversations with expected writes, state, replies and citations."""


@eval_.command("run")
@click.option("--brand", "slug", required=True, help="Brand slug.")
@click.option("--suite", "--workflow", "suite",
              help="Only this suite's cases: a workflow's name, or e.g. knowledge.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of eval files (default: the demo brand's evals).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--min-pass", type=click.FloatRange(0, 1), default=0.0,
              help="Exit 1 when the overall pass rate is below this (0-1).")
@pass_cli
def run(ctx: CliContext, slug: str, suite: str | None, directory: Path | None,
        as_json: bool, min_pass: float) -> None:
    """Run the cases and print the pass rate per suite, and each failure with why.

    Each case starts from a fresh copy of the brand's test system (POST /reset on the tools'
    base URL): run it against a test or demo system, never production."""
    directory = directory or WORKFLOWS_DIR / slug / "evals"
    suites = load_suites(directory, suite)
    if not suites:
        raise click.ClickException(f"no eval cases in {directory}"
                                   + (f" for suite {suite!r}" if suite else ""))
    services = ctx.services
    brand = services.brands.get(slug)

    def progress(result: CaseResult) -> None:
        if not as_json:
            click.echo(f"{'pass' if result.passed else 'FAIL'}  {result.workflow}: "
                       f"{result.name}", err=True)

    results = run_suites(services, brand, suites, progress)
    passed = sum(result.passed for result in results)
    rate = passed / len(results)
    if as_json:
        click.echo(json.dumps({"brand": slug, "cases": len(results), "passed": passed,
                               "pass_rate": round(rate, 4),
                               "results": [r.as_dict() for r in results]}, indent=2))
    else:
        by_suite: dict[str, list[CaseResult]] = defaultdict(list)
        for result in results:
            by_suite[result.workflow].append(result)
        rows = [(name, str(len(cases)), str(sum(c.passed for c in cases)),
                 f"{sum(c.passed for c in cases) / len(cases):.0%}")
                for name, cases in sorted(by_suite.items())]
        rows.append(("all", str(len(results)), str(passed), f"{rate:.1%}"))
        table(rows, ("suite", "cases", "passed", "pass rate"))
        for result in results:
            if not result.passed:
                click.echo(f"\nFAIL {result.workflow}: {result.name}")
                for problem in result.problems:
                    click.echo(f"  - {problem}")
    if rate < min_pass:
        sys.exit(1)
