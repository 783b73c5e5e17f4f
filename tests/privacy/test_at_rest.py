"""Personal data at rest: a conversation carrying card numbers, an SSN and an email leaves none
of them in clear anywhere in the test's directory (the SQLite database, its WAL, the data dir),
while the cancel workflow that needs the email still finds the customer and cancels the order.
On PostgreSQL the same rows are read back and checked. The customer sees their email back and
the card only as its last four."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from retail_support import Customer, RetailBackend

from appliance.brands import Policy, policy_of, validated
from appliance.db.models import Conversation, Handoff, Message, ToolCall, TurnTrace
from appliance.errors import ApplianceError, InvalidRequest
from appliance.privacy.detect import Detector
from appliance.privacy.vault import Vault, VaultError, Vaults
from appliance.services import Services

#: A customer of the demo shop whom no demo eval suite names (those are stored in clear).
EMAIL = "anya.garcia2061@example.com"
ORDER = "#W6436609"
CARDS = ("4111 1111 1111 1111", "5500-0000-0000-0004")
SSN = "536-22-1234"
SECRETS = (EMAIL, *CARDS, SSN, "4111111111111111", "5500000000000004", "536221234")


def stored_rows() -> str:
    """Every row a conversation leaves, as text."""
    rows: list[Any] = []
    for model in (Conversation, Message, TurnTrace, ToolCall, Handoff):
        rows += [list(row) for row in model.select().tuples()]
    return json.dumps(rows, default=str)


def test_a_conversation_leaves_no_card_ssn_or_email_in_clear_and_the_workflow_works(
        client: FlaskClient, services: Services, seeded: dict[str, Any], lumen: Any,
        retail_backend: RetailBackend, tmp_path: Path) -> None:
    customer = Customer(client, seeded["keys"]["lumen-goods"])
    customer.says(f"Hi! I'd like to cancel order {ORDER}")
    assert "found your account" in customer.says(EMAIL)
    customer.says("I don't need it anymore")
    assert "is cancelled" in customer.says("yes")
    assert retail_backend.order(ORDER)["status"] == "cancelled"
    customer.says(f"Also, I was charged twice on my card {CARDS[0]} and once on {CARDS[1]}")
    customer.says(f"My SSN is {SSN} if you need it, and my email again: {EMAIL}")

    # What the channel reads back: the email in full, the cards as their last four.
    shown = json.dumps(customer.status()["messages"], ensure_ascii=False)
    assert EMAIL in shown and "•••• •••• •••• 1111" in shown and CARDS[0] not in shown
    assert SSN not in shown
    # What is stored: placeholders only, in every row and every file.
    rows = stored_rows()
    assert "[EMAIL_1]" in rows and "[CARD_1]" in rows and "[SSN_1]" in rows
    services.db.close()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in data, f"{secret} in clear in {path.name}"
    services.db.connect(reuse_if_open=True)
    for secret in SECRETS:
        assert secret not in rows


def test_the_vault_gives_the_same_value_the_same_placeholder_across_turns() -> None:
    vault = Vault(Detector())
    first = vault.redact(f"card {CARDS[0]}, email {EMAIL}")
    second = vault.redact(f"again {EMAIL} and {CARDS[1]}")

    assert first == "card [CARD_1], email [EMAIL_1]"
    assert second == "again [EMAIL_1] and [CARD_2]"
    assert vault.reveal(second) == f"again {EMAIL} and {CARDS[1]}"
    assert vault.reveal(first, shown=("EMAIL",)) == f"card •••• •••• •••• 1111, email {EMAIL}"
    # A value seen before is found again on its own (a slot), not inside another word.
    vault.redact("my account number is 12345678")
    assert vault.redact_json({"slot": "12345678", "order": "#W123456789"}) == {
        "slot": "[ACCOUNT_1]", "order": "#W123456789"}


def test_a_sealed_vault_opens_only_with_its_secret_and_for_its_conversation() -> None:
    vault = Vault(Detector())
    vault.redact(f"my email is {EMAIL}")
    sealed = Vaults("secret one").seal(vault, "conv_1")
    assert sealed is not None and EMAIL not in sealed

    assert Vaults("secret one").open(sealed, "conv_1").entries == {"[EMAIL_1]": EMAIL}
    for secret, conversation in (("secret two", "conv_1"), ("secret one", "conv_2")):
        with pytest.raises(VaultError) as refused:
            Vaults(secret).open(sealed, conversation)
        assert isinstance(refused.value, ApplianceError) and refused.value.status == 500


def test_a_brand_pattern_that_does_not_compile_is_refused_naming_it(
        services: Services, seeded: dict[str, Any]) -> None:
    policy = policy_of(services.brands.get("lumen-goods")).model_dump()
    policy["pii_patterns"] = {"MEMBER_ID": "M-(\\d{8}"}
    with pytest.raises(InvalidRequest) as refused:
        validated(Policy, policy)
    assert "MEMBER_ID" in refused.value.message and "does not compile" in refused.value.message
