"""`appliance models list|verify`."""

from __future__ import annotations

import sys

import click

from appliance.cli.context import CliContext, pass_cli, table
from appliance.llm.manifest import load_manifest, verify


def register(cli: click.Group) -> None:
    cli.add_command(models)


@click.group()
def models() -> None:
    """The model store."""


@models.command("list")
@pass_cli
def list_models(ctx: CliContext) -> None:
    """List every model in the manifest and the active profile's routes."""
    settings = ctx.settings
    manifest = load_manifest(settings.model_store)
    table([(s.id, s.role, s.profile, s.backend, str(s.path or s.url), s.license)
           for s in manifest.models.values()],
          ("id", "role", "profile", "backend", "location", "license"))
    for task, ids in manifest.profiles.get(settings.model_profile, {}).items():
        click.echo(f"\nprofile {settings.model_profile}, task {task}: {' -> '.join(ids)}")


@models.command("verify")
@click.option("--all", "check_all", is_flag=True, help="Also models outside the active profile.")
@pass_cli
def verify_models(ctx: CliContext, check_all: bool) -> None:
    """Check model files against the manifest's size and sha256; exit 1 on any problem.

    Models the active profile routes to, and the signal classifiers, must be present and
    match, except that an optional model (the operator may supply it) may be absent. Others
    are reported.
    """
    settings = ctx.settings
    manifest = load_manifest(settings.model_store)
    routed = {m for ids in manifest.profiles.get(settings.model_profile, {}).values() for m in ids}
    # Files a routed model needs (an embedder's tokenizer) are required too, and so are the
    # signal classifiers, which every profile runs.
    routed |= {str(manifest.models[m].options["tokenizer"]) for m in list(routed)
               if "tokenizer" in manifest.models[m].options}
    routed |= {spec.id for spec in manifest.models.values() if spec.role == "classifier"}
    rows, failed = [], False
    for spec in manifest.models.values():
        if not check_all and spec.id not in routed:
            continue
        result = verify(spec)
        required = spec.id in routed and not (spec.optional and result.status == "missing")
        failed |= required and not result.ok
        rows.append((spec.id, result.status, "required" if required else "optional",
                     result.detail))
    table(rows, ("model", "status", "need", "detail"))
    if failed:
        sys.exit(1)
