"""PDF files (one file or a folder of them), read page by page with pypdf.

One PDF is one document and each page one section. A page's heading is the PDF outline's
(bookmarks') entry for it, else its first line when that line looks like a heading (short, no
closing punctuation, not repeated on other pages as a running header), else "Page N". The title is
the PDF's /Title, else the first line of the first page. A running footer (the same last line on
every page, page numbers aside) is dropped. A corrupt or password-protected PDF, or
one with no text layer (a scan), is a DocumentError.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from pypdf.generic import Destination

from appliance.knowledge.base import DocumentError, RawDocument, Section
from appliance.knowledge.connectors._common import (
    BadDocument,
    collapse,
    file_mtime,
    first_line,
    parse_date,
    read_bytes,
    relative_id,
    source_files,
)

_HEADING_MAX_CHARS = 60
_HEADING_MAX_WORDS = 8
_DIGITS = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(r"(page\s*)?\d+(\s*(/|of)\s*\d+)?", re.IGNORECASE)


def read(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument | DocumentError]:
    """Read PDFs; see the module docstring."""
    root, files = source_files(path, {".pdf"}, "a PDF")
    for file in files:
        if isinstance(file, DocumentError):
            yield file
            continue
        name = relative_id(root, file)
        try:
            yield _document(file, name)
        except BadDocument as exc:
            yield DocumentError(name, str(exc))


def _open(data: bytes) -> PdfReader:
    # pypdf raises a wide range of exceptions on damaged files (its own, ValueError, KeyError,
    # struct.error, ...); for one file all of them mean the same thing: this PDF cannot be read.
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise BadDocument("the PDF is password-protected")
        _ = len(reader.pages)
    except BadDocument:
        raise
    except Exception as exc:
        raise BadDocument(f"corrupt or unreadable PDF ({type(exc).__name__}: {exc})") from exc
    return reader


def _pages_text(reader: PdfReader) -> list[str]:
    texts = []
    for page in reader.pages:
        try:
            texts.append(page.extract_text() or "")
        except Exception:  # one damaged page content stream: keep the other pages
            texts.append("")
    return texts


def _document(file: Path, name: str) -> RawDocument:
    reader = _open(read_bytes(file))
    texts = _without_running_footer(_pages_text(reader))
    if not any(text.strip() for text in texts):
        raise BadDocument("the PDF has no text layer (a scan?); nothing to read")
    outline = _outline_headings(reader)
    running = _running_headers(texts)
    sections = []
    for number, text in enumerate(texts, start=1):
        heading, body = _split_heading(text, outline.get(number - 1), running)
        if body:
            sections.append(Section(heading or f"Page {number}", body))
    info_title, author, changed = _info(reader)
    title = info_title or first_line(texts[0], 120) or file.stem
    return RawDocument(
        external_id=name,
        title=title,
        sections=tuple(sections),
        location=name,
        updated_at=changed or file_mtime(file),
        author=author or None,
        metadata={"pages": len(texts)},
    )


def _info(reader: PdfReader) -> tuple[str, str, dt.datetime | None]:
    """(title, author, last change) from the PDF's /Info dictionary; blanks where it has none."""
    try:
        info = reader.metadata
        if info is None:
            return "", "", None
        changed = info.modification_date or info.creation_date
        return collapse(info.title or ""), collapse(info.author or ""), parse_date(changed)
    except Exception:  # a damaged /Info dictionary does not make the text unreadable
        return "", "", None


def _outline_headings(reader: PdfReader) -> dict[int, str]:
    """Page index → the first outline (bookmark) title pointing at it."""
    headings: dict[int, str] = {}
    try:
        pending: list[Any] = list(reader.outline)
        while pending:
            item = pending.pop(0)
            if isinstance(item, list):
                pending[:0] = item
            elif isinstance(item, Destination):
                page = reader.get_destination_page_number(item)
                title = collapse(str(item.title or ""))
                if page is not None and page >= 0 and title:
                    headings.setdefault(page, title)
    except Exception:  # a broken outline only costs us headings
        return {}
    return headings


def _running_headers(texts: list[str]) -> set[str]:
    """First lines repeated on several pages: running headers, not headings."""
    firsts = Counter(first_line(text, 200) for text in texts if text.strip())
    return {line for line, count in firsts.items() if count > 1}


def _without_running_footer(texts: list[str]) -> list[str]:
    """The pages without their running footer: a last line that every page of several ends
    with, page numbers aside ("Acme Policy, 2021 edition.  Page 2 of 3"). It is the document's
    furniture, not its content, and quoted to a customer it says nothing."""
    lasts = [text.rstrip().rsplit("\n", 1)[-1] for text in texts]
    shapes = {_DIGITS.sub("#", collapse(last)) for last in lasts}
    if len(texts) < 2 or len(shapes) != 1 or not any(c.isalpha() for c in lasts[0]):
        return texts
    return [text.rstrip()[:-len(last)] for text, last in zip(texts, lasts, strict=True)]


def _split_heading(text: str, outlined: str | None, running: set[str]) -> tuple[str | None, str]:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    if outlined:
        if lines and collapse(lines[0]) == outlined:
            lines = lines[1:]
        return outlined, "\n".join(lines).strip()
    if len(lines) > 1 and _looks_like_heading(lines[0], running):
        return collapse(lines[0]), "\n".join(lines[1:]).strip()
    return None, "\n".join(lines).strip()


def _looks_like_heading(line: str, running: set[str]) -> bool:
    line = collapse(line)
    return (
        0 < len(line) <= _HEADING_MAX_CHARS
        and len(line.split()) <= _HEADING_MAX_WORDS
        and line not in running
        and line[-1] not in ".,;:!"
        and (line[0].isupper() or line[0].isdigit())
        and any(char.isalpha() for char in line)
        and not _PAGE_NUMBER.fullmatch(line)
    )
