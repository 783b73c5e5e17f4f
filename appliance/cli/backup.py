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
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="A new or empty directory.")
@click.option("--include-secrets", is_flag=True,
              help="Also the appliance's secret_key (without it the conversations' vaults "
                   "cannot be read after a restore onto another box).")
@pass_cli
def create(ctx: CliContext, out: Path, include_secrets: bool) -> None:
    """Take a consistent backup while the appliance runs."""
    made = backups.create(ctx.settings, out, include_secrets)
    manifest = made.manifest
    click.echo(f"backup of a {manifest['engine']} database at schema {manifest['schema']}, "
               f"{len(manifest['files'])} files, written to {out}"
               + ("" if include_secrets else "; secrets not included"))


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
@pass_cli
def restore(ctx: CliContext, directory: Path) -> None:
    """Restore a backup into an empty data dir and database, after verifying it. Then run
    `appliance db migrate` if this appliance is newer than the backup."""
    manifest = backups.restore(ctx.settings, directory)
    click.echo(f"restored a {manifest['engine']} backup at schema {manifest['schema']} "
               f"made {manifest['created_at']} by appliance {manifest['appliance']}")
