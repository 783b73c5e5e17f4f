"""Message text as HTML (appliance/web/markup.py): Markdown that looks like what it means, and
nothing a model, a knowledge source or a person writes can run in a page.

Every output is parsed back with the standard library's HTML parser and checked element by
element against the allow-list, so a test fails on anything new that slips through, not only
on the strings it names.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from markupsafe import Markup

from appliance.web.markup import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    URL_SCHEMES,
    markdown_html,
    message_html,
    plain_html,
    sanitize,
)

Element = tuple[str, dict[str, str | None]]


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[Element] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser


def elements(html: str) -> list[Element]:
    return parsed(html).found


def visible_text(html: str) -> str:
    return "".join(parsed(html).text)


def assert_inert(html: str) -> None:
    """Only allow-listed tags and attributes; links only to allowed schemes."""
    for tag, attrs in elements(html):
        assert tag in ALLOWED_TAGS, f"<{tag}> in {html!r}"
        allowed = ALLOWED_ATTRIBUTES.get(tag, set()) | (
            {"target", "rel"} if tag == "a" else set())
        assert set(attrs) <= allowed, f"<{tag} {attrs}> in {html!r}"
        href = attrs.get("href")
        if href is not None:
            assert urlsplit(href).scheme in URL_SCHEMES, f"href {href!r} in {html!r}"


HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    '<img src=x onerror="alert(1)">',
    "<svg/onload=alert(1)>",
    '<iframe src="https://evil.example"></iframe>',
    "<style>body{display:none}</style>",
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](java%0ascript:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click](file:///etc/passwd)",
    "<javascript:alert(1)>",
    "![x](javascript:alert(1))",
    '![x" onerror="alert(1)](https://example.com/a.png)',
    '[x](https://example.com "a\\" onclick=\\"alert(1)")',
    "**<b onmouseover=alert(1)>bold</b>**",
    "- <details open ontoggle=alert(1)>",
    "<!-- <script>alert(1)</script> -->",
    "```html\n<script>alert(1)</script>\n```",
    "<p style=\"background:url(javascript:alert(1))\">x</p>",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_it_renders_hostile_text_inert(text: str) -> None:
    html = markdown_html(text)
    assert_inert(html)
    assert "<script" not in html.lower()
    assert "javascript:" not in " ".join(
        value or "" for _, attrs in elements(html) for value in attrs.values()).lower()


@pytest.mark.parametrize("text", HOSTILE)
def test_it_shows_a_customers_hostile_text_as_typed(text: str) -> None:
    html = plain_html(text)
    assert [tag for tag, _ in elements(html)] == ["p"] + ["br"] * text.count("\n")
    assert visible_text(html).replace("\n", "") == text.replace("\n", "")


def test_it_renders_bold_and_lists() -> None:
    html = markdown_html(
        "**Returns** are *free*:\n\n- within 30 days\n- unworn\n\n1. pack\n2. ship")
    assert [tag for tag, _ in elements(html)] == [
        "p", "strong", "em", "ul", "li", "li", "ol", "li", "li"]
    assert "<strong>Returns</strong>" in html
    assert "<li>within 30 days</li>" in html


def test_it_keeps_a_lists_numbering() -> None:
    html = markdown_html("3. Please list the items\n4. Print the label")
    assert elements(html)[0] == ("ol", {"start": "3"})


def test_it_keeps_line_breaks() -> None:
    assert [tag for tag, _ in elements(markdown_html("Hi Sam,\nyour order shipped."))] == [
        "p", "br"]


def test_it_shows_raw_html_as_text() -> None:
    html = markdown_html("Use <b>bold</b> & <script>alert(1)</script>")
    assert visible_text(html) == "Use <b>bold</b> & <script>alert(1)</script>"
    assert [tag for tag, _ in elements(html)] == ["p"]


def test_it_opens_links_in_a_new_tab_without_the_opener() -> None:
    html = markdown_html("See [our policy](https://lumen.example/returns \"Returns\").")
    assert elements(html)[1] == ("a", {
        "href": "https://lumen.example/returns", "title": "Returns", "target": "_blank",
        "rel": "noopener noreferrer nofollow"})


@pytest.mark.parametrize("target", ["/returns", "returns.html", "//evil.example/x", "#top"])
def test_it_drops_links_that_are_not_absolute(target: str) -> None:
    html = markdown_html(f"[returns]({target})")
    assert_inert(html)
    assert all("href" not in attrs for _, attrs in elements(html))
    assert visible_text(html) == "returns"


@pytest.mark.parametrize("target", ["mailto:help@lumen.example", "tel:+15550100"])
def test_it_keeps_mail_and_phone_links(target: str) -> None:
    assert elements(markdown_html(f"[write]({target})"))[1][1]["href"] == target


def test_it_shows_an_image_as_a_link_and_never_loads_it() -> None:
    html = markdown_html("![the label](https://lumen.example/label.png)")
    assert elements(html)[1][0] == "a"
    assert elements(html)[1][1]["href"] == "https://lumen.example/label.png"
    assert visible_text(html) == "the label"


@pytest.mark.parametrize("html", [
    "<script>alert(1)</script>ok",
    '<p onclick="alert(1)">ok</p>',
    '<a href="javascript:alert(1)">ok</a>',
    '<img src="x" onerror="alert(1)">ok',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>ok',
    '<form action="https://evil.example"><input name="card"></form>ok',
])
def test_it_sanitizes_whatever_the_renderer_might_let_through(html: str) -> None:
    clean = sanitize(html)
    assert_inert(clean)
    assert visible_text(clean) == "ok"


def test_it_renders_by_role() -> None:
    assert message_html("**yes**", "agent") == "<p><strong>yes</strong></p>"
    assert message_html("**yes**", "human") == "<p><strong>yes</strong></p>"
    assert message_html("**yes**\n<i>", "customer") == "<p>**yes**<br>\n&lt;i&gt;</p>"
    assert isinstance(message_html("x", "agent"), Markup), "safe to put in a template as it is"
