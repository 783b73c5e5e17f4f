"""Zendesk macros as the API lists them: a JSON file (or a folder of them, one per page of
results) shaped `{"macros": [...], "next_page": ..., "count": ...}`.

A macro is {id, title, active, description, updated_at, url, actions: [{field, value}]}. Its reply
text is in the `comment_value` action (a string, or ["channel:all", "text"]) or in
`comment_value_html`; `comment_mode_is_public` says whether it is a public reply; `subject` sets
the ticket subject. One active macro with reply text is one document; inactive macros and macros
that only change ticket fields are skipped. Titles keep Zendesk's "Category::Name" form.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from appliance.knowledge.base import DocumentError, RawDocument, Section
from appliance.knowledge.connectors._common import (
    BadDocument,
    parse_date,
    read_bytes,
    relative_id,
    source_files,
)
from appliance.knowledge.connectors._html import fragment_text


def read(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument | DocumentError]:
    """Read Zendesk macros JSON; see the module docstring."""
    root, files = source_files(path, {".json"}, "a Zendesk macros JSON file")
    for file in files:
        if isinstance(file, DocumentError):
            yield file
            continue
        name = relative_id(root, file)
        try:
            macros = _macros(file)
        except BadDocument as exc:
            yield DocumentError(name, str(exc))
            continue
        for index, macro in enumerate(macros):
            try:
                document = _document(macro)
            except BadDocument as exc:
                yield DocumentError(_macro_id(macro) or f"{name}#{index}", str(exc))
                continue
            if document is not None:
                yield document


def _macros(file: Path) -> list[Any]:
    try:
        data = json.loads(read_bytes(file))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both
        raise BadDocument(f"not valid JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("macros"), list):
        return list(data["macros"])
    if isinstance(data, dict) and isinstance(data.get("macro"), dict):
        return [data["macro"]]
    raise BadDocument('not a Zendesk macros listing (no "macros" list)')


def _macro_id(macro: object) -> str | None:
    if isinstance(macro, dict) and isinstance(macro.get("id"), int | str) and str(macro["id"]):
        return str(macro["id"])
    return None


def _document(macro: object) -> RawDocument | None:
    macro_id = _macro_id(macro)
    if not isinstance(macro, dict) or macro_id is None:
        raise BadDocument("macro without an id")
    title = macro.get("title")
    if not isinstance(title, str) or not title.strip():
        raise BadDocument("macro without a title")
    if macro.get("active") is False:
        return None
    actions = macro.get("actions")
    if not isinstance(actions, list):
        raise BadDocument("macro without a list of actions")
    values = {str(a.get("field")): a.get("value") for a in actions if isinstance(a, dict)}
    reply = _reply(values)
    if not reply:
        return None  # it only sets ticket fields: nothing an agent could cite
    sections = [Section("", reply)]
    subject = values.get("subject")
    if isinstance(subject, str) and subject.strip():
        sections.insert(0, Section("Subject", subject.strip()))
    description = macro.get("description")
    return RawDocument(
        external_id=macro_id,
        title=title.strip(),
        sections=tuple(sections),
        location=str(macro.get("url") or f"macros/{macro_id}"),
        updated_at=parse_date(macro.get("updated_at")),
        metadata={
            "description": description.strip() if isinstance(description, str) else "",
            "category": title.rpartition("::")[0].strip(),
            "public_reply": str(values.get("comment_mode_is_public", "true")).lower() != "false",
        },
    )


def _reply(values: Mapping[str, Any]) -> str:
    """The macro's reply text: HTML converted when present, else the plain comment."""
    html = values.get("comment_value_html")
    if isinstance(html, str) and html.strip():
        return fragment_text(html)
    plain = values.get("comment_value")
    if isinstance(plain, list):  # ["channel:all", "text"]: the text comes last
        plain = plain[-1] if plain else ""
    return plain.strip() if isinstance(plain, str) else ""
