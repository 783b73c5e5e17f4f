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
@click.option("--knowledge/--no-knowledge", default=True, show_default=True,
              help="Also register, ingest and publish the demo brands' knowledge.")
@pass_cli
def seed_command(ctx: CliContext, as_json: bool, knowledge: bool) -> None:
    """Create the demo brands, an admin login, a key per brand and their published knowledge
    (idempotent: what exists is kept)."""

    def progress(stage: str, done: int, total: int) -> None:
        if total and done == total:
            click.echo(f"knowledge {stage}: {done}/{total}", err=True)

    result = seed(ctx.services, knowledge=knowledge, progress=progress)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"admin login: {result['admin']['username']} / {result['admin']['password']}")
    for slug, token in result["keys"].items():
        click.echo(f"API key {slug}: {token}")
    for slug, number in result.get("knowledge", {}).items():
        click.echo(f"knowledge {slug}: version {number} published")
    click.echo(f"(kept in {credentials_path(ctx.services)})")
