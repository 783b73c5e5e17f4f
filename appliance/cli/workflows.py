"""`appliance workflows ...`: a brand's workflows and tools as files, versions and publishing."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from appliance.cli.context import CliContext, pass_cli, table
from appliance.cli.release import echo_result, exit_refused, force_of, force_options
from appliance.evals.gate import GateRefused, ReleaseGate
from appliance.workflows import schema


def register(cli: click.Group) -> None:
    cli.add_command(workflows)


brand_option = click.option("--brand", "slug", required=True, help="Brand slug.")


@click.group()
def workflows() -> None:
    """A brand's workflows: validate, import, export, publish, roll back, disable."""


@workflows.command("list")
@brand_option
@pass_cli
def list_workflows(ctx: CliContext, slug: str) -> None:
    """List the brand's workflows with status and the version the agent runs."""
    services = ctx.services
    rows = []
    for workflow in services.workflows.all(services.brands.get(slug)):
        latest = services.workflows.version(workflow)
        rows.append((workflow.name, workflow.status, str(workflow.published_version or "-"),
                     f"{latest.number} ({latest.status})",
                     services.workflows.definition(latest).title))
    table(rows, ("name", "status", "published", "latest", "title"))


@workflows.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check workflow (or tools.yaml) files; print each problem with its line; exit 1 if any."""
    failed = False
    for path in files:
        text = path.read_text(encoding="utf-8")
        try:
            if path.name == "tools.yaml":
                schema.parse_toolset(text, path.name)
            else:
                schema.parse_workflow(text, path.name)
        except schema.DefinitionError as exc:
            failed = True
            for error in exc.errors:
                line = error["line"] or "?"
                where = f" {error['path']}:" if error["path"] else ""
                click.echo(f"{path}:{line}:{where} {error['message']}", err=True)
            continue
        click.echo(f"{path}: ok")
    if failed:
        sys.exit(1)


@workflows.command("import")
@brand_option
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--no-publish", is_flag=True, help="Save changed workflows as drafts only.")
@force_options
@pass_cli
def import_(ctx: CliContext, slug: str, directory: Path, no_publish: bool, force: bool,
            reason: str | None) -> None:
    """Load DIRECTORY/tools.yaml and DIRECTORY/workflows/*.yaml (all or nothing), then
    publish each changed workflow through the release gate; exit 1 if it refused any (those
    stay drafts)."""
    services = ctx.services
    forced = force_of(force, reason)
    brand = services.brands.get(slug)
    changed = services.workflows.import_dir(brand, directory, ctx.actor, publish=False)
    click.echo(f"{len(changed)} workflow(s) changed: {', '.join(changed) or 'none'}")
    if no_publish:
        return
    gate, refused = ReleaseGate(services), []
    for name in changed:
        try:
            version, result = gate.publish_workflow(brand, name, ctx.actor, force=forced)
        except GateRefused as exc:
            echo_result(exc.result)
            refused.append(name)
            continue
        echo_result(result)
        click.echo(f"{name}: version {version.number} published")
    if refused:
        click.echo(f"not published, left as drafts: {', '.join(refused)}", err=True)
        sys.exit(1)


@workflows.command()
@brand_option
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_cli
def export(ctx: CliContext, slug: str, directory: Path) -> None:
    """Write tools.yaml and each workflow's latest version to DIRECTORY."""
    services = ctx.services
    for path in services.workflows.export_dir(services.brands.get(slug), directory):
        click.echo(path)


@workflows.command()
@brand_option
@click.argument("name")
@click.option("--version", "number", type=int, help="Version to publish (default: latest).")
@force_options
@pass_cli
def publish(ctx: CliContext, slug: str, name: str, number: int | None, force: bool,
            reason: str | None) -> None:
    """Make a version the one the agent runs, once the release gate passes it (the suites it
    affects, on it and on what is live); exit 1, listing the failing cases, if it refuses."""
    services = ctx.services
    try:
        version, result = ReleaseGate(services).publish_workflow(
            services.brands.get(slug), name, ctx.actor, number, force=force_of(force, reason))
    except GateRefused as exc:
        exit_refused(exc)
    echo_result(result)
    click.echo(f"{name}: version {version.number} published")


@workflows.command()
@brand_option
@click.argument("name")
@pass_cli
def rollback(ctx: CliContext, slug: str, name: str) -> None:
    """Re-publish the version published before the current one."""
    services = ctx.services
    version = services.workflows.rollback(services.brands.get(slug), name, ctx.actor)
    click.echo(f"{name}: rolled back to version {version.number}")


@workflows.command()
@brand_option
@click.argument("name")
@click.option("--enable", is_flag=True, help="Enable it again instead.")
@pass_cli
def disable(ctx: CliContext, slug: str, name: str, enable: bool) -> None:
    """Stop (or, with --enable, resume) running a workflow; its versions are kept."""
    services = ctx.services
    workflow = services.workflows.set_enabled(services.brands.get(slug), name, enable, ctx.actor)
    click.echo(f"{name}: {workflow.status}")


@workflows.command()
@brand_option
@click.argument("name")
@click.argument("old", type=int)
@click.argument("new", type=int)
@pass_cli
def diff(ctx: CliContext, slug: str, name: str, old: int, new: int) -> None:
    """Unified diff between two versions of a workflow."""
    services = ctx.services
    workflow = services.workflows.get(services.brands.get(slug), name)
    for line in services.workflows.diff(workflow, old, new):
        click.echo(line)
