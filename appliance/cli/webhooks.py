"""`appliance webhooks add|list|disable|deliveries|deliver`: a brand's helpdesk webhooks."""

from __future__ import annotations

import datetime as dt
import json
import sys

import click

from appliance.cli.context import CliContext, pass_cli, table
from appliance.handoff.webhooks import EVENTS
from appliance.jobs import run_job


def register(cli: click.Group) -> None:
    cli.add_command(webhooks)


brand_option = click.option("--brand", "slug", required=True, help="Brand slug.")


def _when(value: dt.datetime | None) -> str:
    return value.isoformat(sep=" ", timespec="seconds") if value else "-"


@click.group()
def webhooks() -> None:
    """Signed webhooks to a brand's helpdesk when a conversation is handed to a human."""


@webhooks.command()
@brand_option
@click.option("--url", required=True, help="Where the helpdesk receives the webhooks.")
@click.option("--event", "events", multiple=True, type=click.Choice(EVENTS),
              help="An event to send (repeatable). Default: every event.")
@pass_cli
def add(ctx: CliContext, slug: str, url: str, events: tuple[str, ...]) -> None:
    """Add an endpoint and print its signing secret: it is shown this once (the database
    keeps it to sign with; give it to the receiver now)."""
    services = ctx.services
    endpoint, secret = services.webhooks.add(services.brands.get(slug), url, events or EVENTS,
                                             actor=ctx.actor)
    click.echo(f"added webhook endpoint {endpoint.id} for {slug}: {url}", err=True)
    click.echo(secret)


@webhooks.command("list")
@brand_option
@pass_cli
def list_endpoints(ctx: CliContext, slug: str) -> None:
    """List the brand's endpoints (secrets are never shown again)."""
    services = ctx.services
    table([(str(e.id), e.url, ",".join(e.events), "active" if e.active else "disabled",
            _when(e.created_at)) for e in services.webhooks.list(services.brands.get(slug))],
          ("id", "url", "events", "state", "created"))


@webhooks.command()
@brand_option
@click.argument("endpoint_id", type=int)
@pass_cli
def disable(ctx: CliContext, slug: str, endpoint_id: int) -> None:
    """Stop sending to an endpoint; its pending deliveries are marked failed."""
    services = ctx.services
    services.webhooks.disable(services.brands.get(slug), endpoint_id, actor=ctx.actor)
    click.echo(f"disabled webhook endpoint {endpoint_id} of {slug}")


@webhooks.command()
@brand_option
@click.option("--limit", default=50, show_default=True, help="How many, newest first.")
@pass_cli
def deliveries(ctx: CliContext, slug: str, limit: int) -> None:
    """Recent deliveries: status, attempts, the last answer or error, the next attempt."""
    services = ctx.services
    rows = [(d.public_id, d.event, str(d.endpoint_id), d.status, str(d.attempts),
             str(d.last_status or "-"), d.last_error or "-",
             _when(d.next_attempt_at) if d.status == "pending" else "-")
            for d in services.webhooks.deliveries(services.brands.get(slug), limit)]
    table(rows, ("delivery", "event", "endpoint", "status", "attempts", "last status",
                 "last error", "next attempt (UTC)"))


@webhooks.command()
@pass_cli
def deliver(ctx: CliContext) -> None:
    """Send the due deliveries now: runs the scheduler's webhooks.deliver job (recorded like
    any run) and prints its summary; exit 1 if the job failed."""
    result = run_job(ctx.services, "webhooks.deliver")
    click.echo(json.dumps({"job": "webhooks.deliver", "status": result.status,
                           "detail": result.detail}))
    if result.status != "ok":
        sys.exit(1)
