"""Helpers for tests of the release gate: Lumen Goods' cancel_order workflow as drafts that
the gate must refuse or pass, and a short suite of its cases that need no knowledge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from appliance.brands import policy_of
from appliance.db.models import KnowledgeVersion
from appliance.demo.seed import WORKFLOWS_DIR
from appliance.services import Services

LUMEN = WORKFLOWS_DIR / "lumen-goods"
CANCEL_SOURCE = (LUMEN / "workflows" / "cancel_order.yaml").read_text(encoding="utf-8")
WRITE_ARGS = 'args: {order_id: "{{ order_id }}", reason: "{{ reason }}"}'
#: The write sends one reason whatever the customer gave: a customer who ordered by mistake
#: has their order cancelled as "no longer needed".
BROKEN_SOURCE = CANCEL_SOURCE.replace(
    WRITE_ARGS, 'args: {order_id: "{{ order_id }}", reason: "no longer needed"}')
#: The same workflow, reworded where no case looks.
GOOD_SOURCE = CANCEL_SOURCE.replace("I couldn't cancel order", "I could not cancel order")
#: The shipped cases of cancel_order the gate runs in these tests (no knowledge needed).
CASES = ("step by step, by email", "everything up front", "declined at the confirmation")


def with_test_system(services: Services, brand: Any, url: str | None) -> Any:
    """The brand with `url` as its evals' test system (the gate runs nothing without one)."""
    policy = policy_of(brand)
    evals = policy.evals.model_copy(update={"test_base_url": url})
    return services.brands.update(brand.slug, policy=policy.model_copy(update={"evals": evals}),
                                  actor="test")


def short_cancel_suite_source() -> str:
    """A cancel_order suite of three of its shipped cases."""
    document = yaml.safe_load((LUMEN / "evals" / "cancel_order.yaml").read_text())
    document["cases"] = [case for case in document["cases"] if case["name"] in CASES]
    assert len(document["cases"]) == len(CASES)
    return str(yaml.safe_dump(document, sort_keys=False))


def short_cancel_suite(services: Services, brand: Any) -> None:
    """Replace the brand's cancel_order suite by three of its shipped cases."""
    services.suites.save(brand, short_cancel_suite_source(), "test", "cancel_order.yaml")


RETURNS = ("Items can be returned within 30 days of delivery for a full refund to the original "
           "payment method. Refunds reach the customer within 5 to 7 business days.")
GIFT_CARDS = "Gift cards never expire and can be used on any order, in part or in full."
KNOWLEDGE_SUITE = """\
suite: knowledge
cases:
  - name: the return window
    turns: ["How long do I have to return something?"]
    expect:
      writes: []
      cites: [Return policy]
"""


def knowledge_dropping_the_returns_page(services: Services, brand: Any, tmp_path: Path
                                        ) -> tuple[KnowledgeVersion, KnowledgeVersion]:
    """The brand's only suite a knowledge case citing the return policy; its knowledge a
    published version with the policy and a draft without it: (published, draft)."""
    for record in services.suites.records(brand):
        services.suites.delete(brand, record.name, "test")
    services.suites.save(brand, KNOWLEDGE_SUITE, "test", "knowledge.yaml")
    pages = tmp_path / brand.slug / "policies"  # in the brand's import folder
    pages.mkdir(parents=True)
    (pages / "returns.md").write_text(f"# Return policy\n\n{RETURNS}\n")
    (pages / "gift-cards.md").write_text(f"# Gift cards\n\n{GIFT_CARDS}\n")
    services.knowledge.add_source(brand, {"kind": "markdown", "location": str(pages),
                                          "owner": "policy@lumen.example",
                                          "visibility": "customer"}, actor="test")
    live = services.knowledge.ingest(brand, publish=True).version
    (pages / "returns.md").unlink()
    draft = services.knowledge.ingest(brand).version
    assert live is not None and draft is not None
    return live, draft
