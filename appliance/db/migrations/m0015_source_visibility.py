"""Knowledge sources get a visibility: `customer` (may be quoted and cited to customers) or
`internal` (grounds answers, is never quoted). Sources registered before it get the default of
their kind as this migration knows it (docs/knowledge.md): FAQ pages and Zendesk macros are
customer-facing; wiki and chat exports, Markdown, JSONL and PDF are internal until someone
marks them customer-facing (`appliance knowledge sources edit ID --visibility customer`)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator, migrate

#: Frozen here: later changes to the defaults must not rewrite what this migration did.
_CUSTOMER_KINDS = ("faq_html", "zendesk_macros")


def up(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.add_column("knowledge_source", "visibility",
                                peewee.CharField(max_length=16, default="internal")))
    marks = ", ".join([db.param] * len(_CUSTOMER_KINDS))
    db.execute_sql(  # type: ignore[no-untyped-call]
        f"UPDATE knowledge_source SET visibility = 'customer' WHERE kind IN ({marks})",
        _CUSTOMER_KINDS)


def down(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.drop_column("knowledge_source", "visibility"))
