"""Articles as JSON Lines (one .jsonl file or a folder of them): one object per line with `id`,
`title` and `content`, and optionally `url`, `updated_at` and `file`.

One line is one document; its content is Markdown, split into sections at its headings. A bad line
(not JSON, not an object, a field missing, an id seen before) is a DocumentError naming the line
number, and the lines after it are read as usual. Files are streamed line by line, so the size
limit applies to each line, not to the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from appliance.knowledge import base
from appliance.knowledge.base import DocumentError, RawDocument
from appliance.knowledge.connectors._common import (
    BadDocument,
    markdown_sections,
    parse_date,
    relative_id,
    source_files,
)

_REQUIRED = ("title", "content")


def read(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument | DocumentError]:
    """Read JSON Lines articles; see the module docstring."""
    root, files = source_files(path, {".jsonl"}, "a JSON Lines (.jsonl) file")
    seen: dict[str, str] = {}  # id → where it was first seen
    for file in files:
        if isinstance(file, DocumentError):
            yield file
            continue
        name = relative_id(root, file)
        try:
            with file.open("rb") as handle:
                yield from _read_lines(handle, name, seen)
        except OSError as exc:
            yield DocumentError(name, f"cannot be read: {exc.strerror}")


def _read_lines(
    handle: IO[bytes], name: str, seen: dict[str, str]
) -> Iterator[RawDocument | DocumentError]:
    for number, raw in _lines(handle):
        where = f"{name}:{number}"
        if raw is None:
            limit = base.MAX_FILE_BYTES
            yield DocumentError(where, f"line {number}: longer than the {limit}-byte limit")
            continue
        if not raw.strip():
            continue
        record: Any = None
        try:
            record = json.loads(raw)
            document = _document(record, name, number)
        except (BadDocument, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
            record_id = record.get("id") if isinstance(record, dict) else None
            external_id = str(record_id) if isinstance(record_id, str | int) else where
            yield DocumentError(external_id, f"line {number}: {_reason(exc)}")
            continue
        if document.external_id in seen:
            message = f"line {number}: id already used at {seen[document.external_id]}"
            yield DocumentError(document.external_id, message)
            continue
        seen[document.external_id] = where
        yield document


def _lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """Numbered lines, never more than the limit in memory; None for a line over the limit."""
    limit = base.MAX_FILE_BYTES
    number = 0
    while line := handle.readline(limit + 1):
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):  # skip the rest of it
                line = handle.readline(limit + 1)
            yield number, None
        else:
            yield number, line


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    if isinstance(exc, UnicodeDecodeError):
        return "not valid UTF-8"
    return str(exc)


def _document(record: Any, name: str, number: int) -> RawDocument:
    if not isinstance(record, dict):
        raise BadDocument("not a JSON object")
    record_id = record.get("id")
    if not isinstance(record_id, str | int) or isinstance(record_id, bool) or not str(record_id):
        raise BadDocument("missing 'id'")
    for key in _REQUIRED:
        if not isinstance(record.get(key), str):
            raise BadDocument(f"missing '{key}' (a string)")
    title = record["title"].strip() or str(record_id)
    sections = markdown_sections(record["content"], title)
    if not sections:
        raise BadDocument("empty 'content'")
    url = record.get("url") if isinstance(record.get("url"), str) else ""
    file = record.get("file") if isinstance(record.get("file"), str) else ""
    return RawDocument(
        external_id=str(record_id),
        title=title,
        sections=sections,
        location=url or file or f"{name}#{record_id}",
        updated_at=parse_date(record.get("updated_at")),
        metadata={"source_file": file, "jsonl": name, "line": number},
    )
