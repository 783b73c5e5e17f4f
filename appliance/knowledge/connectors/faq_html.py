"""FAQ and help pages saved as HTML: a folder of pages, one page, or a local sitemap.xml.

One page is one document. Question/answer pairs (<details><summary>, <dt>/<dd>, headings that ask a
question, schema.org FAQPage JSON-LD or microdata) become sections headed by the question; other
content is split at its headings. Navigation, page header and footer, scripts, forms and cookie
banners are dropped. external_id is the path relative to the source root; location is the page's
canonical URL when it declares one; updated_at comes from <meta> or JSON-LD dates, then the
sitemap's <lastmod>, then the file's mtime.
"""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from bs4 import BeautifulSoup, Tag

from appliance.knowledge.base import DocumentError, RawDocument, Section, SourceError
from appliance.knowledge.connectors._common import (
    BadDocument,
    collapse,
    file_mtime,
    is_inside,
    parse_date,
    read_bytes,
    refused,
    relative_id,
    source_root,
    walk_files,
)
from appliance.knowledge.connectors._html import (
    clean,
    content_root,
    fragment_text,
    html_sections,
    parse_html,
    text_of,
)

SUFFIXES = {".html", ".htm", ".xhtml"}
_MODIFIED_META = (
    "article:modified_time", "og:updated_time", "dateModified", "last-modified",
    "dcterms.modified", "DC.date.modified",
)  # fmt: skip
_PUBLISHED_META = ("article:published_time", "datePublished", "date", "dcterms.created", "DC.date")


@dataclass(frozen=True)
class _Listed:
    """What a sitemap says about a page."""

    url: str | None
    lastmod: dt.datetime | None


def read(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument | DocumentError]:
    """Read saved HTML pages; see the module docstring."""
    location = source_root(path)
    if location.is_file() and location.suffix.lower() == ".xml":
        yield from _read_sitemap(location)
        return
    if location.is_dir():
        root, files = location, walk_files(location, SUFFIXES)
    elif location.suffix.lower() in SUFFIXES:
        root, files = location.parent, iter([location])
    else:
        raise SourceError(f"{path} is neither an HTML page, a folder of pages nor a sitemap.xml")
    for file in files:
        if isinstance(file, DocumentError):
            yield file
        else:
            yield _guarded(root, file, _Listed(None, None))


def _read_sitemap(sitemap: Path) -> Iterator[RawDocument | DocumentError]:
    root = sitemap.parent
    try:
        tree = ET.fromstring(read_bytes(sitemap))
    except (BadDocument, ET.ParseError) as exc:
        raise SourceError(f"{sitemap.name} cannot be read as a sitemap: {exc}") from exc
    for url in (node for node in tree.iter() if _local_name(node.tag) == "url"):
        fields = {_local_name(child.tag): (child.text or "").strip() for child in url}
        loc = fields.get("loc", "")
        if not loc:
            continue
        file = _local_file(root, loc)
        if file is None:
            yield DocumentError(loc, "listed in the sitemap, but no such local file")
        elif not is_inside(root, file):
            yield refused(root, file)
        else:
            remote = loc if urlsplit(loc).scheme in ("http", "https") else None
            yield _guarded(root, file, _Listed(remote, parse_date(fields.get("lastmod"))))


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _local_file(root: Path, loc: str) -> Path | None:
    """The saved copy of a sitemap entry: a relative path, a file: URL, or a site URL's path."""
    parts = urlsplit(loc)
    if parts.scheme == "file":
        candidates = [Path(unquote(parts.path))]
    elif parts.scheme in ("http", "https"):
        relative = unquote(parts.path).lstrip("/")
        candidates = [root / relative, root / parts.netloc / relative]
    else:
        candidates = [root / unquote(loc)]
    for candidate in candidates:
        for option in (
            candidate,
            candidate.with_name(candidate.name + ".html"),
            candidate / "index.html",
        ):
            if option.is_file():
                return option
    return None


def _guarded(root: Path, file: Path, listed: _Listed) -> RawDocument | DocumentError:
    external_id = relative_id(root, file)
    try:
        return _page(file, external_id, listed)
    except BadDocument as exc:
        return DocumentError(external_id, str(exc))


def _page(file: Path, external_id: str, listed: _Listed) -> RawDocument:
    soup = parse_html(read_bytes(file))
    linked_data = _json_ld(soup)
    canonical = _canonical(soup) or listed.url
    updated_at = (
        _meta_date(soup, _MODIFIED_META)
        or _linked_date(linked_data, "dateModified")
        or listed.lastmod
        or _meta_date(soup, _PUBLISHED_META)
        or _linked_date(linked_data, "datePublished")
        or file_mtime(file)
    )
    head_title = _head_title(soup)
    clean(soup)
    root = content_root(soup)
    if root is None:
        raise BadDocument("no page content")
    h1 = root.find("h1")
    title = text_of(h1) if isinstance(h1, Tag) and text_of(h1) else head_title or file.stem
    sections = _with_linked_questions(html_sections(root, title), linked_data)
    if not sections:
        raise BadDocument("no readable text once scripts, navigation and boilerplate are removed")
    return RawDocument(
        external_id=external_id,
        title=title,
        sections=sections,
        location=canonical or external_id,
        updated_at=updated_at,
        metadata={"file": external_id},
    )


def _head_title(soup: BeautifulSoup) -> str:
    og = soup.find("meta", property="og:title")
    if isinstance(og, Tag) and collapse(str(og.get("content", ""))):
        return collapse(str(og.get("content", "")))
    title = soup.find("title")
    return text_of(title) if isinstance(title, Tag) else ""


def _canonical(soup: BeautifulSoup) -> str | None:
    for tag in soup.find_all("link", href=True):
        if "canonical" in tag.get_attribute_list("rel"):
            return str(tag["href"]).strip() or None
    og = soup.find("meta", property="og:url")
    if isinstance(og, Tag):
        return str(og.get("content", "")).strip() or None
    return None


def _meta_date(soup: BeautifulSoup, names: tuple[str, ...]) -> dt.datetime | None:
    wanted = {name.lower() for name in names}
    for meta in soup.find_all("meta"):
        key = (
            meta.get("property")
            or meta.get("name")
            or meta.get("itemprop")
            or meta.get("http-equiv")
        )
        if str(key or "").lower() in wanted:
            found = parse_date(str(meta.get("content", "")))
            if found:
                return found
    return None


# --- schema.org JSON-LD ----------------------------------------------------------------------


def _json_ld(soup: BeautifulSoup) -> list[dict[str, Any]]:
    """Every JSON-LD object on the page, @graph members included; broken blocks are skipped."""
    found: list[dict[str, Any]] = []
    for script in soup.find_all("script", type="application/ld+json"):
        try:
            data = json.loads(script.get_text())
        except ValueError:
            continue
        pending = data if isinstance(data, list) else [data]
        while pending:
            item = pending.pop(0)
            if isinstance(item, dict):
                found.append(item)
                graph = item.get("@graph")
                pending.extend(graph if isinstance(graph, list) else [])
    return found


def _types(item: Mapping[str, Any]) -> set[str]:
    kind = item.get("@type")
    return {str(k) for k in kind} if isinstance(kind, list) else {str(kind)}


def _linked_date(items: list[dict[str, Any]], key: str) -> dt.datetime | None:
    return next((date for item in items if (date := parse_date(item.get(key)))), None)


def _linked_questions(items: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for item in items:
        if "FAQPage" not in _types(item):
            continue
        entities = item.get("mainEntity")
        for question in entities if isinstance(entities, list) else [entities]:
            if not isinstance(question, dict) or "Question" not in _types(question):
                continue
            answer = question.get("acceptedAnswer") or question.get("suggestedAnswer")
            if isinstance(answer, list):
                answer = answer[0] if answer else None
            if isinstance(answer, dict) and isinstance(answer.get("text"), str):
                yield collapse(str(question.get("name", ""))), fragment_text(answer["text"])


def _with_linked_questions(
    sections: tuple[Section, ...], items: list[dict[str, Any]]
) -> tuple[Section, ...]:
    """The page's sections plus JSON-LD questions the visible page does not already answer."""
    seen = {_question_key(section.heading.rsplit(" > ", 1)[-1]) for section in sections}
    extra = []
    for question, answer in _linked_questions(items):
        if question and answer and _question_key(question) not in seen:
            seen.add(_question_key(question))
            extra.append(Section(question, answer))
    return sections + tuple(extra)


def _question_key(question: str) -> str:
    return collapse(question).casefold().rstrip("?:. ")
