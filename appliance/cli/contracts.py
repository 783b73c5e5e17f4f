"""`appliance contracts set|show`: what a brand pays per outcome, versioned by effective date."""

from __future__ import annotations

import json
from pathlib import Path

import click

from appliance.billing.contracts import contract_at, contract_versions, load_contract, set_contract
from appliance.cli.context import CliContext, pass_cli, table
from appliance.db.models import utcnow


def register(cli: click.Group) -> None:
    cli.add_command(contracts)


brand_option = click.option("--brand", "slug", required=True, help="Brand slug.")


@click.group()
def contracts() -> None:
    """Brands' contracts: prices per resolution and save, upsell share, monthly minimum."""


@contracts.command("set")
@brand_option
@click.option("--file", "path", required=True, type=click.Path(path_type=Path),
              help="The contract as TOML (docs/outcomes.md lists the keys).")
@pass_cli
def set_(ctx: CliContext, slug: str, path: Path) -> None:
    """Add a version of the brand's contract, in force from its `effective_from`. Refused,
    naming the key, when a key is unknown or a price negative; audited."""
    terms = load_contract(path)
    services = ctx.services
    version = set_contract(services.db, services.brands.get(slug), terms, actor=ctx.actor)
    click.echo(f"contract version {version.version} for {slug}, "
               f"in force from {terms.effective_from}")


@contracts.command()
@brand_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def show(ctx: CliContext, slug: str, as_json: bool) -> None:
    """Show the contract in force today (UTC) and every version."""
    brand = ctx.services.brands.get(slug)
    in_force = contract_at(brand, utcnow())
    versions = contract_versions(brand)
    if as_json:
        click.echo(json.dumps({
            "brand": slug, "in_force": None if in_force is None else in_force.as_json(),
            "versions": [v.as_json() for v in versions]}, indent=2))
        return
    if in_force is None:
        click.echo(f"{slug}: no contract in force today")
    else:
        click.echo(f"{slug}: version {in_force.version} in force")
        table([(key, str(value)) for key, value in in_force.terms.model_dump(mode="json").items()],
              ("key", "value"))
    table([(str(v.version), str(v.terms.effective_from), v.created_by,
            v.created_at.isoformat(sep=" ", timespec="seconds")) for v in versions],
          ("version", "effective_from", "set_by", "set_at"))
