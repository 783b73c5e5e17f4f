"""`appliance users create|list|passwd|disable|enable|set-brand|unlock`."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli.context import CliContext, pass_cli, table
from appliance.db.models import AdminUser
from appliance.users import ROLES, needs_brand


def register(cli: click.Group) -> None:
    cli.add_command(users)


@click.group()
def users() -> None:
    """Admin users."""


@users.command()
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--brand", "brand_slug",
              help="Limit the user to one brand (required for a cx_editor or human_agent).")
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
    services = ctx.services
    brand = services.brands.get(brand_slug) if brand_slug else None
    services.users.create(username, _password(password_file), role, brand, actor=ctx.actor)
    click.echo(f"created user {username} ({role})")


def _password(password_file: Path | None) -> str:
    if password_file is not None:
        return password_file.read_text().strip()
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@users.command("list")
@pass_cli
def list_users(ctx: CliContext) -> None:
    """List admin users, then the usernames and addresses locked out of signing in."""
    table([(u.username, u.role, _scope(u), "disabled" if u.disabled else "active")
           for u in ctx.services.users.all()], ("username", "role", "brand", "state"))
    lockouts = ctx.services.login_throttle.lockouts()
    if lockouts:
        click.echo()
        table([(lock.kind, lock.subject, str(lock.failures), f"{lock.until:%Y-%m-%d %H:%M} UTC")
               for lock in lockouts], ("locked", "who", "failures", "until"))


def _scope(user: AdminUser) -> str:
    if user.brand is not None:
        return str(user.brand.slug)
    return "none (signs in to nothing)" if needs_brand(user.role, None) else "all"


@users.command()
@click.argument("username")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the password from this file instead of prompting.")
@pass_cli
def passwd(ctx: CliContext, username: str, password_file: Path | None) -> None:
    """Set a user's password; every session of the user ends."""
    ctx.services.users.named(username)  # before prompting: fail fast on a typo
    ctx.services.users.set_password(username, _password(password_file), actor=ctx.actor)
    click.echo(f"changed the password of {username}; their sessions have ended")


@users.command()
@click.argument("username")
@pass_cli
def disable(ctx: CliContext, username: str) -> None:
    """Disable a user: they cannot sign in and every session of theirs ends."""
    _set_disabled(ctx, username, True)


@users.command()
@click.argument("username")
@pass_cli
def enable(ctx: CliContext, username: str) -> None:
    """Enable a disabled user again."""
    _set_disabled(ctx, username, False)


def _set_disabled(ctx: CliContext, username: str, disabled: bool) -> None:
    ctx.services.users.set_disabled(username, disabled, actor=ctx.actor)
    click.echo(f"{'disabled' if disabled else 'enabled'} {username}")


@users.command("set-brand")
@click.argument("username")
@click.argument("brand_slug", metavar="SLUG|all")
@pass_cli
def set_brand(ctx: CliContext, username: str, brand_slug: str) -> None:
    """Limit a user to one brand ('all': every brand, not for a cx_editor or human_agent);
    their sessions end."""
    services = ctx.services
    brand = None if brand_slug == "all" else services.brands.get(brand_slug)
    services.users.set_brand(username, brand, actor=ctx.actor)
    click.echo(f"{username} now sees {brand_slug}")


@users.command()
@click.argument("username", required=False)
@click.option("--address", help="Lift the lock-out of this client address instead.")
@pass_cli
def unlock(ctx: CliContext, username: str | None, address: str | None) -> None:
    """Lift a sign-in lock-out (see `users list`). Exit 1 when there was none."""
    if (username is None) == (address is None):
        raise click.UsageError("name a USERNAME or an --address")
    throttle = ctx.services.login_throttle
    if not throttle.unlock(username=username, address=address, actor=ctx.actor):
        raise click.ClickException(f"{username or address} is not locked out")
    click.echo(f"lifted the lock-out of {username or address}")
