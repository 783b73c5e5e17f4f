"""Which passage an extractive answer quotes: customer-facing material first."""

from __future__ import annotations

from appliance.knowledge.service import Hit


def _hit(kind: str, title: str, score: float) -> Hit:
    return Hit(chunk_id=1, article_id=1, article_key=f"1/{title}", title=title, heading="",
               text="Returns within 30 days.", score=score,
               provenance=[{"kind": kind, "external_id": title, "location": title}])


def test_it_treats_wikis_chat_exports_and_internal_pages_as_agent_facing() -> None:
    assert not _hit("confluence", "Returns quick guide", 0.8).customer_facing
    assert not _hit("slack", "support-floor/1700000000.0001", 0.8).customer_facing
    assert not _hit("jsonl", "Internal: Filing a dispute", 0.8).customer_facing
    assert _hit("faq_html", "Returns FAQ", 0.8).customer_facing
    assert _hit("jsonl", "How to dispute a transaction", 0.8).customer_facing
