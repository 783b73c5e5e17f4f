"""HTML to sections, shared by the FAQ, Confluence and Zendesk connectors (BeautifulSoup + lxml).

`clean` drops what is not content (scripts, navigation, page header and footer, forms, cookie
banners and other boilerplate blocks named by their class or id). Hidden elements stay: collapsed
accordion answers are hidden until clicked. `html_sections` walks what is left in document order:
headings open heading paths, and FAQ markup (<details><summary>, <dt>/<dd>, schema.org Question
microdata) becomes question/answer sections; `render_text` turns any element into plain text
that keeps paragraphs, list items and table rows on their own lines.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup
from bs4.element import CData, NavigableString, Tag

from appliance.knowledge.base import Section
from appliance.knowledge.connectors._common import SectionBuilder, collapse

HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_NOISE_TAGS = (
    "script", "style", "noscript", "template", "nav", "aside", "iframe", "svg", "canvas",
    "object", "embed", "select", "input", "textarea", "dialog", "link", "meta",
)  # fmt: skip
_NOISE_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search", "dialog"}
#: Class or id words of boilerplate blocks (whole words between - or _ separators).
_NOISE_WORDS = re.compile(
    r"(^|[-_])(breadcrumbs?|skip|sidebar|share|sharing|social|newsletter|navbar|menu|toc|"
    r"advert|ads|popup|modal|related|footer|topbar|masthead)([-_]|$)",
    re.IGNORECASE,
)
#: Whole class or id values of a page's own header ("article-header" holds the title: it stays).
_SITE_HEADERS = {"header", "site-header", "global-header", "top-header"}
_COOKIE_WORDS = re.compile(r"cookie|consent|gdpr", re.IGNORECASE)
_BLOCKS = {
    "address", "article", "blockquote", "body", "caption", "center", "dd", "details", "div", "dl",
    "dt", "fieldset", "figcaption", "figure", "footer", "header", "hr", "html", "li", "main",
    "ol", "p", "pre", "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
    "ul", *HEADINGS,
}  # fmt: skip
_CONTENT_ROOTS = ("main", "[role=main]", "article", "#main-content", "#content", "body")


def parse_html(markup: bytes | str) -> BeautifulSoup:
    """A parsed page; bytes are decoded from the page's own charset declaration or sniffed."""
    return BeautifulSoup(markup, "lxml")


def clean(soup: BeautifulSoup | Tag) -> None:
    """Remove in place everything that is not page content."""
    for tag in soup.find_all(_NOISE_TAGS):
        tag.decompose()
    for tag in soup.find_all("form"):
        if tag.decomposed:
            continue
        # ASP.NET pages wrap the whole page in one <form>: keep a form that holds content.
        if tag.find(["main", "article", "h1", "h2", "h3"]) is not None:
            tag.unwrap()
        else:
            tag.decompose()
    for tag in soup.find_all(["header", "footer"]):
        # A header inside an article is the article's own (its h1); the page's header is not.
        if tag.find_parent(["article", "main", "section"]) is None:
            tag.decompose()
    for tag in soup.find_all("button"):
        if tag.find_parent(["h1", "h2", "h3", "h4", "h5", "h6", "summary", "dt"]):
            tag.unwrap()  # accordion questions are often a button inside the heading
        else:
            tag.decompose()
    for tag in soup.find_all(_is_noise):
        tag.decompose()


def _is_noise(tag: Tag) -> bool:
    if tag.decomposed or tag.name in ("html", "body", "main"):
        return False
    if tag.get("role") in _NOISE_ROLES:
        return True
    words = [str(tag.get("id") or ""), *(str(word) for word in tag.get_attribute_list("class"))]
    named_noise = any(
        word and (_NOISE_WORDS.search(word) or _COOKIE_WORDS.search(word) or word in _SITE_HEADERS)
        for word in words
    )
    # A wrapper whose class merely mentions a word ("has-cookie-bar") may hold the whole page.
    return named_noise and tag.find(["main", "article", "h1"]) is None


def content_root(soup: BeautifulSoup | Tag) -> Tag | None:
    """The element holding the page's main content: <main>, an article, or the body."""
    for selector in _CONTENT_ROOTS:
        found = soup.select_one(selector)
        if found is not None:
            return found
    return soup if isinstance(soup, Tag) else None


def html_sections(root: Tag, title: str = "") -> tuple[Section, ...]:
    """Sections of an element: headings open heading paths; FAQ markup gives question sections."""
    walker = _SectionWalker(SectionBuilder(title))
    walker.walk(root)
    return walker.finish()


def fragment_text(markup: str) -> str:
    """Plain text of an HTML fragment (a Zendesk comment, a JSON-LD answer)."""
    soup = parse_html(markup)
    clean(soup)
    return render_text(soup)


def render_text(node: Tag) -> str:
    """Plain text of an element: one line per paragraph, "- " list items, " | " table cells."""
    out = _TextOut()
    out.walk(node)
    return out.finish()


def text_of(node: Tag) -> str:
    """The text of an inline element (a heading, a question) on one line."""
    return collapse(node.get_text())


class _TextOut:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.words: list[str] = []
        self.prefix = ""

    def walk(self, node: Tag) -> None:
        for child in node.children:
            self.visit(child)

    def visit(self, child: object) -> None:
        if isinstance(child, NavigableString):
            if type(child) is NavigableString or isinstance(child, CData):
                self.words.append(str(child))
            return
        if not isinstance(child, Tag):
            return
        name = child.name
        if name == "br":
            self.end_line()
        elif name == "pre":
            self.end_line()
            self.lines.append(child.get_text().strip("\n"))
        elif name == "tr":
            self.end_line()
            cells = [collapse(render_text(cell)) for cell in child.find_all(["td", "th"])]
            self.lines.append(" | ".join(cell for cell in cells if cell))
        elif name == "li":
            self.end_line()
            self.prefix = "- "
            self.walk(child)
            self.end_line()
        elif name in _BLOCKS:
            self.end_line()
            self.walk(child)
            self.end_line()
        else:
            self.walk(child)

    def end_line(self) -> None:
        line = collapse("".join(self.words))
        self.words = []
        if line:
            self.lines.append(self.prefix + line)
            self.prefix = ""

    def finish(self) -> str:
        self.end_line()
        return "\n".join(line for line in self.lines if line.strip())


class _SectionWalker:
    """Walks a content element; leaf blocks are rendered whole, containers are descended into."""

    def __init__(self, builder: SectionBuilder) -> None:
        self.builder = builder
        self.inline = _TextOut()

    def walk(self, node: Tag) -> None:
        for child in list(node.children):
            if not isinstance(child, Tag):
                self.inline.visit(child)
                continue
            if child.name in HEADINGS:
                self.flush()
                self.builder.heading(int(child.name[1]), text_of(child))
            elif _question_of(child) is not None:
                self.flush()
                self._pair(child)
            elif child.name == "dl":
                self.flush()
                self._definitions(child)
            elif child.name in _BLOCKS and _has_structure(child):
                self.flush()
                self.walk(child)
                self.flush()
            elif child.name in _BLOCKS:
                self.flush()
                self.builder.text(render_text(child))
            else:
                self.inline.visit(child)

    def flush(self) -> None:
        self.builder.text(self.inline.finish())
        self.inline = _TextOut()

    def finish(self) -> tuple[Section, ...]:
        self.flush()
        return self.builder.build()

    def _pair(self, node: Tag) -> None:
        question = _question_of(node)
        if question is None:
            return
        question_text = text_of(question)
        question.extract()
        answer = node.find(itemprop="acceptedAnswer") or node
        self.builder.pair(question_text, render_text(answer))

    def _definitions(self, dl: Tag) -> None:
        question: str | None = None
        answers: list[str] = []
        for item in dl.find_all(["dt", "dd"]):
            if item.find_parent("dl") is not dl:
                continue  # a list nested in an answer is part of that answer
            if item.name == "dt":
                if question is not None:
                    self.builder.pair(question, "\n".join(answers))
                question, answers = text_of(item), []
            else:
                answers.append(render_text(item))
        if question is not None:
            self.builder.pair(question, "\n".join(answers))


def _question_of(node: Tag) -> Tag | None:
    """The question of an FAQ item: a <details>'s <summary>, or a schema.org Question's name."""
    if node.name == "details":
        summary = node.find("summary")
        return summary if isinstance(summary, Tag) else None
    if str(node.get("itemtype", "")).rstrip("/").endswith("schema.org/Question"):
        name = node.find(itemprop="name")
        return name if isinstance(name, Tag) else None
    return None


def _has_structure(node: Tag) -> bool:
    """Whether headings or FAQ markup lie inside, so the walker must descend rather than render."""
    return (
        node.find([*HEADINGS, "details", "dl"]) is not None
        or node.find(itemtype=re.compile(r"schema\.org/Question")) is not None
    )
