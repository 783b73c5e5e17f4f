"""`appliance customers hold|release|holds|export|erase` and `appliance retention purge`:
legal holds, data subject requests and retention (appliance/privacy/retention.py)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from appliance.cli.context import CliContext, pass_cli, table
from appliance.errors import InvalidRequest
from appliance.private_files import write_private

brand_option = click.option("--brand", "slug", required=True, help="Brand slug.")


def register(cli: click.Group) -> None:
    cli.add_command(customers)
    cli.add_command(retention)


def _identifier(email: str | None, customer_id: str | None) -> str | None:
    if email and customer_id:
        raise InvalidRequest("name the customer by --email or --id, not both",
                             code="hold_target_required")
    return email or customer_id


def customer_options(func: click.decorators.FC) -> click.decorators.FC:
    func = click.option("--id", "customer_id",
                        help="The customer's id in the brand's systems.")(func)
    return click.option("--email", help="The customer's email.")(func)


@click.group()
def customers() -> None:
    """A brand's customers: legal holds, export and erasure of what is held about them."""


@customers.command()
@brand_option
@customer_options
@click.option("--conversation", help="Hold one conversation (its public id) instead.")
@click.option("--reason", required=True, help="Why: the matter or case reference.")
@pass_cli
def hold(ctx: CliContext, slug: str, email: str | None, customer_id: str | None,
         conversation: str | None, reason: str) -> None:
    """Keep a customer's conversations (present and future) or one conversation through every
    retention purge and erasure, until released."""
    services = ctx.services
    brand = services.brands.get(slug)
    services.privacy.hold(brand, reason=reason, actor=ctx.actor,
                          identifier=_identifier(email, customer_id), conversation=conversation)
    click.echo(f"{slug}: legal hold placed on "
               f"{'conversation ' + conversation if conversation else 'the customer'}")


@customers.command()
@brand_option
@customer_options
@click.option("--conversation", help="Release a hold on one conversation.")
@pass_cli
def release(ctx: CliContext, slug: str, email: str | None, customer_id: str | None,
            conversation: str | None) -> None:
    """Lift the legal holds on a customer or a conversation."""
    services = ctx.services
    brand = services.brands.get(slug)
    count = services.privacy.release(brand, actor=ctx.actor,
                                     identifier=_identifier(email, customer_id),
                                     conversation=conversation)
    click.echo(f"{slug}: {count} legal hold(s) released")


@customers.command()
@brand_option
@pass_cli
def holds(ctx: CliContext, slug: str) -> None:
    """List the brand's legal holds (customers by subject key, never by identifier)."""
    services = ctx.services
    rows = services.privacy.holds(services.brands.get(slug))
    table([[f"subject {h.subject_key[:16]}" if h.subject_key else f"conversation "
            f"{h.conversation}", h.reason, h.created_by,
            h.created_at.isoformat(timespec="seconds")] for h in rows],
          ["held", "reason", "by", "since (UTC)"])


@customers.command()
@brand_option
@customer_options
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Write the JSON document here (created 0600).")
@pass_cli
def export(ctx: CliContext, slug: str, email: str | None, customer_id: str | None,
           out: Path) -> None:
    """Export everything held about a customer: conversations, messages, traces, handoffs,
    tool calls, outcomes, feedback and legal holds."""
    identifier = _require(_identifier(email, customer_id))
    services = ctx.services
    document = services.privacy.export(services.brands.get(slug), identifier, ctx.actor)
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"
    write_private(out, text)
    count = len(document["conversations"])
    if not count:
        click.echo(f"{slug}: no conversations about that customer; wrote an empty export to "
                   f"{out}")
        return
    click.echo(f"{slug}: exported {count} conversation(s) to {out}")


@customers.command()
@brand_option
@customer_options
@pass_cli
def erase(ctx: CliContext, slug: str, email: str | None, customer_id: str | None) -> None:
    """Delete a customer's conversations and all that hangs off them (messages, traces,
    handoffs, tool calls, outcomes, feedback). Conversations under legal hold are kept and
    named. Ledger entries keep their amounts and hashes."""
    identifier = _require(_identifier(email, customer_id))
    services = ctx.services
    result = services.privacy.erase(services.brands.get(slug), identifier, ctx.actor)
    if not result.erased and not result.held:
        click.echo(f"{slug}: no conversations about that customer; nothing to erase")
        return
    click.echo(f"{slug}: erased {len(result.erased)} conversation(s)")
    if result.held:
        click.echo(f"{slug}: kept {len(result.held)} under legal hold: "
                   f"{', '.join(result.held)}")


def _require(identifier: str | None) -> str:
    if not identifier:
        raise InvalidRequest("name the customer by --email or --id", code="customer_required")
    return identifier


@click.group()
def retention() -> None:
    """Conversations kept no longer than each brand's retention_days."""


@retention.command()
@click.option("--brand", "slug", help="Only this brand (default: every brand).")
@click.option("--now", "now_text", help="Purge as if it were this time (ISO 8601, UTC).")
@pass_cli
def purge(ctx: CliContext, slug: str | None, now_text: str | None) -> None:
    """Delete conversations past their brand's retention, except those under legal hold (the
    nightly job privacy.purge does the same)."""
    services = ctx.services
    now = None
    if now_text:
        try:
            parsed = dt.datetime.fromisoformat(now_text)
        except ValueError:
            raise InvalidRequest(f"--now {now_text!r} is not an ISO 8601 time",
                                 code="invalid_time") from None
        now = (parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed)
    brand = services.brands.get(slug) if slug else None
    report = services.privacy.purge(now, brand, actor=ctx.actor)
    if not report:
        click.echo("no brand sets retention_days; nothing purged")
        return
    table([[name, str(row["purged"]), str(row["held"])] for name, row in report.items()],
          ["brand", "purged", "kept under hold"])
