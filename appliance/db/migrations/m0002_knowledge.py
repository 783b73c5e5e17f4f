"""Knowledge: sources, ingestion runs, documents, immutable articles and chunks, versions,
findings; turn traces and agent messages gain the knowledge they used."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator, migrate


def _models() -> list[type[peewee.Model]]:
    class Base(peewee.Model):
        pass

    class Brand(Base):
        class Meta:
            table_name = "brand"

    class KnowledgeSource(Base):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        kind = peewee.CharField(max_length=32)
        location = peewee.TextField()
        owner = peewee.CharField(max_length=254)
        schedule = peewee.CharField(max_length=32, null=True)
        options = peewee.TextField()
        created_at = peewee.DateTimeField()
        last_run_at = peewee.DateTimeField(null=True)
        last_status = peewee.CharField(max_length=16, null=True)

        class Meta:
            table_name = "knowledge_source"

    class IngestRun(Base):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        source = peewee.ForeignKeyField(KnowledgeSource, null=True, on_delete="SET NULL")
        started_at = peewee.DateTimeField()
        finished_at = peewee.DateTimeField(null=True)
        status = peewee.CharField(max_length=16)
        stats = peewee.TextField(null=True)
        errors = peewee.TextField(null=True)

        class Meta:
            table_name = "ingest_run"

    class Document(Base):
        source = peewee.ForeignKeyField(KnowledgeSource, on_delete="CASCADE")
        external_id = peewee.CharField(max_length=500)
        title = peewee.TextField()
        location = peewee.TextField()
        updated_at = peewee.DateTimeField(null=True)
        author = peewee.CharField(max_length=200, null=True)
        content_hash = peewee.CharField(max_length=64)
        sections = peewee.TextField()
        seen_at = peewee.DateTimeField()

        class Meta:
            table_name = "document"
            indexes = ((("source", "external_id"), True),)

    class Article(Base):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        key = peewee.CharField(max_length=600, index=True)
        content_hash = peewee.CharField(max_length=64)
        title = peewee.TextField()
        text = peewee.TextField()
        embedder = peewee.CharField(max_length=100)
        updated_at = peewee.DateTimeField(null=True)
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "article"
            indexes = ((("brand", "key", "content_hash", "embedder"), True),)

    class Chunk(Base):
        article = peewee.ForeignKeyField(Article, on_delete="CASCADE")
        ordinal = peewee.IntegerField()
        heading = peewee.TextField()
        text = peewee.TextField()
        embedding = peewee.BlobField()

        class Meta:
            table_name = "chunk"

    class KnowledgeVersion(Base):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        number = peewee.IntegerField()
        status = peewee.CharField(max_length=16, index=True)
        run = peewee.ForeignKeyField(IngestRun, null=True, on_delete="SET NULL")
        index_kind = peewee.CharField(max_length=16)
        index_path = peewee.TextField()
        embedder = peewee.CharField(max_length=100)
        stats = peewee.TextField()
        diff = peewee.TextField()
        created_at = peewee.DateTimeField()
        published_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "knowledge_version"
            indexes = ((("brand", "number"), True),)

    class VersionArticle(Base):
        version = peewee.ForeignKeyField(KnowledgeVersion, on_delete="CASCADE")
        article = peewee.ForeignKeyField(Article, on_delete="CASCADE")
        provenance = peewee.TextField()

        class Meta:
            table_name = "version_article"
            indexes = ((("version", "article"), True),)

    class Finding(Base):
        version = peewee.ForeignKeyField(KnowledgeVersion, on_delete="CASCADE")
        kind = peewee.CharField(max_length=16)
        article = peewee.ForeignKeyField(Article, on_delete="CASCADE")
        other_article = peewee.ForeignKeyField(Article, null=True, on_delete="CASCADE",
                                               backref="+")
        owner = peewee.CharField(max_length=254)
        detail = peewee.TextField()
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "finding"

    return [KnowledgeSource, IngestRun, Document, Article, Chunk, KnowledgeVersion,
            VersionArticle, Finding]


def up(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.create_tables(models)
    migrator = SchemaMigrator.from_database(db)
    migrate(
        migrator.add_column("turn_trace", "knowledge", peewee.TextField(null=True)),
        migrator.add_column("message", "citations", peewee.TextField(null=True)),
    )


def down(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(
        migrator.drop_column("turn_trace", "knowledge"),
        migrator.drop_column("message", "citations"),
    )
    models = _models()
    with db.bind_ctx(models):
        db.drop_tables(list(reversed(models)))
