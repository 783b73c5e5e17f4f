"""Workflows of a brand: authoring (drafts, publish, rollback, disable, diff, import/export)
and what the agent runs (the published set, its trigger matcher and the brand's tools).

A workflow has numbered versions. Saving edits the draft (a new draft version is opened when
the latest one is published); publishing makes the draft the version the agent runs and
rebuilds the brand's trigger matcher; rollback re-publishes the version published before.
Every change is one transaction with its audit entry: a rejected definition saves nothing.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import peewee

from appliance import audit
from appliance.db.models import Brand, ToolCall, Toolset, Workflow, WorkflowVersion, utcnow
from appliance.errors import Conflict, InvalidRequest, NotFound
from appliance.signals.base import Embedder
from appliance.workflows import schema
from appliance.workflows.extract import (
    NO_FORMATS,
    Formats,
    asks_for_information,
    extract,
    without_identifiers,
)
from appliance.workflows.tools import ToolCallRecord, ToolRunner

log = logging.getLogger(__name__)
DRAFT, PUBLISHED, RETIRED, DISABLED = "draft", "published", "retired", "disabled"
#: A message this close (cosine, on the shared embedding) to a workflow's example starts it,
#: when no other workflow's example is within the margin.
MATCH_THRESHOLD = 0.55
MATCH_MARGIN = 0.03


@dataclass(frozen=True)
class Match:
    workflow: str
    score: float
    via: str  # phrase | example | intent | identity


@dataclass
class BrandWorkflows:
    """What the agent runs for one brand: published definitions, tools and the matcher."""

    workflows: dict[str, schema.Workflow]
    versions: dict[str, int]
    toolset: schema.Toolset | None
    identity: schema.Workflow | None
    #: One row per trigger example, L2-normalised, and the workflow each belongs to.
    example_vectors: np.ndarray | None = None
    example_owner: list[str] = field(default_factory=list)
    embed: Callable[[str], np.ndarray] | None = None

    @property
    def formats(self) -> Formats:
        """How the brand writes its identifiers (its toolset's `formats`)."""
        return self.toolset.formats if self.toolset is not None else NO_FORMATS

    def match(self, text: str, vector: np.ndarray | None, intent: str | None,
              intent_understood: bool) -> Match | None:
        """The workflow a message starts: in a request (not a question about how things
        work), the workflow whose trigger phrase comes first in it; else the one with the
        closest trigger example, when close enough and clearly closer than any other
        workflow's; else a workflow that lists the message's (understood) intent; else,
        for a message that only says who the customer is ("I'm Yusuf Rossi, zip 19122"),
        the identity workflow. Emails and ids are taken out of the message first ("cancel
        #123, I'm jo@x.com" asks what "cancel" asks)."""
        if not asks_for_information(text):
            said = self._phrase(text)
            if said is not None:
                return said
        bare = without_identifiers(text)
        if bare != text and self.embed is not None and bare:
            vector = self.embed(bare)
        if vector is not None and self.example_vectors is not None and len(self.example_owner):
            scores = self.example_vectors @ vector
            best: dict[str, float] = {}
            for owner, score in zip(self.example_owner, scores.tolist(), strict=True):
                best[owner] = max(score, best.get(owner, -1.0))
            ranked = sorted(best.items(), key=lambda item: -item[1])
            top, score = ranked[0]
            runner_up = ranked[1][1] if len(ranked) > 1 else -1.0
            if score >= MATCH_THRESHOLD and score - runner_up >= MATCH_MARGIN:
                return Match(top, score, "example")
        if intent and intent_understood:
            listing = [name for name, workflow in self.workflows.items()
                       if intent in workflow.triggers.intents]
            if len(listing) == 1:  # an intent two workflows list decides nothing
                return Match(listing[0], 1.0, "intent")
        if self.identity is not None and identifies(self.identity, text, self.formats):
            return Match(self.identity.name, 1.0, "identity")
        return None

    def _phrase(self, text: str) -> Match | None:
        """The workflow whose trigger phrase the message has first, if any."""
        found = [(hit.start(), name) for name, workflow in self.workflows.items()
                 for phrase in workflow.triggers.phrases
                 if (hit := re.search(phrase, text, re.IGNORECASE)) is not None]
        return Match(min(found)[1], 1.0, "phrase") if found else None


def identifies(identity: schema.Workflow, text: str, formats: Formats = NO_FORMATS) -> bool:
    """Whether the message gives everything one of the identity workflow's ways to verify a
    customer needs (an email; or a name and a zip code), without being asked."""
    ask = next((step for step in identity.steps if step.kind == "ask"), None)
    if ask is None:
        return False
    return any(all(extract(identity.slots[slot], text, {}, asked=False,
                           formats=formats) is not None
                   for slot in group) for group in (ask.asks, *ask.alternatives))


@dataclass(frozen=True)
class ToolsetUse:
    """The workflows (names, sorted) that use each of a brand's tools and formats."""

    tools: dict[str, tuple[str, ...]]
    formats: dict[str, tuple[str, ...]]


class WorkflowService:
    def __init__(self, db: peewee.Database, embedder: Embedder) -> None:
        self._db = db
        self._embedder = embedder
        self._cache: dict[int, tuple[Any, BrandWorkflows]] = {}
        #: brand id -> (the running set it was built on, draft version key, the built set)
        self._drafts: dict[int, tuple[BrandWorkflows, Any, BrandWorkflows]] = {}
        self._lock = threading.Lock()

    # -- authoring -------------------------------------------------------------------------

    def all(self, brand: Brand) -> list[Workflow]:
        return list(Workflow.select().where(Workflow.brand == brand).order_by(Workflow.name))

    def get(self, brand: Brand, name: str) -> Workflow:
        workflow = Workflow.get_or_none((Workflow.brand == brand) & (Workflow.name == name))
        if workflow is None:
            raise NotFound(f"no workflow {name!r}", code="workflow_not_found")
        return workflow

    def versions(self, workflow: Workflow) -> list[WorkflowVersion]:
        return list(WorkflowVersion.select().where(WorkflowVersion.workflow == workflow)
                    .order_by(WorkflowVersion.number.desc()))

    def version(self, workflow: Workflow, number: int | None = None) -> WorkflowVersion:
        """Version `number`, or the latest."""
        query = WorkflowVersion.select().where(WorkflowVersion.workflow == workflow)
        if number is not None:
            query = query.where(WorkflowVersion.number == number)
        found: WorkflowVersion | None = query.order_by(WorkflowVersion.number.desc()).first()
        if found is None:
            raise NotFound(f"workflow {workflow.name!r} has no version {number}",
                           code="workflow_version_not_found")
        return found

    def definition(self, version: WorkflowVersion) -> schema.Workflow:
        return schema.Workflow.model_validate(version.definition)

    def save_draft(self, brand: Brand, source: str, actor: str, note: str | None = None,
                   name: str | None = None) -> WorkflowVersion:
        """Validate `source` and store it as the workflow's draft. `name`, when given, is the
        workflow being edited: the document must keep it."""
        parsed = schema.parse_workflow(source)
        if name is not None and parsed.name != name:
            raise InvalidRequest(f"the document names workflow {parsed.name!r}, not {name!r}",
                                 param="name", code="workflow_renamed")
        self._check_tools(brand, parsed)
        with self._db.atomic():
            workflow = Workflow.get_or_none((Workflow.brand == brand)
                                            & (Workflow.name == parsed.name))
            latest = None if workflow is None else self.version(workflow)
            if workflow is None:
                workflow = Workflow.create(brand=brand, name=parsed.name, status=DRAFT)
            definition = parsed.model_dump(mode="json")
            if latest is not None and latest.status == DRAFT:
                latest.source, latest.definition = source, definition
                latest.note, latest.created_by, latest.created_at = note, actor, utcnow()
                latest.save()
                version = latest
            else:
                version = WorkflowVersion.create(
                    workflow=workflow, number=(latest.number + 1) if latest else 1,
                    status=DRAFT, source=source, definition=definition, note=note,
                    created_by=actor)
            workflow.updated_at = utcnow()
            workflow.save()
            audit.record(actor, "workflow.save", f"{brand.slug}/{parsed.name}",
                         {"version": version.number})
        return version

    def publish(self, brand: Brand, name: str, actor: str,
                number: int | None = None) -> WorkflowVersion:
        """Make version `number` (default: the latest) the one the agent runs."""
        with self._db.atomic():
            workflow = self.get(brand, name)
            version = self.version(workflow, number)
            self._check_tools(brand, self.definition(version))
            self._make_current(workflow, version)
            audit.record(actor, "workflow.publish", f"{brand.slug}/{name}",
                         {"version": version.number})
        self._invalidate(brand)
        return version

    def rollback(self, brand: Brand, name: str, actor: str) -> WorkflowVersion:
        """Re-publish the version that was published before the current one."""
        with self._db.atomic():
            workflow = self.get(brand, name)
            current = workflow.published_version
            earlier: WorkflowVersion | None = (WorkflowVersion.select().where(
                (WorkflowVersion.workflow == workflow) & (WorkflowVersion.status == RETIRED)
                & (WorkflowVersion.published_at.is_null(False))
                & (WorkflowVersion.number < (current or 0)))
                .order_by(WorkflowVersion.number.desc()).first())
            if current is None or earlier is None:
                raise Conflict(f"workflow {name!r} has no earlier published version",
                               code="nothing_to_roll_back")
            self._make_current(workflow, earlier)
            audit.record(actor, "workflow.rollback", f"{brand.slug}/{name}",
                         {"from": current, "to": earlier.number})
        self._invalidate(brand)
        return earlier

    def set_enabled(self, brand: Brand, name: str, enabled: bool, actor: str) -> Workflow:
        with self._db.atomic():
            workflow = self.get(brand, name)
            if enabled and workflow.published_version is None:
                raise Conflict(f"workflow {name!r} has never been published",
                               code="workflow_unpublished")
            workflow.status = PUBLISHED if enabled else DISABLED
            workflow.updated_at = utcnow()
            workflow.save()
            audit.record(actor, "workflow.enable" if enabled else "workflow.disable",
                         f"{brand.slug}/{name}")
        self._invalidate(brand)
        return workflow

    def diff(self, workflow: Workflow, a: int, b: int) -> list[str]:
        """Unified diff of two versions' YAML."""
        old, new = self.version(workflow, a), self.version(workflow, b)
        return list(difflib.unified_diff(
            old.source.splitlines(), new.source.splitlines(),
            fromfile=f"{workflow.name} v{a}", tofile=f"{workflow.name} v{b}", lineterm=""))

    def _make_current(self, workflow: Workflow, version: WorkflowVersion) -> None:
        now = utcnow()
        (WorkflowVersion.update(status=RETIRED)
         .where((WorkflowVersion.workflow == workflow)
                & (WorkflowVersion.status == PUBLISHED)).execute())
        version.status, version.published_at = PUBLISHED, version.published_at or now
        version.save()
        workflow.status, workflow.published_version, workflow.updated_at = (
            PUBLISHED, version.number, now)
        workflow.save()

    # -- tools -----------------------------------------------------------------------------

    def save_toolset(self, brand: Brand, source: str, actor: str) -> Toolset:
        """Validate `source` and store it as the brand's tools and formats. Refused
        (`toolset_in_use`) when it drops a tool or a format that a published or draft workflow
        of the brand uses: those workflows must change first."""
        parsed = schema.parse_toolset(source)
        with self._db.atomic():
            self._check_kept(brand, self.toolset(brand), parsed)
            row = self._store_toolset(brand, source, parsed, actor)
        self._invalidate(brand)
        return row

    def _store_toolset(self, brand: Brand, source: str, parsed: schema.Toolset,
                       actor: str) -> Toolset:
        row = Toolset.get_or_none(Toolset.brand == brand)
        definition = parsed.model_dump(mode="json")
        if row is None:
            row = Toolset.create(brand=brand, source=source, definition=definition,
                                 updated_by=actor)
        else:
            row.source, row.definition, row.updated_by, row.updated_at = (
                source, definition, actor, utcnow())
            row.save()
        audit.record(actor, "toolset.save", brand.slug,
                     {"tools": [tool.name for tool in parsed.tools]})
        return row

    def toolset_use(self, brand: Brand) -> ToolsetUse:
        """Which workflows use each tool and each format: those whose published version (the
        one the agent runs, or would again once enabled) or draft calls it or reads a slot of
        it."""
        tools: dict[str, set[str]] = {}
        formats: dict[str, set[str]] = {}
        rows = (WorkflowVersion.select(WorkflowVersion, Workflow).join(Workflow)
                .where((Workflow.brand == brand)
                       & ((WorkflowVersion.status == DRAFT)
                          | (WorkflowVersion.number == Workflow.published_version))))
        for version in rows:
            definition = self.definition(version)
            for tool in definition.tools:
                tools.setdefault(tool, set()).add(definition.name)
            for slot in definition.slots.values():
                if slot.type not in schema.SLOT_TYPES:
                    formats.setdefault(slot.type, set()).add(definition.name)
        return ToolsetUse({name: tuple(sorted(names)) for name, names in tools.items()},
                          {name: tuple(sorted(names)) for name, names in formats.items()})

    def _check_kept(self, brand: Brand, before: schema.Toolset | None,
                    after: schema.Toolset) -> None:
        """Every tool and format of `before` that a workflow uses is in `after` too."""
        if before is None:
            return
        use = self.toolset_use(brand)
        dropped: dict[str, list[str]] = {}
        for kind, used, old, new in (
                ("tool", use.tools, {t.name for t in before.tools}, {t.name for t in after.tools}),
                ("format", use.formats, set(before.formats), set(after.formats))):
            for name in sorted((old - new) & set(used)):
                for workflow in used[name]:
                    dropped.setdefault(workflow, []).append(f"{kind} {name}")
        if dropped:
            named = "; ".join(f"{workflow} uses {', '.join(things)}"
                              for workflow, things in sorted(dropped.items()))
            lost_format = any(thing.startswith("format ") for things in dropped.values()
                              for thing in things)
            raise InvalidRequest(
                f"the brand's workflows use what this document no longer defines: {named}. "
                "Change or retire those workflows first.",
                param="formats" if lost_format else "tools", code="toolset_in_use")

    def toolset_row(self, brand: Brand) -> Toolset | None:
        """The brand's tools document as stored (its source, who saved it and when)."""
        row: Toolset | None = Toolset.get_or_none(Toolset.brand == brand)
        return row

    def toolset(self, brand: Brand) -> schema.Toolset | None:
        row = self.toolset_row(brand)
        return schema.Toolset.model_validate(row.definition) if row else None

    def _check_tools(self, brand: Brand, workflow: schema.Workflow) -> None:
        """The tools the workflow calls and the slot formats it reads are the brand's."""
        toolset = self.toolset(brand)
        known = {tool.name for tool in toolset.tools} if toolset else set()
        missing = [tool for tool in workflow.tools if tool not in known]
        if missing:
            raise InvalidRequest(
                f"workflow {workflow.name!r} uses tools the brand does not define: "
                f"{', '.join(missing)}", param="tools", code="unknown_tool")
        formats = toolset.formats if toolset else {}
        unknown = sorted({f"{name}: {slot.type}" for name, slot in workflow.slots.items()
                          if slot.type not in schema.SLOT_TYPES and slot.type not in formats})
        if unknown:
            raise InvalidRequest(
                f"workflow {workflow.name!r} has slots of types that are neither the engine's "
                f"nor formats the brand declares in its tools' `formats`: {', '.join(unknown)}",
                param="slots", code="unknown_slot_format")

    def runner(self, brand: Brand, toolset: schema.Toolset, base_url: str | None,
               conversation_id: int | None,
               workflow: Callable[[], str | None] = lambda: None,
               redact: Callable[[Any], Any] = lambda value: value) -> ToolRunner:
        """A ToolRunner whose every call is logged in `tool_call`, its path and arguments
        through `redact` (a conversation's vault puts placeholders in)."""

        def record(call: ToolCallRecord) -> None:
            result = call.result
            ToolCall.create(
                brand=brand, conversation=conversation_id, workflow=workflow(), tool=call.tool,
                method=call.method, path=redact(call.path), arguments=redact(call.arguments),
                status=result.status, http_status=result.http_status, code=result.code,
                latency_ms=result.latency_ms, attempts=result.attempts,
                idempotency_key=call.idempotency_key)

        return ToolRunner(toolset, base_url=base_url, record=record)

    def tool_calls(self, brand: Brand, conversation_id: int | None = None,
                   limit: int = 200) -> list[ToolCall]:
        query = ToolCall.select().where(ToolCall.brand == brand)
        if conversation_id is not None:
            query = query.where(ToolCall.conversation == conversation_id)
        return list(query.order_by(ToolCall.id.desc()).limit(limit))

    # -- files -----------------------------------------------------------------------------

    def import_dir(self, brand: Brand, directory: Path, actor: str,
                   publish: bool = True) -> list[str]:
        """Load `tools.yaml` and `workflows/*.yaml` from a directory; publish each workflow
        whose definition changed. All files are validated before anything is saved."""
        tools_file = directory / "tools.yaml"
        files = sorted((directory / "workflows").glob("*.yaml"))
        if not files and not tools_file.exists():
            raise InvalidRequest(f"{directory}: no tools.yaml and no workflows/*.yaml",
                                 code="nothing_to_import")
        sources = {path.name: path.read_text(encoding="utf-8") for path in files}
        for file_name, source in sources.items():
            schema.parse_workflow(source, file_name)
        tools_source = tools_file.read_text(encoding="utf-8") if tools_file.exists() else None
        toolset = (schema.parse_toolset(tools_source, tools_file.name)
                   if tools_source is not None else None)
        changed = []
        with self._db.atomic():
            before = self.toolset(brand)
            if tools_source is not None and toolset is not None:
                self._store_toolset(brand, tools_source, toolset, actor)
            for file_name, source in sources.items():
                parsed = schema.parse_workflow(source, file_name)
                existing = Workflow.get_or_none((Workflow.brand == brand)
                                                & (Workflow.name == parsed.name))
                if existing is not None and existing.published_version is not None:
                    current = self.version(existing, existing.published_version)
                    if current.source == source:
                        continue
                self.save_draft(brand, source, actor, note=f"imported from {file_name}")
                if publish:
                    self.publish(brand, parsed.name, actor)
                changed.append(parsed.name)
            if toolset is not None:
                # Checked once the imported workflows replaced theirs: an import may drop a
                # format together with the workflows that read it.
                self._check_kept(brand, before, toolset)
        self._invalidate(brand)
        return changed

    def export_dir(self, brand: Brand, directory: Path) -> list[Path]:
        """Write the toolset and each workflow's latest version as files."""
        written = []
        (directory / "workflows").mkdir(parents=True, exist_ok=True)
        row = Toolset.get_or_none(Toolset.brand == brand)
        if row is not None:
            path = directory / "tools.yaml"
            path.write_text(row.source, encoding="utf-8")
            written.append(path)
        for workflow in self.all(brand):
            path = directory / "workflows" / f"{workflow.name}.yaml"
            path.write_text(self.version(workflow).source, encoding="utf-8")
            written.append(path)
        return written

    # -- runtime ---------------------------------------------------------------------------

    def running(self, brand: Brand) -> BrandWorkflows:
        """The brand's published, enabled workflows (cached until one changes)."""
        stamp = self._stamp(brand)
        with self._lock:
            cached = self._cache.get(brand.id)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        built = self._build(brand)
        with self._lock:
            self._cache[brand.id] = (stamp, built)
        return built

    def _stamp(self, brand: Brand) -> Any:
        latest = (Workflow.select(peewee.fn.MAX(Workflow.updated_at), peewee.fn.COUNT(Workflow.id))
                  .where(Workflow.brand == brand).tuples().first())
        tools = (Toolset.select(Toolset.updated_at).where(Toolset.brand == brand).tuples()
                 .first())
        return (latest, tools)

    def _build(self, brand: Brand) -> BrandWorkflows:
        rows = (WorkflowVersion.select(WorkflowVersion, Workflow).join(Workflow)
                .where((Workflow.brand == brand) & (Workflow.status == PUBLISHED)
                       & (WorkflowVersion.number == Workflow.published_version)))
        workflows: dict[str, schema.Workflow] = {}
        versions: dict[str, int] = {}
        for version in rows:
            workflows[version.workflow.name] = self.definition(version)
            versions[version.workflow.name] = version.id
        return self._assemble(workflows, versions, self.toolset(brand))

    def with_draft(self, brand: Brand, version: WorkflowVersion) -> BrandWorkflows:
        """The brand's running set with one version swapped in (the Studio's test chat);
        kept until the running set or the draft changes, so each test turn does not embed
        every trigger example again."""
        running = self.running(brand)  # the same object until the running set changes
        key = (version.id, version.created_at)
        with self._lock:
            cached = self._drafts.get(brand.id)
            if cached is not None and cached[0] is running and cached[1] == key:
                return cached[2]
        draft = self.definition(version)
        built = self._assemble({**running.workflows, draft.name: draft},
                               {**running.versions, draft.name: version.id}, running.toolset)
        with self._lock:
            self._drafts[brand.id] = (running, key, built)
        return built

    def _assemble(self, workflows: dict[str, schema.Workflow], versions: dict[str, int],
                  toolset: schema.Toolset | None) -> BrandWorkflows:
        """A runnable set: the identity workflow and the trigger examples' embeddings."""
        identity = next((w for w in workflows.values() if w.provides_identity), None)
        examples = [(name, text) for name, workflow in workflows.items()
                    for text in workflow.triggers.examples]
        vectors = None
        if examples:
            vectors = np.asarray(self._embedder.embed([text for _, text in examples]),
                                 dtype=np.float32)
        return BrandWorkflows(workflows, versions, toolset, identity, vectors,
                              [name for name, _ in examples], self._embedder.embed_one)

    def _invalidate(self, brand: Brand) -> None:
        with self._lock:
            self._cache.pop(brand.id, None)
