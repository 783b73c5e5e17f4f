"""`appliance outcomes list|settle`: what conversations achieved, and settling them."""

from __future__ import annotations

import datetime as dt
import json

import click

from appliance.cli.context import CliContext, pass_cli, table
from appliance.outcomes import outcome_json


def register(cli: click.Group) -> None:
    cli.add_command(outcomes)


@click.group()
def outcomes() -> None:
    """Conversation outcomes (docs/outcomes.md)."""


@outcomes.command("list")
@click.option("--brand", "slug", required=True, help="The brand's slug.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def list_outcomes(ctx: CliContext, slug: str, as_json: bool) -> None:
    """List the brand's outcomes, oldest first, with their evidence."""
    brand = ctx.services.brands.get(slug)
    rows = [outcome_json(outcome, conversation, brand)
            for outcome, conversation in ctx.services.outcomes.list(brand)]
    if as_json:
        click.echo(json.dumps({"outcomes": rows}, indent=2))
        return
    table([(r["conversation"], r["type"], r["how"] or "", r["state"], r["amount"] or "",
            r["currency"] or "", r["evidence"]["rule"], r["attributed_at"]) for r in rows],
          ("conversation", "type", "how", "state", "amount", "currency", "rule", "attributed"))


@outcomes.command("settle")
@click.option("--now", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M",
                                            "%Y-%m-%d"]),
              help="Settle as of this UTC time (default: now).")
@pass_cli
def settle(ctx: CliContext, now: dt.datetime | None) -> None:
    """Settle every provisional outcome whose window has passed (also an hourly job)."""
    settled = ctx.services.outcomes.settle(now)
    click.echo(f"settled {settled} outcome{'s' if settled != 1 else ''}")
