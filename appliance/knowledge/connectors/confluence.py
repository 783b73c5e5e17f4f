"""A Confluence space export: the HTML export folder, or the XML export's entities.xml.

The HTML export is index.html (the space overview, skipped) plus one file per page named
`Page-Title_<id>.html` (or `<id>.html`), with attachments/, images/ and styles/ beside them. Each
page has breadcrumbs (#breadcrumbs), its title as "Space : Title" (#title-text), a "Created by ...,
last modified by ... on Mon DD, YYYY" line (.page-metadata), and its body in #main-content; the
attachments and comments sections around the body are left out. The XML export is read by
`_confluence_storage`. Either way one current page is one document, its page id the external_id.

options: `base_url` (e.g. "https://wiki.example.com"): cite pages as
`{base_url}/pages/viewpage.action?pageId=<id>` rather than by file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bs4 import Tag

from appliance.errors import InvalidRequest
from appliance.knowledge.base import DocumentError, RawDocument, SourceError
from appliance.knowledge.connectors._common import (
    BadDocument,
    child_file,
    collapse,
    file_mtime,
    parse_date,
    read_bytes,
    relative_id,
    source_root,
    walk_files,
)
from appliance.knowledge.connectors._confluence_storage import read_entities
from appliance.knowledge.connectors._html import clean, html_sections, parse_html, text_of

_NOT_PAGES = {"attachments", "images", "styles"}
_PAGE_ID = re.compile(r"(?:^|_)(\d+)\.html?$")
_MODIFIED = re.compile(r"\bon\s+([A-Z][a-z]{2,8}\s+\d{1,2},\s+\d{4})")


def read(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument | DocumentError]:
    """Read a Confluence space export; see the module docstring."""
    base_url = _base_url(options)
    location = source_root(path)
    if location.is_file():
        if location.suffix.lower() != ".xml":
            raise SourceError(f"{path} is not a Confluence export (a folder or entities.xml)")
        yield from read_entities(location, base_url)
        return
    entities = child_file(location, "entities.xml")
    if entities is not None:
        yield from read_entities(entities, base_url)
    elif any(location.glob("*.htm*")):
        yield from _read_html_export(location, base_url)
    elif any(location.iterdir()):
        raise SourceError(f"{path} is not a Confluence export: no entities.xml and no HTML pages")


def _base_url(options: Mapping[str, Any]) -> str | None:
    value = options.get("base_url")
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise InvalidRequest("base_url must be an http(s) URL", param="base_url")
    return value.rstrip("/")


def _read_html_export(root: Path, base_url: str | None) -> Iterator[RawDocument | DocumentError]:
    for file in walk_files(root, {".html", ".htm"}):
        if isinstance(file, DocumentError):
            yield file
            continue
        name = relative_id(root, file)
        if name == "index.html" or name.split("/", 1)[0] in _NOT_PAGES:
            continue
        match = _PAGE_ID.search(file.name)
        page_id = match.group(1) if match else file.stem
        try:
            yield _html_page(file, name, page_id, base_url)
        except BadDocument as exc:
            yield DocumentError(page_id, f"{name}: {exc}")


def _html_page(file: Path, name: str, page_id: str, base_url: str | None) -> RawDocument:
    soup = parse_html(read_bytes(file))
    body = soup.select_one("#main-content")
    if body is None:
        raise BadDocument("not a Confluence page (no #main-content)")
    heading = soup.select_one("#title-text") or soup.find("title")
    space, _, title = (text_of(heading) if isinstance(heading, Tag) else "").rpartition(" : ")
    title = title or file.stem
    metadata_line = soup.select_one(".page-metadata")
    byline = collapse(metadata_line.get_text()) if metadata_line else ""
    dates = _MODIFIED.findall(byline)
    author = (metadata_line.select_one(".editor") or metadata_line.select_one(".author")
              if metadata_line else None)  # fmt: skip
    breadcrumbs = [text_of(link) for link in soup.select("#breadcrumbs a")]
    clean(body)
    sections = html_sections(body, title)
    if not sections:
        raise BadDocument("page has no text")
    return RawDocument(
        external_id=page_id,
        title=title,
        sections=sections,
        location=f"{base_url}/pages/viewpage.action?pageId={page_id}" if base_url else name,
        updated_at=(parse_date(dates[-1]) if dates else None) or file_mtime(file),
        author=text_of(author) if author else None,
        metadata={"space": space, "breadcrumbs": breadcrumbs, "file": name},
    )
