"""`appliance db migrate|status|rollback`."""

from __future__ import annotations

import click

from appliance.cli.context import CliContext, pass_cli, table
from appliance.db import migrate as migrations


def register(cli: click.Group) -> None:
    cli.add_command(db)


@click.group()
def db() -> None:
    """Database schema migrations."""


@db.command()
@click.option("--target", type=int, help="Stop at this version (default: newest).")
@pass_cli
def migrate(ctx: CliContext, target: int | None) -> None:
    """Apply pending migrations in one transaction: all of them, or none."""
    applied = migrations.migrate(ctx.services.db, target)
    for migration in applied:
        click.echo(f"applied {migration.version:04d} {migration.name}")
    if not applied:
        click.echo("schema is current")


@db.command()
@pass_cli
def status(ctx: CliContext) -> None:
    """List migrations and whether each is applied."""
    done = migrations.applied_versions(ctx.services.db)
    table([(f"{m.version:04d}", m.name, "applied" if m.version in done else "pending")
           for m in migrations.available()], ("version", "name", "state"))


@db.command()
@click.option("--target", type=int, required=True, help="Roll back to this version (0: empty).")
@click.confirmation_option(prompt="Roll back the schema? Data in dropped tables is lost.")
@pass_cli
def rollback(ctx: CliContext, target: int) -> None:
    """Undo migrations newer than --target, newest first."""
    for migration in migrations.rollback(ctx.services.db, target):
        click.echo(f"rolled back {migration.version:04d} {migration.name}")
