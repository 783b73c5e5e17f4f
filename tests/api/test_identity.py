"""Signed customer identities: the brand's site vouches for its customer (appliance/identity.py).

Over the real Flask app and SQLite: a good signature opens the conversation at the `asserted`
level, a bad one is a 401 that opens nothing, the public widget cannot name a customer
without one, and a revoked secret stops working while a live one keeps working.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from appliance.db.models import AuditLog, Conversation
from appliance.identity import Assurance, signature
from appliance.services import Services

BRAND = "rho-bank"
OTHER = "lumen-goods"


@pytest.fixture(autouse=True)
def _demo_brands(seeded: dict[str, Any]) -> None:
    """Every test here runs against the seeded demo brands."""


@pytest.fixture
def secret(services: Services) -> str:
    _, plaintext = services.identity.create_secret(services.brands.get(BRAND), actor="test")
    return plaintext


def _open(client: FlaskClient, customer: dict[str, Any],
          headers: dict[str, str] | None = None) -> Any:
    path = "/v1/conversations" if headers else f"/v1/widget/{BRAND}/conversations"
    return client.post(path, json={"customer": customer}, headers=headers or {})


def test_the_signature_is_the_hex_hmac_sha256_of_the_identifier() -> None:
    # The value documented in docs/api.md, computed independently of the appliance:
    # printf 'cust_42' | openssl dgst -sha256 -hmac 'sbi_example'
    assert signature("sbi_example", "cust_42") == (
        "4ab96d9e4f581e6d18b325f433a1557d05902e2e781a5dac7128bd4615281fe1")


@pytest.mark.parametrize("public", [True, False], ids=["widget", "api key"])
def test_a_good_signature_opens_the_conversation_as_asserted(
    client: FlaskClient, secret: str, auth: Callable[[str], dict[str, str]], public: bool
) -> None:
    customer = {"id": "cust_42", "name": "Ada", "signature": signature(secret, "cust_42")}

    response = _open(client, customer, None if public else auth(BRAND))

    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["customer"] == {"id": "cust_42", "name": "Ada",
                                "assurance": Assurance.ASSERTED.label}
    stored = Conversation.get(Conversation.public_id == body["id"]).customer
    assert "signature" not in stored and stored["assurance"] == "asserted"


def test_an_email_may_be_the_signed_identifier(client: FlaskClient, secret: str) -> None:
    email = "ada@example.com"

    response = _open(client, {"email": email, "signature": signature(secret, email)})

    assert response.status_code == 201
    assert response.get_json()["customer"] == {"email": email, "assurance": "asserted"}


@pytest.mark.parametrize("case", ["wrong id", "another brand's secret", "tampered", "no id"])
def test_a_bad_signature_is_a_401_that_opens_nothing(
    client: FlaskClient, services: Services, secret: str, case: str
) -> None:
    _, other_secret = services.identity.create_secret(services.brands.get(OTHER), actor="test")
    good = signature(secret, "cust_42")
    customer = {
        "wrong id": {"id": "cust_43", "signature": good},
        "another brand's secret": {"id": "cust_42",
                                   "signature": signature(other_secret, "cust_42")},
        "tampered": {"id": "cust_42", "signature": ("0" if good[0] != "0" else "1") + good[1:]},
        "no id": {"name": "Ada", "signature": good},
    }[case]
    before = Conversation.select().count()

    response = _open(client, customer)

    assert response.status_code == 401
    error = response.get_json()["error"]
    # The same answer whatever was wrong.
    assert error["code"] == "invalid_identity_signature"
    assert error["message"] == "the customer's identity signature does not match"
    assert Conversation.select().count() == before


@pytest.mark.parametrize("customer", [{"id": "cust_42"}, {"email": "ada@example.com"}])
def test_the_widget_cannot_name_a_customer_without_a_signature(
    client: FlaskClient, customer: dict[str, str]
) -> None:
    before = Conversation.select().count()

    response = _open(client, customer)

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "identity_signature_required"
    assert Conversation.select().count() == before


def test_the_widget_may_still_open_anonymously_or_with_a_display_name(
    client: FlaskClient
) -> None:
    assert _open(client, {}).status_code == 201
    response = _open(client, {"name": "Ada"})
    assert response.status_code == 201
    assert response.get_json()["customer"] == {"name": "Ada"}


def test_an_api_caller_may_pass_an_unsigned_customer_which_stays_unasserted(
    client: FlaskClient, auth: Callable[[str], dict[str, str]]
) -> None:
    response = _open(client, {"id": "cust_42"}, auth(BRAND))

    assert response.status_code == 201
    assert response.get_json()["customer"] == {"id": "cust_42"}


def test_a_malformed_signature_is_a_400_naming_the_field(client: FlaskClient) -> None:
    response = _open(client, {"id": "cust_42", "signature": "not-hex"})

    assert response.status_code == 400
    assert "customer.signature" in response.get_data(as_text=True)


def test_rotation_keeps_both_secrets_live_until_the_old_one_is_revoked(
    client: FlaskClient, services: Services, secret: str
) -> None:
    brand = services.brands.get(BRAND)
    old = next(row for row in services.identity.secrets(brand) if row.secret == secret)
    _, new = services.identity.create_secret(brand, actor="test")

    for live in (secret, new):
        assert _open(client, {"id": "c1", "signature": signature(live, "c1")}).status_code == 201

    services.identity.revoke_secret(brand, old.id, actor="admin")

    assert _open(client, {"id": "c1", "signature": signature(secret, "c1")}).status_code == 401
    assert _open(client, {"id": "c1", "signature": signature(new, "c1")}).status_code == 201
    actions = [row.action for row in AuditLog.select().where(AuditLog.target == BRAND)]
    assert {"identity_secret.create", "identity_secret.revoke"} <= set(actions)


def test_assurance_levels_are_ordered_weakest_first() -> None:
    assert (Assurance.NONE < Assurance.CONTACT < Assurance.KNOWLEDGE < Assurance.ONE_TIME_CODE
            < Assurance.ASSERTED)
    assert Assurance.ONE_TIME_CODE.label == "one_time_code"
