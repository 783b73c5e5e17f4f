"""`appliance config show`."""

from __future__ import annotations

import click

from appliance.cli.context import CliContext, pass_cli, table


def register(cli: click.Group) -> None:
    cli.add_command(config)


@click.group()
def config() -> None:
    """Configuration."""


@config.command()
@click.option("--help-text/--no-help-text", default=False, help="Show each setting's help.")
@pass_cli
def show(ctx: CliContext, help_text: bool) -> None:
    """Print every setting's effective value, secrets redacted."""
    rows = ctx.settings.public_items()
    if help_text:
        table(rows, ("setting", "value", "help"))
    else:
        table([row[:2] for row in rows], ("setting", "value"))
