"""One ingestion run: read sources, consolidate documents into articles, chunk and embed what
is new, find contradictions and stale pages, build the version's index, record a draft.

Crash safety: articles and chunks are immutable and content-addressed, so writing new ones
changes nothing that is served. The index goes to a new directory by atomic rename. Only the
last step, one transaction, updates the documents, creates the draft version (and publishes
it when asked). A run killed before that leaves the published version exactly as it was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import peewee

from appliance.db.models import (
    Article,
    Brand,
    Chunk,
    Document,
    Finding,
    IngestRun,
    KnowledgeSource,
    KnowledgeVersion,
    VersionArticle,
)
from appliance.knowledge.base import DocumentError, RawDocument, Section, SourceError
from appliance.knowledge.connectors import CONNECTORS
from appliance.knowledge.consolidate import (
    Passage,
    contradictions,
    near_duplicate_groups,
    statements,
)
from appliance.knowledge.index import VectorIndex
from appliance.knowledge.normalize import chunk_sections, content_hash, normalize_text
from appliance.signals.base import Embedder

#: progress(stage, done, total)
Progress = Callable[[str, int, int], None]
EMBED_BATCH = 64


@dataclass
class DocState:
    """A document as the next draft will see it."""

    source: KnowledgeSource
    external_id: str
    title: str
    location: str
    updated_at: dt.datetime | None
    author: str | None
    sections: list[list[str]]
    content_hash: str

    @property
    def text(self) -> str:
        return "\n\n".join(f"{h}\n{t}" if h else t for h, t in self.sections).strip()

    def provenance(self) -> dict[str, Any]:
        return {
            "source_id": self.source.id, "kind": self.source.kind,
            "external_id": self.external_id, "title": self.title, "location": self.location,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "owner": self.source.owner,
        }


@dataclass
class RunOutcome:
    run: IngestRun
    version: KnowledgeVersion | None
    errors: list[dict[str, str]] = field(default_factory=list)


def _from_raw(source: KnowledgeSource, raw: RawDocument) -> DocState:
    sections = [[normalize_text(s.heading), normalize_text(s.text)] for s in raw.sections]
    sections = [pair for pair in sections if pair[1]]
    updated = raw.updated_at
    if updated is not None and updated.tzinfo is not None:
        updated = updated.astimezone(dt.UTC).replace(tzinfo=None)
    title = normalize_text(raw.title) or raw.external_id
    return DocState(
        source=source, external_id=raw.external_id, title=title, location=raw.location,
        updated_at=updated, author=raw.author, sections=sections,
        content_hash=content_hash(title, *(f"{h}\n{t}" for h, t in sections)),
    )


def _from_row(source: KnowledgeSource, row: Document) -> DocState:
    return DocState(
        source=source, external_id=row.external_id, title=row.title, location=row.location,
        updated_at=row.updated_at, author=row.author, sections=row.sections,
        content_hash=row.content_hash,
    )


def read_sources(
    sources: Iterable[KnowledgeSource], errors: list[dict[str, str]], progress: Progress,
) -> dict[int, dict[str, DocState] | None]:
    """Read each source; None for a source that could not be read at all (keep its old docs).
    A document that fails keeps its previous good copy, if any (marked by absence here and
    merged by the caller)."""
    read: dict[int, dict[str, DocState] | None] = {}
    for source in sources:
        connector = CONNECTORS[source.kind]
        docs: dict[str, DocState] = {}
        failed: set[str] = set()
        try:
            for item in connector(Path(source.location), source.options or {}):
                if isinstance(item, DocumentError):
                    errors.append({"source": str(source.id), "document": item.external_id,
                                   "error": item.message})
                    failed.add(item.external_id)
                elif item.sections and any(s.text.strip() for s in item.sections):
                    docs[item.external_id] = _from_raw(source, item)
                progress("read", len(docs) + len(failed), 0)
        except SourceError as exc:
            errors.append({"source": str(source.id), "document": "", "error": exc.message})
            read[source.id] = None
            continue
        previous = {d.external_id: d for d in Document.select().where(Document.source == source)}
        for external_id in failed:
            if external_id in previous:
                docs[external_id] = _from_row(source, previous[external_id])
        if failed - previous.keys():
            # A failure that names no known document (a line too broken to hold its id):
            # keep every stored document this run did not read, rather than drop one.
            for external_id, row in previous.items():
                docs.setdefault(external_id, _from_row(source, row))
        read[source.id] = docs
    return read


def current_documents(
    brand: Brand, read: dict[int, dict[str, DocState] | None]
) -> list[DocState]:
    """Every document of the brand for the draft: fresh reads, else what was stored."""
    docs: list[DocState] = []
    for source in KnowledgeSource.select().where(KnowledgeSource.brand == brand):
        fresh = read.get(source.id)
        if fresh is not None:
            docs.extend(fresh.values())
        else:
            docs.extend(_from_row(source, row) for row in
                        Document.select().where(Document.source == source))
    docs.sort(key=lambda d: (d.source.id, d.external_id))
    return docs


@dataclass
class Planned:
    key: str
    title: str
    sections: list[list[str]]
    text: str
    content_hash: str
    provenance: list[dict[str, Any]]
    updated_at: dt.datetime | None
    members: list[DocState]


def plan_articles(docs: list[DocState]) -> list[Planned]:
    """Group duplicates; the most recently updated document of a group is its canonical text."""
    planned = []
    for group in near_duplicate_groups([d.text for d in docs]):
        members = [docs[i] for i in group]
        members.sort(key=lambda d: (d.updated_at is None,
                                    -(d.updated_at.timestamp() if d.updated_at else 0.0),
                                    d.source.id, d.external_id))
        primary = members[0]
        planned.append(Planned(
            key=f"{primary.source.id}/{primary.external_id}",
            title=primary.title, sections=primary.sections, text=primary.text,
            content_hash=content_hash(primary.title, primary.text),
            provenance=[m.provenance() for m in members], updated_at=primary.updated_at,
            members=members,
        ))
    return planned


def store_articles(
    brand: Brand, planned: list[Planned], embedder: Embedder, db: peewee.Database,
    progress: Progress,
) -> dict[str, Article]:
    """Rows for every planned article: existing immutable ones reused, new ones chunked and
    embedded. Keyed by article key."""
    existing = {
        (a.key, a.content_hash): a
        for a in Article.select().where((Article.brand == brand)
                                        & (Article.embedder == embedder.model_id))
    }
    articles: dict[str, Article] = {}
    fresh: list[Planned] = []
    for plan in planned:
        row = existing.get((plan.key, plan.content_hash))
        if row is None:
            fresh.append(plan)
        else:
            articles[plan.key] = row
    for start in range(0, len(fresh), EMBED_BATCH):
        batch = fresh[start:start + EMBED_BATCH]
        drafts = [
            (plan, chunk_sections([Section(h, t) for h, t in plan.sections]))
            for plan in batch
        ]
        texts = [f"{plan.title}\n{c.heading}\n{c.text}" for plan, chunks in drafts
                 for c in chunks]
        vectors = embedder.embed(texts) if texts else np.zeros((0, embedder.dim), "float32")
        offset = 0
        with db.atomic():
            for plan, chunks in drafts:
                article = Article.create(
                    brand=brand, key=plan.key, content_hash=plan.content_hash,
                    title=plan.title, text=plan.text, embedder=embedder.model_id,
                    updated_at=plan.updated_at,
                )
                Chunk.insert_many([
                    {"article": article.id, "ordinal": n, "heading": c.heading,
                     "text": c.text, "embedding": vectors[offset + n].astype("<f4").tobytes()}
                    for n, c in enumerate(chunks)
                ]).execute()
                offset += len(chunks)
                articles[plan.key] = article
        progress("embed", min(start + EMBED_BATCH, len(fresh)), len(fresh))
    return articles


def build_index(article_ids: list[int], directory: Path, embedder: Embedder) -> VectorIndex:
    rows = cast(list[tuple[int, bytes]], list(
        Chunk.select(Chunk.id, Chunk.embedding)
        .where(Chunk.article.in_(article_ids)).order_by(Chunk.id).tuples()))
    ids, blobs = [], []
    for chunk_id, blob in rows:
        ids.append(chunk_id)
        blobs.append(bytes(blob))
    dim = embedder.dim
    vectors = (np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(ids), dim)
               if ids else np.zeros((0, dim), dtype="float32"))
    index = VectorIndex.build(vectors, np.asarray(ids, dtype="int64"),
                              model_id=embedder.model_id)
    index.save(directory)
    return index


def find_issues(
    planned: list[Planned], articles: dict[str, Article], stale_days: int, now: dt.datetime,
) -> list[dict[str, Any]]:
    """Contradictions between documents, and stale documents, as Finding field dicts."""
    docs: list[tuple[DocState, Article]] = [
        (member, articles[plan.key]) for plan in planned for member in plan.members
    ]
    passages: list[Passage] = []
    for number, (doc, article) in enumerate(docs):
        passages.extend(statements(number, doc.text, doc.source.id, article.id))
    findings: list[dict[str, Any]] = []
    for found in contradictions(passages):
        first_doc, first_article = docs[found.first.document]
        second_doc, second_article = docs[found.second.document]
        findings.append({
            "kind": "contradiction", "article": first_article.id,
            "other_article": second_article.id, "owner": first_doc.source.owner,
            "detail": {
                "unit": found.unit, "values": list(found.values),
                "passages": [
                    {**first_doc.provenance(), "text": found.first.text},
                    {**second_doc.provenance(), "text": found.second.text},
                ],
            },
        })
    cutoff = now - dt.timedelta(days=stale_days)
    for doc, article in docs:
        if doc.updated_at is not None and doc.updated_at < cutoff:
            findings.append({
                "kind": "stale", "article": article.id, "other_article": None,
                "owner": doc.source.owner,
                "detail": {**doc.provenance(),
                           "age_days": (now - doc.updated_at).days},
            })
    return findings


def diff(old: dict[str, str], new: dict[str, str]) -> dict[str, list[str]]:
    """Article keys added, changed (same key, other content) and removed, old → new."""
    return {
        "added": sorted(new.keys() - old.keys()),
        "changed": sorted(k for k in new.keys() & old.keys() if new[k] != old[k]),
        "removed": sorted(old.keys() - new.keys()),
    }


def version_hashes(version: KnowledgeVersion | None) -> dict[str, str]:
    if version is None:
        return {}
    rows = (Article.select(Article.key, Article.content_hash).join(VersionArticle)
            .where(VersionArticle.version == version).tuples())
    return dict(cast(list[tuple[str, str]], list(rows)))


def save_documents(read: dict[int, dict[str, DocState] | None], now: dt.datetime) -> None:
    """Make the Document table match what was read (sources that failed as a whole keep
    theirs). Call inside the run's final transaction."""
    for source_id, docs in read.items():
        if docs is None:
            continue
        Document.delete().where(Document.source == source_id).execute()
        rows = [
            {"source": source_id, "external_id": d.external_id, "title": d.title,
             "location": d.location, "updated_at": d.updated_at, "author": d.author,
             "content_hash": d.content_hash, "sections": d.sections, "seen_at": now}
            for d in docs.values()
        ]
        for start in range(0, len(rows), 200):
            Document.insert_many(rows[start:start + 200]).execute()


def record_version(
    brand: Brand, run: IngestRun, planned: list[Planned], articles: dict[str, Article],
    findings: list[dict[str, Any]],
    index: VectorIndex, index_dir: Path, embedder_id: str, published: KnowledgeVersion | None,
) -> KnowledgeVersion:
    """The draft version with its articles and findings. Call inside the final transaction."""
    number = (KnowledgeVersion.select(peewee.fn.MAX(KnowledgeVersion.number))
              .where(KnowledgeVersion.brand == brand).scalar() or 0) + 1
    new_hashes = {key: article.content_hash for key, article in articles.items()}
    version = KnowledgeVersion.create(
        brand=brand, number=number, status="draft", run=run, index_kind=index.kind,
        index_path=str(index_dir), embedder=embedder_id,
        stats={"articles": len(articles), "chunks": len(index),
               "contradictions": sum(f["kind"] == "contradiction" for f in findings),
               "stale": sum(f["kind"] == "stale" for f in findings)},
        diff=diff(version_hashes(published), new_hashes),
    )
    rows = [{"version": version.id, "article": articles[plan.key].id,
             "provenance": plan.provenance} for plan in planned]
    for start in range(0, len(rows), 200):
        VersionArticle.insert_many(rows[start:start + 200]).execute()
    if findings:
        Finding.insert_many([{**f, "version": version.id} for f in findings]).execute()
    return version
