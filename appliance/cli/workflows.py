"""`appliance workflows ...`: a brand's workflows and tools as files, versions and publishing."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from appliance.cli.context import CliContext, pass_cli, table
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
@pass_cli
def import_(ctx: CliContext, slug: str, directory: Path, no_publish: bool) -> None:
    """Load DIRECTORY/tools.yaml and DIRECTORY/workflows/*.yaml (all or nothing)."""
    services = ctx.services
    changed = services.workflows.import_dir(services.brands.get(slug), directory, ctx.actor,
                                            publish=not no_publish)
    click.echo(f"{len(changed)} workflow(s) changed: {', '.join(changed) or 'none'}")


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
@pass_cli
def publish(ctx: CliContext, slug: str, name: str, number: int | None) -> None:
    """Make a version the one the agent runs."""
    services = ctx.services
    version = services.workflows.publish(services.brands.get(slug), name, ctx.actor, number)
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
