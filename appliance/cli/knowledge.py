"""`appliance knowledge ...`: sources, ingestion, versions, findings and search."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from appliance.cli.context import CliContext, pass_cli, table
from appliance.cli.release import echo_result, exit_refused, force_of, force_options
from appliance.evals.gate import GateRefused, ReleaseGate
from appliance.knowledge.service import SCHEDULES, VISIBILITIES


def register(cli: click.Group) -> None:
    cli.add_command(knowledge)


brand_option = click.option("--brand", "slug", required=True, help="Brand slug.")


@click.group()
def knowledge() -> None:
    """A brand's knowledge: sources, ingestion, versions, review and search."""


@knowledge.group()
def sources() -> None:
    """Knowledge sources and their owners."""


visibility_option = click.option(
    "--visibility", type=click.Choice(VISIBILITIES),
    help="customer: may be quoted and cited to customers; internal: grounds answers only. "
    "Default by kind (docs/knowledge.md).")


@sources.command("add")
@brand_option
@click.option("--kind", required=True, help="faq_html, confluence, slack, zendesk_macros, pdf, "
              "markdown or jsonl.")
@click.option("--path", "location", required=True,
              help="The export folder or file, inside the brand's import folder "
              "(<knowledge_import_dirs>/<slug>/).")
@click.option("--owner", required=True, help="Email of the person who owns this source.")
@click.option("--schedule", type=click.Choice(SCHEDULES), help="Re-ingest on a schedule.")
@visibility_option
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Connector option, e.g. channels=support,billing (repeatable).")
@pass_cli
def add_source(ctx: CliContext, slug: str, kind: str, location: str, owner: str,
               schedule: str | None, visibility: str | None, options: tuple[str, ...]) -> None:
    """Add a source; prints its id. Its path must lie in the brand's import folder, for IT as
    for the admin pages: one brand's sources never read another brand's exports."""
    parsed: dict[str, object] = {}
    for option in options:
        key, _, value = option.partition("=")
        parsed[key.strip()] = [v for v in value.split(",") if v] if "," in value else value
    services = ctx.services
    source = services.knowledge.add_source(
        services.brands.get(slug),
        {"kind": kind, "location": location, "owner": owner, "schedule": schedule,
         "visibility": visibility, "options": parsed},
        actor=ctx.actor,
    )
    click.echo(source.id)


@sources.command("edit")
@brand_option
@click.argument("source_id", type=int)
@click.option("--path", "location", help="A new location, inside the brand's import folder.")
@click.option("--owner", help="Email of the new owner.")
@click.option("--schedule", type=click.Choice([*SCHEDULES, "none"]),
              help="Re-ingest on a schedule, or none.")
@visibility_option
@pass_cli
def edit_source(ctx: CliContext, slug: str, source_id: int, location: str | None,
                owner: str | None, schedule: str | None, visibility: str | None) -> None:
    """Change a source's path, owner, schedule or visibility (a visibility change holds
    from the next answer, without re-ingesting)."""
    services = ctx.services
    source = services.knowledge.update_source(
        services.brands.get(slug), source_id,
        {"location": location, "owner": owner, "visibility": visibility,
         "schedule": "" if schedule == "none" else schedule},
        actor=ctx.actor,
    )
    click.echo(f"source {source.id}: {source.kind}, {source.visibility}, {source.location}")


@sources.command("list")
@brand_option
@pass_cli
def list_sources(ctx: CliContext, slug: str) -> None:
    """List a brand's sources with owner, schedule, visibility and last run; a location
    outside the brand's import folder (registered before folders were per brand) is
    marked "(outside import folder)"."""
    services = ctx.services
    brand = services.brands.get(slug)
    knowledge = services.knowledge
    table([(str(s.id), s.kind, s.owner, s.schedule or "-", s.visibility,
            s.last_run_at.isoformat(timespec="seconds") if s.last_run_at else "never",
            s.last_status or "-",
            s.location if knowledge.in_import_folder(brand, Path(s.location))
            else f"{s.location} (outside import folder)")
           for s in knowledge.sources(brand)],
          ("id", "kind", "owner", "schedule", "visibility", "last run", "status", "location"))


@knowledge.command()
@brand_option
@click.option("--source", "source_id", type=int, help="Only this source (others keep theirs).")
@click.option("--publish", is_flag=True,
              help="Publish the new version at once, through the release gate.")
@force_options
@pass_cli
def ingest(ctx: CliContext, slug: str, source_id: int | None, publish: bool, force: bool,
           reason: str | None) -> None:
    """Read the sources and make a draft version (with --publish, published once the release
    gate passes it); exit 1 if any document failed or the gate refused."""
    forced = force_of(force, reason)
    services = ctx.services
    brand = services.brands.get(slug)
    state = {"stage": ""}

    def progress(stage: str, done: int, total: int) -> None:
        if stage != state["stage"]:
            if state["stage"]:
                click.echo("", err=True)
            state["stage"] = stage
        if total:
            filled = 30 * done // total
            shown = f"[{'#' * filled}{'-' * (30 - filled)}] {done}/{total}"
        else:
            shown = str(done)
        click.echo(f"\r{stage:<6} {shown}", nl=False, err=True)

    outcome = services.knowledge.ingest(brand, source_id=source_id, progress=progress,
                                        actor=ctx.actor)
    click.echo("", err=True)
    version = outcome.version
    refused = None
    if publish and version is not None:
        try:
            version, result = ReleaseGate(services).publish_knowledge(
                brand, version.number, ctx.actor, force=forced)
        except GateRefused as exc:
            refused = exc
        else:
            echo_result(result)
    stats = outcome.run.stats or {}
    label = f"{version.number} ({version.status})" if version else "-"
    click.echo(f"version {label}: {stats.get('documents', 0)} documents, "
               f"{stats.get('articles', 0)} articles, {stats.get('chunks', 0)} chunks, "
               f"{stats.get('contradictions', 0)} contradictions, {stats.get('stale', 0)} stale")
    if version is not None:
        changes = version.diff
        click.echo(f"diff against published: +{len(changes['added'])} "
                   f"~{len(changes['changed'])} -{len(changes['removed'])}")
    if outcome.errors:
        click.echo(f"{len(outcome.errors)} document(s) failed:", err=True)
        for error in outcome.errors:
            click.echo(f"  source {error['source']} {error['document']}: {error['error']}",
                       err=True)
        sys.exit(1)
    if refused is not None:
        exit_refused(refused)


@knowledge.command()
@brand_option
@pass_cli
def versions(ctx: CliContext, slug: str) -> None:
    """List versions, newest first."""
    services = ctx.services
    table([(str(v.number), v.status, v.created_at.isoformat(timespec="seconds"),
            str(v.stats.get("articles")), str(v.stats.get("chunks")), v.index_kind,
            f"+{len(v.diff['added'])} ~{len(v.diff['changed'])} -{len(v.diff['removed'])}")
           for v in services.knowledge.versions(services.brands.get(slug))],
          ("version", "status", "created", "articles", "chunks", "index", "diff"))


@knowledge.command()
@brand_option
@click.option("--from", "old", type=int, help="Base version (default: the published one).")
@click.option("--to", "new", type=int, required=True, help="Version to compare.")
@click.option("--json", "as_json", is_flag=True)
@pass_cli
def diff(ctx: CliContext, slug: str, old: int | None, new: int, as_json: bool) -> None:
    """Articles added, changed and removed between two versions."""
    services = ctx.services
    changes = services.knowledge.diff(services.brands.get(slug), old, new)
    if as_json:
        click.echo(json.dumps(changes, indent=2))
        return
    for kind, sign in (("added", "+"), ("changed", "~"), ("removed", "-")):
        for key in changes[kind]:
            click.echo(f"{sign} {key}")


@knowledge.command()
@brand_option
@click.argument("version", type=int)
@force_options
@pass_cli
def publish(ctx: CliContext, slug: str, version: int, force: bool, reason: str | None) -> None:
    """Publish a version once the release gate passes it (the knowledge suite and the cases
    citing sources, on it and on the published version): the agent answers from it from now
    on. Exit 1, listing the failing cases, if the gate refuses."""
    services = ctx.services
    try:
        _, result = ReleaseGate(services).publish_knowledge(
            services.brands.get(slug), version, ctx.actor, force=force_of(force, reason))
    except GateRefused as exc:
        exit_refused(exc)
    echo_result(result)
    click.echo(f"published version {version}")


@knowledge.command()
@brand_option
@pass_cli
def rollback(ctx: CliContext, slug: str) -> None:
    """Publish again the version published before the current one."""
    services = ctx.services
    version = services.knowledge.rollback(services.brands.get(slug), actor=ctx.actor)
    click.echo(f"published version {version.number}")


@knowledge.command()
@brand_option
@click.option("--owner", help="Only findings for this source owner.")
@click.option("--json", "as_json", is_flag=True)
@pass_cli
def findings(ctx: CliContext, slug: str, owner: str | None, as_json: bool) -> None:
    """Contradictions and stale pages to review, in the published (or newest) version."""
    services = ctx.services
    rows = services.knowledge.findings(services.brands.get(slug), owner=owner)
    if as_json:
        click.echo(json.dumps([{"kind": f.kind, "article": f.article.key, "owner": f.owner,
                                "detail": f.detail} for f in rows], indent=2))
        return
    table([(f.kind, f.article.key, f.owner, _finding_summary(f.kind, f.detail))
           for f in rows], ("kind", "article", "owner", "detail"))


def _finding_summary(kind: str, detail: dict[str, Any]) -> str:
    if kind == "stale":
        return f"{detail.get('age_days')} days old: {detail.get('location')}"
    return " <> ".join(str(p.get("text", "")) for p in detail.get("passages", []))


@knowledge.command()
@brand_option
@click.option("--k", default=5, show_default=True, help="How many hits.")
@click.option("--json", "as_json", is_flag=True)
@click.argument("query")
@pass_cli
def search(ctx: CliContext, slug: str, k: int, as_json: bool, query: str) -> None:
    """What the agent would retrieve for QUERY from the published version."""
    services = ctx.services
    version, hits = services.knowledge.search(services.brands.get(slug), query, k)
    rows: list[dict[str, Any]] = [{
        "article": hit.article_key, "source_ids": [p["external_id"] for p in hit.provenance],
        "title": hit.title, "score": round(hit.score, 4), "text": hit.text,
        "source": hit.provenance[0] if hit.provenance else None,
    } for hit in hits]
    if as_json:
        click.echo(json.dumps({"version": version.number if version else None, "hits": rows},
                              indent=2))
        return
    if version is None:
        click.echo("no published knowledge version", err=True)
        sys.exit(1)
    for row in rows:
        click.echo(f"{row['score']:.3f}  {row['article']}  {row['title']}")
        click.echo(f"       {row['text'][:160]}")
