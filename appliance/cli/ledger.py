"""`appliance ledger verify|export`: check a brand's hash-chained ledger, and hand it over."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from appliance.billing.ledger import export_csv
from appliance.cli.context import CliContext, pass_cli, table
from appliance.db.models import AdminUser
from appliance.errors import NotFound


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
    result = services.ledger.verify(services.brands.get(slug))
    if not result.ok:
        click.echo(f"{slug}: entry {result.failed_seq} does not verify: {result.problem}",
                   err=True)
        sys.exit(1)
    purged = (f"; {result.purged} billed conversation(s) since deleted by retention or "
              "erasure (chain verified, transcript gone)" if result.purged else "")
    click.echo(f"{slug}: {result.count} entries verified, head {result.head}{purged}")


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
    document = services.ledger.export(services.brands.get(slug), period)
    text = (json.dumps(document, indent=2, ensure_ascii=False) + "\n" if fmt == "json"
            else export_csv(document))
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {len(document['entries'])} entries to {out}", err=True)


def _user(username: str) -> AdminUser:
    user = AdminUser.get_or_none(AdminUser.username == username)
    if user is None or user.disabled:
        raise NotFound(f"no user {username!r}", code="user_not_found")
    return user


@ledger.command()
@brand_option
@click.option("--line", "line_seq", type=int, required=True, help="The disputed line's seq.")
@click.option("--reason", required=True)
@click.option("--as", "username", required=True,
              help="The brand user who disputes it (a cx_editor or it_admin of the brand).")
@pass_cli
def dispute(ctx: CliContext, slug: str, line_seq: int, reason: str, username: str) -> None:
    """Dispute a billed (settled) line; an it_admin then accepts or rejects it."""
    found = ctx.services.disputes.open(ctx.services.brands.get(slug), line_seq, reason,
                                       _user(username))
    click.echo(f"{slug}: line {line_seq} disputed (dispute {found.seq})")


@ledger.command()
@brand_option
@click.option("--dispute", "dispute_seq", type=int, required=True, help="The dispute's seq.")
@click.option("--accept/--reject", required=True)
@click.option("--reason", required=True)
@click.option("--as", "username", required=True, help="The it_admin who decides.")
@pass_cli
def decide(ctx: CliContext, slug: str, dispute_seq: int, accept: bool, reason: str,
           username: str) -> None:
    """Accept a dispute (a credit of the line's amount) or reject it, with a reason."""
    found = ctx.services.disputes.decide(ctx.services.brands.get(slug), dispute_seq,
                                         accept=accept, reason=reason,
                                         user=_user(username))
    click.echo(f"{slug}: dispute {dispute_seq} {found.state}")


@ledger.command()
@brand_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def disputes(ctx: CliContext, slug: str, as_json: bool) -> None:
    """List the brand's disputes and their state."""
    found = ctx.services.disputes.list(ctx.services.brands.get(slug))
    if as_json:
        click.echo(json.dumps([vars(d) for d in found], indent=2))
        return
    table([(str(d.seq), str(d.line_seq), d.state, d.by, d.reason) for d in found],
          ("dispute", "line", "state", "by", "reason"))
