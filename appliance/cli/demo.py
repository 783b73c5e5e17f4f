"""`appliance demo seed`."""

from __future__ import annotations

import json

import click

from appliance.cli.context import CliContext, pass_cli
from appliance.demo.seed import credentials_path, seed


def register(cli: click.Group) -> None:
    cli.add_command(demo)


@click.group()
def demo() -> None:
    """The embedded demo brands."""


@demo.command("seed")
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
@pass_cli
def seed_command(ctx: CliContext, as_json: bool) -> None:
    """Create the demo brands, an admin login and a key per brand (idempotent)."""
    result = seed(ctx.services)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"admin login: {result['admin']['username']} / {result['admin']['password']}")
    for slug, token in result["keys"].items():
        click.echo(f"API key {slug}: {token}")
    click.echo(f"(kept in {credentials_path(ctx.services)})")
