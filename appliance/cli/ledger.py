"""`appliance ledger verify|export`: check a brand's hash-chained ledger, and hand it over."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from appliance.billing.ledger import Ledger, export_csv
from appliance.cli.context import CliContext, pass_cli


def register(cli: click.Group) -> None:
    cli.add_command(ledger)


brand_option = click.option("--brand", "slug", required=True, help="Brand slug.")


@click.group()
def ledger() -> None:
    """Brands' billing ledgers: append-only, hash-chained, verifiable by the buyer."""


@ledger.command()
@brand_option
@pass_cli
def verify(ctx: CliContext, slug: str) -> None:
    """Recompute the brand's chain and each entry's evidence against the stored transcript.
    Exit 0 printing the entry count and head hash; exit 1 naming the first entry that fails."""
    services = ctx.services
    result = Ledger(services.db).verify(services.brands.get(slug))
    if not result.ok:
        click.echo(f"{slug}: entry {result.failed_seq} does not verify: {result.problem}",
                   err=True)
        sys.exit(1)
    click.echo(f"{slug}: {result.count} entries verified, head {result.head}")


@ledger.command()
@brand_option
@click.option("--period", required=True, help="The month, YYYY-MM (UTC).")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json",
              show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Write here instead of stdout.")
@pass_cli
def export(ctx: CliContext, slug: str, period: str, fmt: str, out: Path | None) -> None:
    """Export the entries written in a month. The JSON is what scripts/verify_ledger.py
    checks on any machine; the CSV has one row per entry."""
    services = ctx.services
    document = Ledger(services.db).export(services.brands.get(slug), period)
    text = (json.dumps(document, indent=2, ensure_ascii=False) + "\n" if fmt == "json"
            else export_csv(document))
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {len(document['entries'])} entries to {out}", err=True)
