"""Message text as safe HTML: the agent's Markdown rendered, then sanitized.

Replies are written by a model (or quoted from a brand's knowledge, or typed by a human agent),
so their text is never trusted. It is rendered as CommonMark by markdown-it-py with raw HTML
turned off (a `<script>` in the text comes out as the visible characters `<script>`), and the
result goes through nh3 (the ammonia sanitizer) with an allow-list of tags and attributes, so
that even a flaw in the renderer could not put a script, an event handler or a `javascript:`
link on a page. Links must be absolute http(s), mailto or tel URLs; they open in a new tab with
`rel="noopener noreferrer nofollow"`. Images are shown as links to them, never loaded.

A customer's own words are shown as they typed them: escaped, line breaks kept, no Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import nh3
from flask import Flask
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup, escape

#: What rendered Markdown may keep; everything else is stripped (its text stays).
ALLOWED_TAGS = frozenset({
    "p", "br", "strong", "em", "ul", "ol", "li", "a", "code", "pre", "blockquote", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6",
})
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
LINK_REL = "noopener noreferrer nofollow"
#: Roles whose text is Markdown; the customer's is plain text.
PLAIN_ROLES = frozenset({"customer"})


def _image_as_link(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict,
    env: EnvType,
) -> str:
    # A picture in a reply would be fetched from wherever the model pointed: show a link.
    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children or [], options, env) or "image"
    return f'<a href="{escapeHtml(str(token.attrGet("src") or ""))}">{escapeHtml(alt)}</a>'


@cache
def _markdown() -> MarkdownIt:
    # `breaks`: a line break in a chat message is meant, not a paragraph wrapped for reflow.
    md = MarkdownIt("commonmark", {"html": False, "breaks": True})
    md.add_render_rule("image", _image_as_link)
    return md


@cache
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        url_relative="deny",
        link_rel=LINK_REL,
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )


def sanitize(html: str) -> Markup:
    """`html` with only the allow-listed tags and attributes left, links made safe."""
    return Markup(_cleaner().clean(html).strip())


def markdown_html(text: str) -> Markup:
    """`text` rendered as CommonMark and sanitized: safe to put in any page as it is."""
    return sanitize(_markdown().render(text))


def plain_html(text: str) -> Markup:
    """`text` as one escaped paragraph, its line breaks kept as `<br>`."""
    return Markup("<p>{}</p>").format(Markup("<br>\n").join(escape(text).split("\n")))


def message_html(text: str, role: str) -> Markup:
    """How a message of `role` shows: Markdown for the agent, human agents and the system;
    plain text for the customer."""
    return plain_html(text) if role in PLAIN_ROLES else markdown_html(text)


def init_app(app: Flask) -> None:
    """Register the `message_html` filter: `{{ message.text | message_html(message.role) }}`."""
    app.add_template_filter(message_html, "message_html")
