"""`appliance report`: a brand's (or the box's) outcomes, rates and money over a date range,
the same figures as the admin dashboard and `GET /v1/metrics/summary`."""

from __future__ import annotations

import json

import click

from appliance.cli.context import CliContext, pass_cli, table
from appliance.reporting import GROUPS, ROW_COLUMNS, DateRange, report_rows


def register(cli: click.Group) -> None:
    cli.add_command(report)


@click.command()
@click.option("--brand", "slug", help="The brand's slug (default: every brand).")
@click.option("--since", help="ISO 8601 date or time (default: 30 days before --until).")
@click.option("--until", help="ISO 8601 date or time, exclusive; a date counts that whole day "
                              "(default: now).")
@click.option("--group-by", type=click.Choice(GROUPS), help="Figures per day or workflow too.")
@click.option("--unanswered", is_flag=True,
              help="The questions the agent could not answer instead, grouped by meaning "
                   "(GET /v1/metrics/unanswered).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the API's body).")
@pass_cli
def report(ctx: CliContext, slug: str | None, since: str | None, until: str | None,
           group_by: str | None, unanswered: bool, as_json: bool) -> None:
    """Print the report (docs/reporting.md): one figure a row, or JSON."""
    brand = ctx.services.brands.get(slug) if slug else None
    period = DateRange.parse(since, until)
    if unanswered:
        questions = ctx.services.reports.unanswered(brand, period)
        if as_json:
            click.echo(json.dumps(questions.as_json(), indent=2))
            return
        click.echo(f"{questions.total} unanswered messages; the newest "
                   f"{questions.clustered} grouped")
        table([(str(q.count), ", ".join(f"{a} {n}" for a, n in q.actions.items()), q.text)
               for q in questions.questions], ("messages", "how", "question"))
        return
    found = ctx.services.reports.summary(brand, period, group_by)
    if as_json:
        click.echo(json.dumps(found.as_json(), indent=2))
        return
    click.echo(f"{slug or 'every brand'}: {found.range.since.isoformat()} to "
               f"{found.range.until.isoformat()} (UTC, until exclusive)")
    table(report_rows(found), ROW_COLUMNS)
