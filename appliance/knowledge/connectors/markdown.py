"""Markdown and plain-text files (.md, .markdown, .txt): one file or a folder of them.

One file is one document, split into sections at its headings. Text is decoded as UTF-8 (with or
without BOM, UTF-16 with BOM), else in the encoding charset-normalizer finds; a file that decodes
as nothing is a DocumentError. A leading YAML front-matter block is removed; its `title` and
`updated`/`date` keys are used. The title is then the front matter's, else a leading level-1
heading, else the file name.

options: `encoding` forces one encoding for every file (when the detector guesses wrong).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from appliance.errors import InvalidRequest
from appliance.knowledge.base import DocumentError, RawDocument
from appliance.knowledge.connectors._common import (
    BadDocument,
    decode_text,
    file_mtime,
    markdown_sections,
    markdown_title,
    parse_date,
    read_bytes,
    relative_id,
    source_files,
)

SUFFIXES = {".md", ".markdown", ".txt"}
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_KEY = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:[ \t]*(.*?)[ \t]*$", re.MULTILINE)


def read(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument | DocumentError]:
    """Read Markdown and text files; see the module docstring."""
    encoding = options.get("encoding")
    if encoding is not None and not isinstance(encoding, str):
        raise InvalidRequest("encoding must be the name of a text encoding", param="encoding")
    root, files = source_files(path, SUFFIXES, "a Markdown or text file")
    for file in files:
        if isinstance(file, DocumentError):
            yield file
            continue
        name = relative_id(root, file)
        try:
            yield _document(file, name, encoding)
        except BadDocument as exc:
            yield DocumentError(name, str(exc))


def _document(file: Path, name: str, encoding: str | None) -> RawDocument:
    text = decode_text(read_bytes(file), encoding).replace("\r\n", "\n").replace("\r", "\n")
    front, text = split_front_matter(text)
    title = front.get("title") or markdown_title(text) or file.stem
    sections = markdown_sections(text, title)
    if not sections:
        raise BadDocument("the file has no text")
    return RawDocument(
        external_id=name,
        title=title,
        sections=sections,
        location=name,
        updated_at=parse_date(
            front.get("updated") or front.get("last_modified") or front.get("date")
        )
        or file_mtime(file),
        author=front.get("author") or None,
        metadata={"front_matter": front} if front else {},
    )


def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """The flat `key: value` pairs of a leading YAML front-matter block, and the text after it."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    pairs = {
        key.lower(): value.strip("'\"")
        for key, value in _FRONT_KEY.findall(match.group(1))
        if value and not value.startswith(("[", "{", "|", ">"))
    }
    return pairs, text[match.end() :]
