"""`appliance doctor`."""

from __future__ import annotations

import sys

import click

from appliance.cli.context import CliContext, pass_cli, table
from appliance.doctor import run_checks


def register(cli: click.Group) -> None:
    cli.add_command(doctor)


@click.command()
@pass_cli
def doctor(ctx: CliContext) -> None:
    """Check every backend (database, migrations, model files and generation); exit 1 on any
    failure."""
    checks = run_checks(ctx.services)
    table([(c.name, "ok" if c.ok else "FAIL", f"{c.ms:.1f}", c.detail) for c in checks],
          ("check", "result", "ms", "detail"))
    failed = [c.name for c in checks if not c.ok]
    if failed:
        click.echo(f"\n{len(failed)} check(s) failed: {', '.join(failed)}", err=True)
        sys.exit(1)
