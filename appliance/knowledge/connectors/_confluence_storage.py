"""Confluence's XML space export (entities.xml) and its storage format, for `confluence`.

entities.xml is a Hibernate dump: a flat list of <object class="..."> under <hibernate-generic>,
each with an <id> and <property name="..."> children; a property that points at another object
holds that object's <id>. A page's historical versions are Page objects of their own that carry an
`originalVersion` property; drafts and trashed pages have a contentStatus other than "current".
Page text lives in BodyContent objects whose `content` property names the page; bodyType 2 is the
XHTML storage format, 0 the wiki markup of Confluence 3. Confluence writes "]]>" inside CDATA as
"]] >". (Format as documented by XWiki's Confluence importer, which reads these files.)
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bs4 import Tag

from appliance.knowledge.base import DocumentError, RawDocument, Section, SourceError
from appliance.knowledge.connectors._common import (
    BadDocument,
    check_size,
    markdown_sections,
    parse_date,
)
from appliance.knowledge.connectors._html import clean, html_sections, parse_html

_FIRST_PASS = {"Page", "Space", "ConfluenceUserImpl"}
#: Macros that render navigation or other pages' content rather than text of this page.
_DROPPED_MACROS = {
    "anchor", "attachments", "blog-posts", "children", "contentbylabel", "create-from-template",
    "excerpt-include", "gallery", "include", "index", "jira", "jiraissues", "listlabels",
    "livesearch", "navmap", "pagetree", "pagetreesearch", "popular-labels", "profile",
    "recently-updated", "related-labels", "roadmap", "space-details", "toc", "view-file",
    "viewfile", "widget",
}  # fmt: skip
_DROPPED_TAGS = [
    "ac:parameter", "ac:image", "ac:emoticon", "ac:placeholder", "ac:task-id", "ac:task-uuid",
    "ac:task-status", "ac:adf-fallback",
]  # fmt: skip
_RENAMED = {
    "ac:plain-text-body": "pre",
    "ac:task-list": "ul",
    "ac:task": "li",
    "ac:structured-macro": "div",
    "ac:macro": "div",
    "ac:rich-text-body": "div",
    "ac:layout": "div",
    "ac:layout-section": "div",
    "ac:layout-cell": "div",
}
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.DOTALL)
_SELF_CLOSING = re.compile(r"<((?:ac|ri):[\w-]+)((?:\s[^<>]*?)?)\s*/>")
_WIKI_HEADING = re.compile(r"^h([1-6])\.\s+", re.MULTILINE)


@dataclass(frozen=True)
class _Context:
    """What every page of one export needs to become a document."""

    file_name: str
    base_url: str | None
    spaces: dict[str, str]
    users: dict[str, str]
    titles: dict[str, str]
    parents: dict[str, str]

    def breadcrumbs(self, page_id: str) -> list[str]:
        trail: list[str] = []
        parent = self.parents.get(page_id, "")
        while parent in self.titles and self.titles[parent] not in trail and len(trail) < 50:
            trail.insert(0, self.titles[parent])
            parent = self.parents.get(parent, "")
        return trail


@dataclass
class _Object:
    cls: str
    id: str
    props: dict[str, str] = field(default_factory=dict)
    collections: dict[str, list[str]] = field(default_factory=dict)


def read_entities(file: Path, base_url: str | None) -> Iterator[RawDocument | DocumentError]:
    """Current pages of an entities.xml, each with the body of its current version.

    Two streaming passes keep memory flat however large the export: the first learns which pages
    are current (and the names of spaces, users and parents), the second takes only their bodies.
    """
    pages: dict[str, _Object] = {}
    titles: dict[str, str] = {}
    parents: dict[str, str] = {}
    spaces: dict[str, str] = {}
    users: dict[str, str] = {}
    for obj in _objects(file, _FIRST_PASS):
        if obj.cls == "Page":
            titles[obj.id] = obj.props.get("title", "")
            parents[obj.id] = obj.props.get("parent", "")
            if _is_current(obj):
                pages[obj.id] = obj
        elif obj.cls == "Space":
            spaces[obj.id] = obj.props.get("key") or obj.props.get("name", "")
        else:
            users[obj.id] = obj.props.get("name") or obj.props.get("lowerName", "")
    context = _Context(file.name, base_url, spaces, users, titles, parents)
    for body in _objects(file, {"BodyContent"}):
        page = pages.pop(body.props.get("content", ""), None)
        if page is not None:
            yield _guarded(page, body, context)
    for page in pages.values():  # current pages with no body at all
        yield _guarded(page, None, context)


def _is_current(page: _Object) -> bool:
    """Not an old version (those point at the current one), a draft or a trashed page."""
    status = page.props.get("contentStatus") or "current"
    return "originalVersion" not in page.props and status == "current"


def _guarded(page: _Object, body: _Object | None, context: _Context) -> RawDocument | DocumentError:
    try:
        return _document(page, body, context)
    except BadDocument as exc:
        return DocumentError(page.id, str(exc))


def _objects(file: Path, wanted: set[str]) -> Iterator[_Object]:
    """The objects of the `wanted` classes, streamed: the file is never held whole in memory."""
    depth = 0
    root: ET.Element | None = None
    try:
        for event, elem in ET.iterparse(file, events=("start", "end")):
            if event == "start":
                depth += 1
                if root is None:
                    root = elem
                    if elem.tag != "hibernate-generic":
                        raise SourceError(f"{file.name} is not a Confluence XML export")
                continue
            depth -= 1
            if depth == 1 and elem.tag == "object" and root is not None:
                if elem.get("class") in wanted:
                    yield _object(elem)
                root.clear()  # drop what was read so memory stays flat
    except ET.ParseError as exc:
        raise SourceError(f"{file.name} is not well-formed XML: {exc}") from exc
    except OSError as exc:
        raise SourceError(f"{file.name} cannot be read: {exc.strerror}") from exc


def _object(elem: ET.Element) -> _Object:
    obj = _Object(cls=elem.get("class", ""), id="")
    for child in elem:
        name = child.get("name", "")
        if child.tag == "id":
            obj.id = (child.text or "").strip()
        elif child.tag == "property":
            ref = child.find("id")
            obj.props[name] = (ref.text if ref is not None else child.text) or ""
        elif child.tag == "collection":
            ids = (element.find("id") for element in child.findall("element"))
            obj.collections[name] = [(ref.text or "").strip() for ref in ids if ref is not None]
    obj.props = {key: value if key == "body" else value.strip() for key, value in obj.props.items()}
    return obj


def _document(page: _Object, body: _Object | None, context: _Context) -> RawDocument:
    title = page.props.get("title", "").strip()
    if not title:
        raise BadDocument("page has no title")
    text = body.props.get("body", "") if body else ""
    check_size(len(text.encode()))
    if body is not None and body.props.get("bodyType") == "0":
        sections = wiki_sections(text, title)
    else:
        sections = storage_sections(text, title)
    if not sections:
        raise BadDocument("page has no text")
    location = (
        f"{context.base_url}/pages/viewpage.action?pageId={page.id}"
        if context.base_url
        else f"{context.file_name}#page-{page.id}"
    )
    return RawDocument(
        external_id=page.id,
        title=title,
        sections=sections,
        location=location,
        updated_at=parse_date(page.props.get("lastModificationDate")),
        author=context.users.get(page.props.get("lastModifier", "")) or None,
        metadata={
            "space": context.spaces.get(page.props.get("space", ""), ""),
            "version": page.props.get("version", ""),
            "breadcrumbs": context.breadcrumbs(page.id),
        },
    )


def storage_sections(body: str, title: str) -> tuple[Section, ...]:
    """Sections of a page in Confluence's XHTML storage format (ac:/ri: tags and all)."""
    body = body.replace("]] >", "]]>")
    body = _CDATA.sub(lambda match: html.escape(match.group(1), quote=False), body)
    # An HTML parser would read <ac:x/> as an open tag swallowing what follows; close it.
    body = _SELF_CLOSING.sub(r"<\1\2></\1>", body)
    soup = parse_html(f"<div>{body}</div>")
    for macro in soup.find_all(["ac:structured-macro", "ac:macro"]):
        if not macro.decomposed and macro.get("ac:name") in _DROPPED_MACROS:
            macro.decompose()
    for link in soup.find_all("ac:link"):
        target = link.find("ri:page")
        if not link.get_text(strip=True) and isinstance(target, Tag):
            link.string = str(target.get("ri:content-title", ""))
    for tag in soup.find_all(_DROPPED_TAGS):
        tag.decompose()
    for tag in soup.find_all(list(_RENAMED)):
        tag.name = _RENAMED[tag.name]
    clean(soup)
    return html_sections(soup.body or soup, title)


def wiki_sections(body: str, title: str) -> tuple[Section, ...]:
    """Sections of a Confluence 3 wiki-markup page: its "h2. " lines are its headings."""
    return markdown_sections(
        _WIKI_HEADING.sub(lambda match: "#" * int(match.group(1)) + " ", body), title
    )
