"""Connectors: one module per kind of source, each a `read(path, options)` function that yields
a RawDocument or a DocumentError per document (the contract is in `appliance.knowledge.base`).

`CONNECTORS` maps each kind's name to its reader; `KINDS` lists the names.
"""

from __future__ import annotations

from appliance.knowledge.base import Connector
from appliance.knowledge.connectors import (
    confluence,
    faq_html,
    jsonl,
    markdown,
    pdf,
    slack,
    zendesk_macros,
)

CONNECTORS: dict[str, Connector] = {
    "faq_html": faq_html.read,
    "confluence": confluence.read,
    "slack": slack.read,
    "zendesk_macros": zendesk_macros.read,
    "pdf": pdf.read,
    "markdown": markdown.read,
    "jsonl": jsonl.read,
}
KINDS: tuple[str, ...] = tuple(CONNECTORS)

__all__ = ["CONNECTORS", "KINDS"]
