"""The knowledge service: sources, ingestion runs, versions (publish, rollback, diff), findings
and retrieval from a brand's published version."""

from __future__ import annotations

import fcntl
import shutil
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import peewee
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from appliance import audit, metrics
from appliance.brands import policy_of, validated
from appliance.db.models import (
    Article,
    Brand,
    Chunk,
    Finding,
    IngestRun,
    KnowledgeSource,
    KnowledgeVersion,
    VersionArticle,
    utcnow,
)
from appliance.errors import Conflict, InvalidRequest, NotFound
from appliance.knowledge import ingest
from appliance.knowledge.connectors import KINDS
from appliance.knowledge.index import INDEX_FILE, IndexUnavailable, VectorIndex
from appliance.signals.base import Embedder

SCHEDULES = ("nightly",)
#: Who a source is written for. `customer`: it may be quoted and cited to customers.
#: `internal`: it may ground an answer (the model reads it), never be quoted or cited.
VISIBILITIES = ("customer", "internal")
#: A source's visibility when its registration names none, by what the format usually holds
#: (docs/knowledge.md). Only formats published to customers by nature default to `customer`;
#: formats that hold anything (Markdown, JSONL, PDF) are internal until someone says otherwise.
DEFAULT_VISIBILITY = {
    "faq_html": "customer",  # pages saved from the brand's public site
    "zendesk_macros": "customer",  # replies written to be sent to customers
    "confluence": "internal",
    "slack": "internal",
    "markdown": "internal",
    "jsonl": "internal",
    "pdf": "internal",
}


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(pattern="|".join(KINDS))
    location: str = Field(min_length=1)
    owner: EmailStr
    schedule: str | None = Field(default=None, pattern="|".join(SCHEDULES))
    visibility: str | None = Field(default=None, pattern="^(" + "|".join(VISIBILITIES) + ")$")
    options: dict[str, Any] = Field(default_factory=dict)


class SourceChanges(BaseModel):
    """What `update_source` may change; a field left out (None) stays as it is."""

    model_config = ConfigDict(extra="forbid")

    location: str | None = Field(default=None, min_length=1)
    owner: EmailStr | None = None
    schedule: str | None = Field(default=None, pattern="^(" + "|".join(SCHEDULES) + "|)$")
    visibility: str | None = Field(default=None, pattern="^(" + "|".join(VISIBILITIES) + ")$")


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    article_id: int
    article_key: str
    title: str
    heading: str
    text: str
    score: float
    provenance: list[dict[str, Any]]

    @property
    def customer_facing(self) -> bool:
        """True only when the source of the passage's text (its primary document) is a
        `customer` source and the page does not mark itself "Internal:". Anything else is fine
        to ground an answer in, never to quote or cite to a customer."""
        primary = self.provenance[0] if self.provenance else {}
        return primary.get("visibility") == "customer" and not self.title.lower().startswith(
            "internal:")

    def citation(self) -> dict[str, Any]:
        primary = self.provenance[0] if self.provenance else {}
        return {
            "article": self.article_key, "title": self.title,
            "location": primary.get("location"),
            "source_ids": [p["external_id"] for p in self.provenance],
        }


class KnowledgeService:
    def __init__(self, db: peewee.Database, embedder: Embedder, data_dir: Path,
                 import_roots: Sequence[Path]) -> None:
        self._db = db
        self.embedder = embedder
        self._root = data_dir / "knowledge"
        self._import_roots = tuple(import_roots)
        self._indexes: dict[int, VectorIndex] = {}
        self._lock = threading.Lock()

    # --- sources -------------------------------------------------------------------------
    def import_folders(self, brand: Brand) -> list[Path]:
        """The folders a brand's sources are read from: `<root>/<slug>/` under each of the
        `knowledge_import_dirs`. IT may make one a symlink (to where a brand's exports land);
        what lies inside is judged by where it resolves to."""
        return [root / brand.slug for root in self._import_roots]

    def in_import_folder(self, brand: Brand, location: Path) -> bool:
        """Whether `location`, resolved (symlinks followed, `..` folded), lies inside one of
        the brand's import folders, resolved the same way."""
        resolved = location.expanduser().resolve()
        return any(resolved.is_relative_to(folder.resolve())
                   for folder in self.import_folders(brand))

    def _allowed_location(self, brand: Brand, location: str) -> Path:
        """The resolved location, refused unless it exists inside the brand's import folder:
        a brand's sources never read another brand's exports."""
        resolved = Path(location).expanduser().resolve()
        if not self.in_import_folder(brand, resolved):
            folders = ", ".join(str(f) for f in self.import_folders(brand))
            raise InvalidRequest(f"location: must be inside {brand.slug}'s import folder "
                                 f"({folders})", param="location", code="location_not_allowed")
        if not resolved.exists():
            raise InvalidRequest(f"location: {resolved} does not exist", param="location")
        return resolved

    def add_source(self, brand: Brand, data: dict[str, Any], *, actor: str) -> KnowledgeSource:
        """Register a source. Its location must lie inside the brand's import folder (see
        `import_folders`); its visibility defaults by kind (`DEFAULT_VISIBILITY`)."""
        spec: SourceSpec = validated(SourceSpec, data)
        location = self._allowed_location(brand, spec.location)
        visibility = spec.visibility or DEFAULT_VISIBILITY[spec.kind]
        with self._db.atomic():
            source = KnowledgeSource.create(
                brand=brand, kind=spec.kind, location=str(location), owner=spec.owner,
                schedule=spec.schedule, options=spec.options, visibility=visibility,
            )
            audit.record(actor, "knowledge.source.add", brand.slug,
                         {"source": source.id, "kind": spec.kind, "owner": spec.owner,
                          "visibility": visibility})
        return source

    def update_source(self, brand: Brand, source_id: int, data: dict[str, Any], *,
                      actor: str) -> KnowledgeSource:
        """Change a source's location (held to the brand's import folder, as when added),
        owner, schedule ("" for none) or visibility. A visibility change applies to the
        next answer, without re-ingesting: retrieval reads it from the source."""
        changes: SourceChanges = validated(SourceChanges, data)
        with self._db.atomic():
            source = self.source(brand, source_id)
            requested = changes.model_dump(exclude_none=True)
            if "location" in requested:
                requested["location"] = str(self._allowed_location(brand, requested["location"]))
            if "schedule" in requested:
                requested["schedule"] = changes.schedule or None
            changed = {k: v for k, v in requested.items() if getattr(source, k) != v}
            if changed:
                for name, value in changed.items():
                    setattr(source, name, value)
                source.save()
                audit.record(actor, "knowledge.source.update", brand.slug,
                             {"source": source.id, **changed})
        return source

    def outside_import_folders(self) -> list[KnowledgeSource]:
        """Sources of every brand whose location is not inside their brand's import folder:
        registered before folders were per brand. They are still read (an upgrade does not
        take a brand's knowledge away); `appliance doctor` names them until moved."""
        rows = KnowledgeSource.select(KnowledgeSource, Brand).join(Brand).order_by(
            KnowledgeSource.id)
        return [s for s in rows if not self.in_import_folder(s.brand, Path(s.location))]

    def sources(self, brand: Brand) -> list[KnowledgeSource]:
        return list(KnowledgeSource.select().where(KnowledgeSource.brand == brand)
                    .order_by(KnowledgeSource.id))

    def source(self, brand: Brand, source_id: int) -> KnowledgeSource:
        source = KnowledgeSource.get_or_none((KnowledgeSource.id == source_id)
                                             & (KnowledgeSource.brand == brand))
        if source is None:
            raise NotFound(f"no source {source_id} for brand {brand.slug!r}",
                           code="source_not_found")
        return source

    # --- ingestion -----------------------------------------------------------------------
    @contextmanager
    def _brand_lock(self, brand: Brand) -> Iterator[None]:
        """One ingestion per brand at a time, across processes."""
        path = self._root / brand.slug / "ingest.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise Conflict(f"an ingestion for {brand.slug!r} is already running",
                               code="ingestion_running") from exc
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def ingest(
        self, brand: Brand, *, source_id: int | None = None, publish: bool = False,
        auto_publish: bool = False, progress: ingest.Progress | None = None,
        actor: str = "system",
    ) -> ingest.RunOutcome:
        """Read the brand's sources (or one), build a draft version; publish it when asked,
        or (auto_publish) when the brand allows it and no new contradiction appeared."""
        report = progress or (lambda stage, done, total: None)
        with self._brand_lock(brand):
            # Holding the lock, any run still marked running was killed.
            IngestRun.update(status="interrupted", finished_at=utcnow()).where(
                (IngestRun.brand == brand) & (IngestRun.status == "running")
            ).execute()
            selected = [self.source(brand, source_id)] if source_id else self.sources(brand)
            if not selected:
                raise InvalidRequest(f"brand {brand.slug!r} has no knowledge sources",
                                     code="no_sources")
            run = IngestRun.create(brand=brand, source=source_id, status="running")
            errors: list[dict[str, str]] = []
            read = ingest.read_sources(selected, errors, report)
            docs = ingest.current_documents(brand, read)
            planned = ingest.plan_articles(docs)
            articles = ingest.store_articles(brand, planned, self.embedder, self._db, report)
            now = utcnow()
            findings = ingest.find_issues(planned, articles, policy_of(brand).knowledge_stale_days,
                                          now)
            index_dir = self._root / brand.slug / f"run-{run.id}"
            index = ingest.build_index([a.id for a in articles.values()], index_dir,
                                       self.embedder)
            published = self.published(brand)
            with self._db.atomic():
                ingest.save_documents(read, now)
                version = ingest.record_version(brand, run, planned, articles, findings, index,
                                                index_dir, self.embedder.model_id, published)
                run.status = "partial" if errors else "ok"
                run.finished_at = utcnow()
                run.stats = {**version.stats, "documents": len(docs), "errors": len(errors),
                             "version": version.number}
                run.errors = errors
                run.save()
                for source in selected:
                    KnowledgeSource.update(
                        last_run_at=run.finished_at,
                        last_status="failed" if read.get(source.id) is None else run.status,
                    ).where(KnowledgeSource.id == source.id).execute()
                audit.record(actor, "knowledge.ingest", brand.slug,
                             {"run": run.id, "version": version.number, "status": run.status,
                              "errors": len(errors)})
                if publish or (auto_publish and self._may_auto_publish(brand, version,
                                                                        published)):
                    self._publish(brand, version, actor)
            self._prune(brand)
            return ingest.RunOutcome(run, version, errors)

    def _may_auto_publish(self, brand: Brand, version: KnowledgeVersion,
                          published: KnowledgeVersion | None) -> bool:
        if not policy_of(brand).knowledge_auto_publish:
            return False
        before = _contradiction_keys(published) if published else set()
        return _contradiction_keys(version) <= before

    def _prune(self, brand: Brand) -> None:
        """Remove index directories no version refers to (left by killed runs)."""
        paths = cast(list[tuple[str]], list(
            KnowledgeVersion.select(KnowledgeVersion.index_path)
            .where(KnowledgeVersion.brand == brand).tuples()))
        used = {Path(path).name for (path,) in paths}
        root = self._root / brand.slug
        # Also staging directories of an index save that was killed (the lock is held here).
        for directory in [*root.glob("run-*"), *root.glob(".run-*.tmp")]:
            if directory.name not in used and directory.is_dir():
                shutil.rmtree(directory, ignore_errors=True)

    def runs(self, brand: Brand, limit: int = 20) -> list[IngestRun]:
        return list(IngestRun.select().where(IngestRun.brand == brand)
                    .order_by(IngestRun.id.desc()).limit(limit))

    # --- versions ------------------------------------------------------------------------
    def versions(self, brand: Brand) -> list[KnowledgeVersion]:
        return list(KnowledgeVersion.select().where(KnowledgeVersion.brand == brand)
                    .order_by(KnowledgeVersion.number.desc()))

    def version(self, brand: Brand, number: int) -> KnowledgeVersion:
        version: KnowledgeVersion | None = KnowledgeVersion.get_or_none(
            (KnowledgeVersion.brand == brand) & (KnowledgeVersion.number == number))
        if version is None:
            raise NotFound(f"no knowledge version {number} for {brand.slug!r}",
                           code="version_not_found")
        return version

    def article_titles(self, brand: Brand, versions: Sequence[KnowledgeVersion],
                       keys: set[str]) -> dict[str, str]:
        """The titles of the articles `keys`: as these versions hold them, else as the
        brand's latest article of that key."""
        rows = cast(list[tuple[str, str]], list(
            Article.select(Article.key, Article.title).join(VersionArticle)
            .where(VersionArticle.version.in_([v.id for v in versions])).tuples()))
        titles = {key: title for key, title in rows if key in keys}
        if keys - titles.keys():
            latest_first = cast(list[tuple[str, str]], list(
                Article.select(Article.key, Article.title)
                .where(Article.brand == brand).order_by(Article.id.desc()).tuples()))
            for key, title in latest_first:
                if key in keys and key not in titles:
                    titles[key] = title
        return titles

    def published(self, brand: Brand) -> KnowledgeVersion | None:
        version: KnowledgeVersion | None = KnowledgeVersion.get_or_none(
            (KnowledgeVersion.brand == brand) & (KnowledgeVersion.status == "published"))
        return version

    def publish(self, brand: Brand, number: int, *, actor: str) -> KnowledgeVersion:
        with self._db.atomic():
            version = self.version(brand, number)
            self._publish(brand, version, actor)
        return version

    def _publish(self, brand: Brand, version: KnowledgeVersion, actor: str) -> None:
        # A node that never built this version's index (another node ingested it) makes it
        # now from the chunks' stored embeddings, so that the first question waits for none.
        self._index(version)
        KnowledgeVersion.update(status="archived").where(
            (KnowledgeVersion.brand == brand) & (KnowledgeVersion.status == "published")
        ).execute()
        version.status = "published"
        version.published_at = utcnow()
        version.save()
        audit.record(actor, "knowledge.publish", brand.slug, {"version": version.number})

    def rollback(self, brand: Brand, *, actor: str) -> KnowledgeVersion:
        """Publish again the version that was published before the current one."""
        with self._db.atomic():
            current = self.published(brand)
            previous: KnowledgeVersion | None = (KnowledgeVersion.select()
                        .where((KnowledgeVersion.brand == brand)
                               & (KnowledgeVersion.published_at.is_null(False))
                               & (KnowledgeVersion.id != (current.id if current else 0)))
                        .order_by(KnowledgeVersion.published_at.desc()).first())
            if previous is None:
                raise Conflict("no earlier published version to roll back to",
                               code="nothing_to_roll_back")
            self._publish(brand, previous, actor)
        return previous

    def diff(self, brand: Brand, old: int | None, new: int) -> dict[str, list[str]]:
        """Article keys added / changed / removed from version `old` (default: published)."""
        new_version = self.version(brand, new)
        old_version = self.version(brand, old) if old is not None else self.published(brand)
        return ingest.diff(ingest.version_hashes(old_version),
                           ingest.version_hashes(new_version))

    def findings(self, brand: Brand, version: KnowledgeVersion | None = None,
                 owner: str | None = None) -> list[Finding]:
        version = version or self.published(brand) or next(iter(self.versions(brand)), None)
        if version is None:
            return []
        query = Finding.select(Finding, Article).join(
            Article, on=(Finding.article == Article.id)).where(Finding.version == version)
        found = list(query.order_by(Finding.kind, Finding.id))
        if owner:
            # A contradiction concerns the owners of both passages.
            found = [f for f in found if owner == f.owner or owner in {
                p.get("owner") for p in f.detail.get("passages", [])}]
        return found

    # --- retrieval -----------------------------------------------------------------------
    def _index(self, version: KnowledgeVersion) -> VectorIndex:
        """The version's index, from memory, from this node's data dir, or, where this node
        has none (another node ingested the version, or the file was lost), rebuilt from the
        database: each chunk keeps its embedding, so every node serves the same index for
        the version the database says is published."""
        with self._lock:
            index = self._indexes.get(version.id)
            if index is None:
                directory = self._root / version.brand.slug / Path(version.index_path).name
                if (directory / INDEX_FILE).is_file():
                    index = VectorIndex.load(directory)
                else:
                    rows = cast(list[tuple[int]], list(
                        VersionArticle.select(VersionArticle.article)
                        .where(VersionArticle.version == version).tuples()))
                    index = ingest.build_index([a for (a,) in rows], directory, self.embedder)
                self._indexes = {version.id: index, **{
                    k: v for k, v in self._indexes.items() if k != version.id}}
                # Keep the few most recent versions' indexes in memory.
                while len(self._indexes) > 8:
                    self._indexes.pop(next(reversed(self._indexes)))
            return index

    def search_vector(self, brand: Brand, vector: np.ndarray, k: int = 5,
                      version: KnowledgeVersion | None = None
                      ) -> tuple[KnowledgeVersion | None, list[Hit]]:
        """Top-k chunks of the brand's published version (or of `version`, one of the
        brand's, as the release gate tries a draft) for a query embedding."""
        version = version or self.published(brand)
        if version is None:
            return None, []
        if version.embedder != self.embedder.model_id:
            # Vectors of two models are not comparable: the brand must be re-ingested.
            raise IndexUnavailable(
                f"knowledge version {version.number} of {brand.slug!r} was embedded with "
                f"{version.embedder}; re-ingest it for {self.embedder.model_id}")
        with metrics.time_retrieval(brand.slug):
            return version, self._hits(version, vector, k)

    def _hits(self, version: KnowledgeVersion, vector: np.ndarray, k: int) -> list[Hit]:
        found = self._index(version).search_one(vector, k)
        if not found:
            return []
        scores = {hit.id: hit.score for hit in found}
        rows = (Chunk.select(Chunk, Article, VersionArticle.provenance).join(Article)
                .join(VersionArticle, on=(VersionArticle.article == Article.id),
                      attr="membership")
                .where(Chunk.id.in_(list(scores)) & (VersionArticle.version == version)))
        chunks = [(c, getattr(c.article, "membership").provenance)  # noqa: B009
                  for c in rows]
        visible = _visibilities(provenance for _, provenance in chunks)
        hits = [
            Hit(chunk_id=c.id, article_id=c.article.id, article_key=c.article.key,
                title=c.article.title, heading=c.heading, text=c.text, score=scores[c.id],
                provenance=[{**p, "visibility": visible.get(p.get("source_id"), "internal")}
                            for p in provenance])
            for c, provenance in chunks
        ]
        hits.sort(key=lambda h: -h.score)
        return hits

    def search(self, brand: Brand, query: str, k: int = 5
               ) -> tuple[KnowledgeVersion | None, list[Hit]]:
        return self.search_vector(brand, self.embedder.embed_one(query), k)


def _visibilities(provenances: Iterable[list[dict[str, Any]]]) -> dict[int, str]:
    """The current visibility of each source named in `provenances`, read now rather than
    stored with the version, so that marking a source internal holds from the next answer.
    A source no longer there is left out (its passages count as internal)."""
    ids = {p.get("source_id") for provenance in provenances for p in provenance}
    rows = cast(list[tuple[int, str]], list(
        KnowledgeSource.select(KnowledgeSource.id, KnowledgeSource.visibility)
        .where(KnowledgeSource.id.in_([i for i in ids if isinstance(i, int)])).tuples()))
    return dict(rows)


def _contradiction_keys(version: KnowledgeVersion) -> set[tuple[str, ...]]:
    rows = Finding.select().where((Finding.version == version)
                                  & (Finding.kind == "contradiction"))
    return {tuple(sorted(p["text"] for p in f.detail["passages"])) for f in rows}


