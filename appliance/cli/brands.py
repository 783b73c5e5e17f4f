"""`appliance brands list|create|show|set-policy` and `appliance brands key
create|list|revoke`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from appliance.brands import Persona, Policy, persona_of, policy_of, validated
from appliance.cli.context import CliContext, pass_cli, table
from appliance.cli.release import echo_result, exit_refused, force_of, force_options
from appliance.errors import InvalidRequest
from appliance.evals.gate import GateRefused, ReleaseGate


def register(cli: click.Group) -> None:
    cli.add_command(brands)


@click.group()
def brands() -> None:
    """Brands and their API keys."""


@brands.command("list")
@pass_cli
def list_brands(ctx: CliContext) -> None:
    """List brands."""
    table([(b.slug, b.name, persona_of(b).agent_name) for b in ctx.services.brands.all()],
          ("slug", "name", "agent"))


@brands.command()
@click.argument("slug")
@click.option("--name", required=True, help="Display name, e.g. 'Lumen Goods'.")
@click.option("--agent-name", required=True, help="The agent's name, e.g. 'Juniper'.")
@click.option("--tone", required=True, help="Voice and tone guidelines.")
@click.option("--greeting", required=True, help="First message of every conversation.")
@click.option("--sign-off", default="", help="Closing line.")
@click.option("--never-say", multiple=True, help="A phrase the agent never uses (repeatable).")
@click.option("--language", default="en", show_default=True)
@pass_cli
def create(ctx: CliContext, slug: str, name: str, agent_name: str, tone: str, greeting: str,
           sign_off: str, never_say: tuple[str, ...], language: str) -> None:
    """Create a brand with its agent persona."""
    persona = validated(Persona, {
        "agent_name": agent_name, "tone": tone, "greeting": greeting, "sign_off": sign_off,
        "never_say": list(never_say), "language": language,
    })
    brand = ctx.services.brands.create(slug, name, persona, Policy(), actor=ctx.actor)
    click.echo(f"created brand {brand.slug}")


@brands.command()
@click.argument("slug")
@pass_cli
def show(ctx: CliContext, slug: str) -> None:
    """Show a brand's persona, policy and keys as JSON."""
    services = ctx.services
    brand = services.brands.get(slug)
    click.echo(json.dumps({
        "slug": brand.slug,
        "name": brand.name,
        "persona": persona_of(brand).model_dump(mode="json"),
        "policy": policy_of(brand).model_dump(mode="json"),
        "keys": [
            {"id": k.id, "name": k.name, "prefix": k.prefix,
             "created_at": k.created_at.isoformat(), "revoked": k.revoked_at is not None}
            for k in services.brands.keys(slug)
        ],
    }, indent=2))


@brands.group()
def key() -> None:
    """API keys of a brand."""


@key.command("create")
@click.argument("slug")
@click.option("--name", default="default", show_default=True, help="What the key is for.")
@pass_cli
def create_key(ctx: CliContext, slug: str, name: str) -> None:
    """Create a key and print only the key (it is shown once and stored hashed)."""
    _, token = ctx.services.brands.create_key(slug, name, actor=ctx.actor)
    click.echo(token)


@key.command("list")
@click.argument("slug")
@pass_cli
def list_keys(ctx: CliContext, slug: str) -> None:
    """List a brand's keys (prefixes only)."""
    table([(str(k.id), k.name, k.prefix + "…", k.created_at.isoformat(timespec="seconds"),
            "revoked" if k.revoked_at else "live") for k in ctx.services.brands.keys(slug)],
          ("id", "name", "prefix", "created", "state"))


@key.command("revoke")
@click.argument("slug")
@click.argument("key_id", type=int)
@pass_cli
def revoke_key(ctx: CliContext, slug: str, key_id: int) -> None:
    """Revoke a key; requests with it fail from now on."""
    ctx.services.brands.revoke_key(slug, key_id, actor=ctx.actor)
    click.echo(f"revoked key {key_id} of {slug}")


@brands.group("identity-secret")
def identity_secret() -> None:
    """Secrets with which a brand's site signs its customers' identities (docs/api.md)."""


@identity_secret.command("create")
@click.argument("slug")
@pass_cli
def create_identity_secret(ctx: CliContext, slug: str) -> None:
    """Create a live secret and print it. Others stay live until revoked: rotate by creating
    a new one, moving the site to it, then revoking the old one."""
    brand = ctx.services.brands.get(slug)
    _, plaintext = ctx.services.identity.create_secret(brand, actor=ctx.actor)
    click.echo(plaintext)


@identity_secret.command("list")
@click.argument("slug")
@pass_cli
def list_identity_secrets(ctx: CliContext, slug: str) -> None:
    """List a brand's identity secrets (never their values)."""
    brand = ctx.services.brands.get(slug)
    table([(str(s.id), s.created_by, s.created_at.isoformat(timespec="seconds"),
            "revoked" if s.revoked_at else "live") for s in ctx.services.identity.secrets(brand)],
          ("id", "created by", "created", "state"))


@identity_secret.command("revoke")
@click.argument("slug")
@click.argument("secret_id", type=int)
@pass_cli
def revoke_identity_secret(ctx: CliContext, slug: str, secret_id: int) -> None:
    """Revoke a secret: identities signed with it are refused from now on."""
    brand = ctx.services.brands.get(slug)
    ctx.services.identity.revoke_secret(brand, secret_id, actor=ctx.actor)
    click.echo(f"revoked identity secret {secret_id} of {slug}")


@brands.command("set-policy")
@click.argument("slug")
@click.option("--file", "path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="YAML or JSON: the policy keys to change (docs/supervisor.md); what it "
                   "leaves out, nested fields included, stays as it is.")
@force_options
@pass_cli
def set_policy(ctx: CliContext, slug: str, path: Path, force: bool, reason: str | None) -> None:
    """Change a brand's policy. A change to a threshold (supervision, knowledge relevance,
    identity) goes through the release gate first: every suite of the brand, on the draft and
    on what is live; exit 1, listing the failing cases, if it refuses."""
    services = ctx.services
    brand = services.brands.get(slug)
    changes = _policy_changes(path)
    draft: Policy = validated(Policy, _merged(policy_of(brand).model_dump(mode="json"),
                                              changes))
    try:
        _, result = ReleaseGate(services).publish_policy(brand, draft, ctx.actor,
                                                         force=force_of(force, reason))
    except GateRefused as exc:
        exit_refused(exc)
    echo_result(result)
    click.echo(f"{slug}: policy updated ({', '.join(sorted(changes)) or 'nothing changed'})")


def _merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`current` with `changes` laid over it: a nested mapping is merged key by key (the
    fields a change leaves out keep their values), anything else replaced."""
    merged = dict(current)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            merged[key] = _merged(current[key], value)
        else:
            merged[key] = value
    return merged


def _policy_changes(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidRequest(f"cannot read {path}: {exc}", code="invalid_policy") from exc
    if not isinstance(document, dict):
        raise InvalidRequest(f"{path}: a mapping of policy keys to values",
                             code="invalid_policy")
    return document
