"""`appliance backup create|verify|restore`: consistent online backups (appliance/backup.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from appliance import backup as backups
from appliance.cli.context import CliContext, pass_cli


def register(cli: click.Group) -> None:
    cli.add_command(backup)


@click.group()
def backup() -> None:
    """Back up the database, knowledge and model manifest; check and restore a backup."""


@backup.command()
@click.option("--out", type=click.Path(path_type=Path),
              help="A new or empty directory. Without it: a new backup under "
                   "DATA_DIR/backups, keeping the newest backup_keep there (the timer's way).")
@click.option("--include-secrets", is_flag=True,
              help="Also the appliance's secret_key (without it the conversations' vaults "
                   "cannot be read after a restore onto another box). Only with --out.")
@pass_cli
def create(ctx: CliContext, out: Path | None, include_secrets: bool) -> None:
    """Take a consistent backup while the appliance runs."""
    if out is None:
        if include_secrets:
            raise click.UsageError("--include-secrets needs --out: scheduled backups never "
                                   "hold the secret key")
        made, deleted = backups.create_scheduled(ctx.settings)
    else:
        made, deleted = backups.create(ctx.settings, out, include_secrets), []
    manifest = made.manifest
    click.echo(f"backup of a {manifest['engine']} database at schema {manifest['schema']}, "
               f"{len(manifest['files'])} files, written to {made.directory}"
               + ("" if include_secrets else "; secrets not included"))
    for path in deleted:
        click.echo(f"deleted {path} (keeping the newest {ctx.settings.backup_keep})")


@backup.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
def verify(directory: Path) -> None:
    """Check a backup's manifest and checksums without restoring it (exit 1 if it fails)."""
    check = backups.verify(directory)
    if not check.ok:
        for problem in check.problems:
            click.echo(f"{directory}: {problem}", err=True)
        sys.exit(1)
    click.echo(f"{directory}: verified")


@backup.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--force", is_flag=True,
              help="Replace the database and knowledge that are there (stop web and "
                   "scheduler first).")
@pass_cli
def restore(ctx: CliContext, directory: Path, force: bool) -> None:
    """Restore a backup into an empty data dir and database, after verifying it. Then run
    `appliance db migrate` if this appliance is newer than the backup."""
    manifest = backups.restore(ctx.settings, directory, force=force)
    click.echo(f"restored a {manifest['engine']} backup at schema {manifest['schema']} "
               f"made {manifest['created_at']} by appliance {manifest['appliance']}")
