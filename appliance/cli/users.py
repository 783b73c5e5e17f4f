"""`appliance users create|list`."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli.context import CliContext, pass_cli, table
from appliance.users import ROLES


def register(cli: click.Group) -> None:
    cli.add_command(users)


@click.group()
def users() -> None:
    """Admin users."""


@users.command()
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--brand", "brand_slug", help="Limit a cx_editor or human_agent to one brand.")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the password from this file instead of prompting.")
@click.option("--exist-ok", is_flag=True,
              help="Succeed without changes if the user exists (for provisioning scripts).")
@pass_cli
def create(ctx: CliContext, username: str, role: str, brand_slug: str | None,
           password_file: Path | None, exist_ok: bool) -> None:
    """Create an admin user. Prints 'created user …' or, with --exist-ok, 'user … exists'."""
    if exist_ok and ctx.services.users.exists(username):
        click.echo(f"user {username} exists")
        return
    if password_file is not None:
        password = password_file.read_text().strip()
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    services = ctx.services
    brand = services.brands.get(brand_slug) if brand_slug else None
    services.users.create(username, password, role, brand, actor=ctx.actor)
    click.echo(f"created user {username} ({role})")


@users.command("list")
@pass_cli
def list_users(ctx: CliContext) -> None:
    """List admin users."""
    table([(u.username, u.role, u.brand.slug if u.brand else "all",
            "disabled" if u.disabled else "active") for u in ctx.services.users.all()],
          ("username", "role", "brand", "state"))
