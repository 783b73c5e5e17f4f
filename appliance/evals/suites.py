"""Each brand's eval suites, kept in the database: the source the runner, the release gate and
the nightly run read, for any brand. Files are how suites arrive (`appliance eval import`, the
demo's `evals/` folders) and leave (`export`); a handoff the agent should have handled joins
the brand's `handoffs` suite as a case.

A suite is saved as its author wrote it, after it validates (errors by line); nothing invalid
is ever stored, and an import saves all of its files or none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import peewee
import yaml

from appliance import audit
from appliance.db.models import Brand, EvalSuiteRecord, utcnow
from appliance.errors import InvalidRequest, NotFound
from appliance.evals.cases import EvalCase, EvalSuite
from appliance.workflows.schema import parse_document

#: Where handoffs the agent should have handled become cases.
HANDOFF_SUITE = "handoffs"
#: A suite document's largest size: thousands of cases, never a runaway file.
MAX_SOURCE_BYTES = 1_000_000


def parse_suite(source: str, file_name: str = "suite.yaml") -> EvalSuite:
    """Validate a suite document; DefinitionError lists each problem with its line."""
    if len(source.encode("utf-8")) > MAX_SOURCE_BYTES:
        raise InvalidRequest(f"{file_name}: larger than {MAX_SOURCE_BYTES} bytes",
                             param="source", code="suite_too_large")
    suite = parse_document(source, EvalSuite, file_name)
    names = [case.name for case in suite.cases] + [goal.name for goal in suite.goals]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InvalidRequest(f"{file_name}: cases named twice: {', '.join(twice)}",
                             param="cases", code="duplicate_case")
    return suite


class SuiteService:
    """The brand's suites: save, list, import, export, and add a case."""

    def __init__(self, db: peewee.Database) -> None:
        self._db = db

    def save(self, brand: Brand, source: str, actor: str,
             file_name: str = "suite.yaml") -> EvalSuite:
        """Store the suite the document names (replacing the brand's suite of that name)."""
        suite = parse_suite(source, file_name)
        with self._db.atomic():
            self._store(brand, suite, source, actor)
        return suite

    def _store(self, brand: Brand, suite: EvalSuite, source: str, actor: str) -> None:
        row = EvalSuiteRecord.get_or_none((EvalSuiteRecord.brand == brand)
                                          & (EvalSuiteRecord.name == suite.name))
        if row is None:
            EvalSuiteRecord.create(brand=brand, name=suite.name, source=source,
                                   updated_by=actor)
        elif row.source != source:
            row.source, row.updated_by, row.updated_at = source, actor, utcnow()
            row.save()
        else:
            return
        audit.record(actor, "eval_suite.save", brand.slug,
                     {"suite": suite.name, "cases": len(suite.cases)})

    def suites(self, brand: Brand, name: str | None = None) -> list[EvalSuite]:
        """The brand's suites in name order, or only the one called `name`."""
        return [parse_document(row.source, EvalSuite, f"{row.name}.yaml")
                for row in self.records(brand, name)]

    def records(self, brand: Brand, name: str | None = None) -> list[EvalSuiteRecord]:
        query = EvalSuiteRecord.select().where(EvalSuiteRecord.brand == brand)
        if name is not None:
            query = query.where(EvalSuiteRecord.name == name)
        return list(query.order_by(EvalSuiteRecord.name))

    def delete(self, brand: Brand, name: str, actor: str) -> None:
        with self._db.atomic():
            deleted = EvalSuiteRecord.delete().where(
                (EvalSuiteRecord.brand == brand) & (EvalSuiteRecord.name == name)).execute()
            if not deleted:
                raise NotFound(f"brand {brand.slug!r} has no suite {name!r}",
                               code="suite_not_found")
            audit.record(actor, "eval_suite.delete", brand.slug, {"suite": name})

    def import_dir(self, brand: Brand, directory: Path, actor: str) -> list[str]:
        """Store every `*.yaml` suite in `directory`: all validate first, then all are saved
        in one transaction. Returns the suites' names."""
        sources = {path.name: path.read_text(encoding="utf-8")
                   for path in sorted(directory.glob("*.yaml"))}
        if not sources:
            raise InvalidRequest(f"{directory}: no *.yaml suites", code="nothing_to_import")
        parsed = {file_name: parse_suite(source, file_name)
                  for file_name, source in sources.items()}
        with self._db.atomic():
            for file_name, suite in parsed.items():
                self._store(brand, suite, sources[file_name], actor)
        return [suite.name for suite in parsed.values()]

    def export_dir(self, brand: Brand, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for row in self.records(brand):
            path = directory / f"{row.name}.yaml"
            path.write_text(row.source, encoding="utf-8")
            written.append(path)
        return written

    def add_case(self, brand: Brand, case: dict[str, Any], actor: str,
                 suite: str = HANDOFF_SUITE) -> EvalSuite:
        """Append a case to the suite `suite` (a workflow's name or the suite's own),
        creating it; the document is rewritten (its comments are lost)."""
        EvalCase.model_validate(case)  # a bad case fails before anything is read or written
        with self._db.atomic():
            row = EvalSuiteRecord.get_or_none((EvalSuiteRecord.brand == brand)
                                              & (EvalSuiteRecord.name == suite))
            if row is not None:
                document = yaml.safe_load(row.source)
            else:
                document = {"suite": suite, "cases": []}
            document["cases"] = [*document.get("cases", []), case]
            source = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
            parsed = parse_suite(source, f"{suite}.yaml")
            self._store(brand, parsed, source, actor)
        return parsed
