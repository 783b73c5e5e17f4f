"""The `appliance` command: one click group; each area's commands live in its own module."""

from __future__ import annotations

import sys

import click

from appliance import __version__
from appliance.cli import (
    backup,
    brands,
    contracts,
    db,
    demo,
    demo_backend,
    doctor,
    evals,
    intents,
    invoices,
    jobs,
    knowledge,
    ledger,
    models,
    outcomes,
    privacy,
    report,
    serve,
    settings,
    users,
    webhooks,
    workflows,
)
from appliance.cli.context import CliContext
from appliance.errors import ApplianceError


@click.group()
@click.version_option(__version__, prog_name="appliance")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Switchboard appliance: run, configure and inspect the box."""
    ctx.obj = CliContext()
    ctx.call_on_close(ctx.obj.close)


for module in (serve, db, settings, brands, users, models, knowledge, intents, workflows, evals,
               webhooks, demo, demo_backend, doctor, jobs, outcomes, contracts, ledger,
               invoices, report, privacy, backup):
    module.register(cli)


def main() -> None:
    try:
        # Outside standalone mode click returns a command's `ctx.exit(code)` instead of exiting.
        code = cli.main(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ApplianceError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    except SystemExit:
        raise
