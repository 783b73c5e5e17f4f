"""A brand's knowledge: sources and ingestion, versions (diff, publish, rollback), findings to
review and a search showing what the agent would retrieve. Readers see; editors act.

Everything goes through `KnowledgeService`, as the CLI's `appliance knowledge ...` does, so a
change made here is validated and audited the same way (the service audits added sources and
publishing; an ingestion is recorded as its IngestRun).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance.agent.conversations import PROMPT_K, RETRIEVE_K
from appliance.brands import policy_of
from appliance.db.models import Brand, KnowledgeVersion
from appliance.errors import ConfigError, Conflict, InvalidRequest, PermissionDenied
from appliance.evals.gate import FORCE_ROLE, Force, GateRefused, ReleaseGate
from appliance.knowledge.connectors import KINDS
from appliance.knowledge.ingest import RunOutcome
from appliance.knowledge.service import SCHEDULES, VISIBILITIES, KnowledgeService
from appliance.web import services_of_app
from appliance.web.admin import bp
from appliance.web.admin.auth import EDITOR_ROLES, READER_ROLES, login_required, signed_in_user
from appliance.web.admin.scope import brand_for

SOURCE_FIELDS = ("kind", "location", "owner", "schedule", "visibility")
#: What the sources table may change on a source (its visibility select).
EDITABLE_FIELDS = ("location", "owner", "schedule", "visibility")
RUNS_SHOWN = 10
QUERY_MAX = 500
VISIBILITY_MEANS = {
    "customer": "its passages may be quoted and cited to customers.",
    "internal": "its passages ground answers and are never quoted or cited to customers.",
}
#: Failed documents named in the flash after an ingestion; the runs table lists them all.
ERRORS_IN_FLASH = 3


def _knowledge() -> KnowledgeService:
    return services_of_app().knowledge


def can_roll_back(versions: list[KnowledgeVersion]) -> bool:
    """Whether `rollback` has an earlier published version to go back to."""
    return any(v.published_at is not None and v.status != "published" for v in versions)


def _render_overview(
    brand: Brand, *, form: dict[str, str] | None = None, error: InvalidRequest | None = None,
) -> str:
    service = _knowledge()
    versions = service.versions(brand)
    published = next((v for v in versions if v.status == "published"), None)
    sources = service.sources(brand)
    return render_template(
        "admin/knowledge.html", brand=brand, sources=sources,
        versions=versions, published=published,
        can_roll_back=can_roll_back(versions),
        runs=service.runs(brand, RUNS_SHOWN), kinds=KINDS, schedules=SCHEDULES,
        visibilities=VISIBILITIES, import_folders=service.import_folders(brand),
        outside={s.id for s in sources if not service.in_import_folder(brand, Path(s.location))},
        form=form or dict.fromkeys(SOURCE_FIELDS, ""), error=error, editor_roles=EDITOR_ROLES,
    )


@bp.get("/brands/<slug>/knowledge")
@login_required(*READER_ROLES)
def knowledge(slug: str) -> ResponseReturnValue:
    return _render_overview(brand_for(signed_in_user(), slug))


@bp.post("/brands/<slug>/knowledge/sources")
@login_required(*EDITOR_ROLES)
def knowledge_add_source(slug: str) -> ResponseReturnValue:
    user = signed_in_user()
    found = brand_for(user, slug)
    form = {name: request.form.get(name, "").strip() for name in SOURCE_FIELDS}
    try:
        for name, value in form.items():
            if "\x00" in value:  # no database stores NUL
                raise InvalidRequest(f"{name}: contains a NUL character", param=name)
        source = _knowledge().add_source(
            found, {**form, "schedule": form["schedule"] or None,
                    "visibility": form["visibility"] or None}, actor=user.username)
    except InvalidRequest as exc:
        return _render_overview(found, form=form, error=exc), 400
    flash(f"Added {source.kind} source #{source.id} ({source.visibility}). Ingest to read it.",
          "success")
    return redirect(url_for("admin.knowledge", slug=found.slug))


@bp.post("/brands/<slug>/knowledge/sources/<int:source_id>")
@login_required(*EDITOR_ROLES)
def knowledge_edit_source(slug: str, source_id: int) -> ResponseReturnValue:
    """Change the fields of a source the form sends (the sources table sends its
    visibility), through the same checks as the CLI's `sources edit`."""
    user = signed_in_user()
    found = brand_for(user, slug)
    changes = {name: request.form[name].replace("\x00", "").strip()
               for name in EDITABLE_FIELDS if name in request.form}
    try:
        source = _knowledge().update_source(found, source_id, changes, actor=user.username)
    except InvalidRequest as exc:
        flash(f"Source #{source_id} not changed: {exc.message}", "error")
    else:
        flash(f"Source #{source.id} is {source.visibility}: {VISIBILITY_MEANS[source.visibility]}",
              "success")
    return redirect(url_for("admin.knowledge", slug=found.slug))


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def ingest_summary(outcome: RunOutcome) -> str:
    """One line for the flash: the version made, its counts, the diff and failed documents."""
    stats = outcome.run.stats or {}
    version = outcome.version
    counts = ", ".join(_n(stats.get(noun + "s", 0), noun)
                       for noun in ("document", "article", "chunk", "contradiction"))
    parts = [
        f"Ingested version {version.number} ({version.status})" if version else "Ingested",
        f": {counts}, {stats.get('stale', 0)} stale.",
    ]
    if version is not None:
        diff = version.diff
        parts.append(f" Against the published version: {len(diff['added'])} added, "
                     f"{len(diff['changed'])} changed, {len(diff['removed'])} removed.")
    if outcome.errors:
        named = "; ".join(
            f"source {e['source']} {e['document'] or '(whole source)'}: {e['error']}"
            for e in outcome.errors[:ERRORS_IN_FLASH]
        )
        more = len(outcome.errors) - ERRORS_IN_FLASH
        parts.append(f" {_n(len(outcome.errors), 'document')} failed: {named}"
                     + (f"; and {more} more (see Recent runs)." if more > 0 else "."))
    return "".join(parts)


@bp.post("/brands/<slug>/knowledge/ingest")
@login_required(*EDITOR_ROLES)
def knowledge_ingest(slug: str) -> ResponseReturnValue:
    user = signed_in_user()
    found = brand_for(user, slug)
    source_id = request.form.get("source_id", type=int)
    try:
        # Synchronous: a small source takes seconds, and the worker timeout allows minutes.
        outcome = _knowledge().ingest(found, source_id=source_id, actor=user.username)
    except (Conflict, InvalidRequest) as exc:  # already running; no sources
        flash(f"Not ingested: {exc.message}", "error")
    else:
        flash(ingest_summary(outcome), "error" if outcome.errors else "success")
    return redirect(url_for("admin.knowledge", slug=found.slug))


def _diff_against(
    brand: Brand, version: KnowledgeVersion, base_number: int | None,
) -> tuple[dict[str, list[str]], KnowledgeVersion | None]:
    """The diff to show and the version it is against; None: against the version that was
    published when this one was made (as recorded then)."""
    service = _knowledge()
    if base_number is not None:
        return service.diff(brand, base_number, version.number), service.version(
            brand, base_number)
    published = service.published(brand)
    if published is not None and published.id != version.id:
        return service.diff(brand, None, version.number), published
    recorded: dict[str, list[str]] = version.diff
    return recorded, None


@bp.get("/brands/<slug>/knowledge/versions/<int:number>")
@login_required(*READER_ROLES)
def knowledge_version(slug: str, number: int) -> ResponseReturnValue:
    found = brand_for(signed_in_user(), slug)
    service = _knowledge()
    version = service.version(found, number)
    changes, base = _diff_against(found, version, request.args.get("from", type=int))
    keys = {key for group in changes.values() for key in group}
    versions = service.versions(found)
    return render_template(
        "admin/knowledge_version.html", brand=found, version=version, base=base,
        changes=changes, titles=service.article_titles(
            found, [v for v in (version, base) if v], keys),
        versions=versions, can_roll_back=can_roll_back(versions), editor_roles=EDITOR_ROLES,
        force_role=FORCE_ROLE,
    )


@bp.post("/brands/<slug>/knowledge/versions/<int:number>/publish")
@login_required(*EDITOR_ROLES)
def knowledge_publish(slug: str, number: int) -> ResponseReturnValue:
    """Publish through the release gate (the knowledge suite and the cases citing sources,
    on this version and on the published one); `force` with a `reason` publishes past a
    refusal (it_admin, audited)."""
    user = signed_in_user()
    found = brand_for(user, slug)
    service = _knowledge()
    force = (Force(request.form.get("reason", "").strip(), user.role)
             if request.form.get("force") else None)
    if service.version(found, number).status == "published":
        flash(f"Version {number} is already published.", "info")
    else:
        try:
            _, result = ReleaseGate(services_of_app()).publish_knowledge(
                found, number, user.username, force=force)
        except GateRefused as exc:
            flash(f"Not published: the release gate refused it. {exc.message}", "error")
        except (Conflict, InvalidRequest, PermissionDenied, ConfigError) as exc:
            # its index is missing on disk, or the evals' test systems cannot be reached
            flash(f"Not published: {exc.message}", "error")
        else:
            flash(f"Published version {number}: the agent answers from it now. Release gate: "
                  f"{result.summary()}", "success")
    return redirect(url_for("admin.knowledge_version", slug=found.slug, number=number))


@bp.post("/brands/<slug>/knowledge/rollback")
@login_required(*EDITOR_ROLES)
def knowledge_rollback(slug: str) -> ResponseReturnValue:
    user = signed_in_user()
    found = brand_for(user, slug)
    try:
        version = _knowledge().rollback(found, actor=user.username)
    except Conflict as exc:  # nothing earlier, or its index is gone
        flash(f"Not rolled back: {exc.message}", "error")
    else:
        flash(f"Rolled back: version {version.number} is published again.", "success")
    return redirect(url_for("admin.knowledge", slug=found.slug))


@bp.get("/brands/<slug>/knowledge/review")
@login_required(*READER_ROLES)
def knowledge_review(slug: str) -> ResponseReturnValue:
    found = brand_for(signed_in_user(), slug)
    service = _knowledge()
    version = service.published(found) or next(iter(service.versions(found)), None)
    owner = request.args.get("owner", "").strip()
    findings = service.findings(found, version, owner=owner or None) if version else []
    owners = sorted({source.owner for source in service.sources(found)} | (
        {owner} if owner else set()))
    return render_template(
        "admin/knowledge_review.html", brand=found, version=version, owner=owner,
        owners=owners, contradictions=[f for f in findings if f.kind == "contradiction"],
        stale=[f for f in findings if f.kind == "stale"],
    )


def _search(brand: Brand, query: str) -> dict[str, Any]:
    """What the agent's retrieval step gets for `query`, and which hits reach its prompt."""
    if not query:
        return {"version": None, "hits": [], "used": set()}
    version, hits = _knowledge().search(brand, query, RETRIEVE_K)
    threshold = policy_of(brand).knowledge_min_score
    used = {hit.chunk_id for hit in [h for h in hits if h.score >= threshold][:PROMPT_K]}
    return {"version": version, "hits": hits, "used": used}


@bp.get("/brands/<slug>/knowledge/search")
@login_required(*READER_ROLES)
def knowledge_search(slug: str) -> ResponseReturnValue:
    found = brand_for(signed_in_user(), slug)
    query = request.args.get("q", "").replace("\x00", "").strip()[:QUERY_MAX]
    return render_template(
        "admin/knowledge_search.html", brand=found, query=query, query_max=QUERY_MAX,
        threshold=policy_of(found).knowledge_min_score, retrieve_k=RETRIEVE_K, prompt_k=PROMPT_K,
        **_search(found, query),
    )

