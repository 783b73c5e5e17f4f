"""`appliance invoices close|show`: a brand's monthly invoice, from its ledger."""

from __future__ import annotations

import datetime as dt
import json

import click

from appliance.billing.pdf import render_invoice_pdf
from appliance.cli.context import CliContext, pass_cli, table

_PERIOD = click.option("--period", required=True, help="The month, YYYY-MM.")
_BRAND = click.option("--brand", "slug", required=True, help="The brand's slug.")


def register(cli: click.Group) -> None:
    cli.add_command(invoices)


@click.group()
def invoices() -> None:
    """Monthly invoices (docs/outcomes.md)."""


@invoices.command("close")
@_BRAND
@_PERIOD
@click.option("--now", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
              help="Close as of this UTC time (default: now).")
@pass_cli
def close(ctx: CliContext, slug: str, period: str, now: dt.datetime | None) -> None:
    """Close an ended month: write its invoice to the ledger (once)."""
    invoice = ctx.services.invoices.close(ctx.services.brands.get(slug), period,
                                          actor=ctx.actor, now=now)
    click.echo(f"closed {slug} {period}: {invoice['total']} {invoice['currency']}")


@invoices.command("show")
@_BRAND
@_PERIOD
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--pdf", "pdf_path", type=click.Path(dir_okay=False, writable=True),
              help="Also write the invoice as a PDF to this path.")
@pass_cli
def show(ctx: CliContext, slug: str, period: str, as_json: bool, pdf_path: str | None) -> None:
    """Show a month's invoice (an open month: as the ledger stands now)."""
    brand = ctx.services.brands.get(slug)
    invoice = ctx.services.invoices.draft(brand, period)
    if pdf_path:
        with open(pdf_path, "wb") as out:
            out.write(render_invoice_pdf(brand.name, invoice))
    if as_json:
        click.echo(json.dumps(invoice, indent=2))
        return
    click.echo(f"{slug} {period} ({invoice['state']}), {invoice['currency']}")
    table([(line["type"], str(line["count"]), line["unit_price"], line["amount"])
           for line in invoice["lines"]], ("type", "count", "unit price", "amount"))
    click.echo(f"credits {invoice['credits']['amount']}, minimum applied "
               f"{invoice['minimum_applied']}, total {invoice['total']}")
