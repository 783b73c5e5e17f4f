"""`appliance jobs list|run`."""

from __future__ import annotations

import json
import sys

import click

from appliance.cli.context import CliContext, pass_cli, table
from appliance.jobs import JOBS, run_job


def register(cli: click.Group) -> None:
    cli.add_command(jobs)


@click.group()
def jobs() -> None:
    """Background jobs (the scheduler process runs them on their intervals)."""


@jobs.command("list")
def list_jobs() -> None:
    """List jobs with their interval."""
    table([(job.id, job.describe_schedule(), job.help.splitlines()[0])
           for job in JOBS.values()], ("id", "schedule", "what"))


@jobs.command("run")
@click.argument("job_id")
@pass_cli
def run(ctx: CliContext, job_id: str) -> None:
    """Run one job now, the same function the scheduler runs; exit 1 if it failed."""
    result = run_job(ctx.services, job_id)
    click.echo(json.dumps({"job": job_id, "status": result.status, "detail": result.detail}))
    if result.status != "ok":
        sys.exit(1)
