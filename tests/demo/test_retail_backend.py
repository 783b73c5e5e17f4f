"""Lumen Goods' retail backend: τ-bench retail semantics over HTTP, one transaction per write,
idempotency keys, reset. Through the Flask test client, and once over real HTTP under gunicorn.

Sample data (from the seed, τ-bench's retail database):
- olivia_ito_3591, olivia.ito5204@example.com, Olivia Ito, zip 80218; gift card
  gift_card_7794233 (balance 56), paypal_8049766, credit_card_9753331.
- #W3657213: pending, 3570.34 paid with gift_card_7794233.
- #W5442520: pending, credit card; Hiking Boots 2648909398 (240.87).
- #W7941031: pending, credit card, 2198.09.
- #W5353646: processed.
- #W5866402: delivered, paypal; Espresso Machine 6242772310 and Sneakers 9727387530 (207.75).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from demo_backends import assert_error, fresh_copy
from flask.testing import FlaskClient
from retail_support import RetailBackend

from appliance.demo.errors import Conflict
from appliance.demo.retail import operations
from appliance.demo.retail.app import create_app
from appliance.demo.retail.store import SEED_DIR, RetailStore

USER = "olivia_ito_3591"
EMAIL = "olivia.ito5204@example.com"
GIFT_CARD = "gift_card_7794233"
PAYPAL = "paypal_8049766"
CREDIT_CARD = "credit_card_9753331"
PENDING_GIFT_CARD_ORDER = "#W3657213"
PENDING_ORDER = "#W5442520"
PENDING_CARD_ORDER = "#W7941031"
DELIVERED_ORDER = "#W5866402"
PROCESSED_ORDER = "#W5353646"
ESPRESSO_MACHINE = "6242772310"
SNEAKERS = "9727387530"
HIKING_BOOTS = "2648909398"
ADDRESS = {"address1": "1 Lantern Way", "address2": "", "city": "Portland", "state": "OR",
           "country": "USA", "zip": "97201"}


def seed(name: str) -> dict[str, Any]:
    docs: dict[str, Any] = json.loads((SEED_DIR / f"{name}.json").read_text())
    return docs


@pytest.fixture(scope="session")
def seeded_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One seeded database, copied for each test (seeding takes a moment)."""
    path = tmp_path_factory.mktemp("retail-seed") / "retail.db"
    RetailStore(path)
    return path


@pytest.fixture
def db_path(seeded_file: Path, tmp_path: Path) -> Path:
    return fresh_copy(seeded_file, tmp_path)


@pytest.fixture
def store(db_path: Path) -> RetailStore:
    return RetailStore(db_path)


@pytest.fixture
def retail(db_path: Path) -> FlaskClient:
    app = create_app(db_path)
    app.testing = True
    return app.test_client()


def post(client: FlaskClient, path: str, body: Any, key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(path, json=body, headers=headers)


def order_path(order_id: str, action: str = "") -> str:
    path = f"/orders/{order_id.lstrip('#')}"
    return f"{path}/{action}" if action else path


def get(client: FlaskClient, path: str, **query: str) -> Any:
    return client.get(path, query_string=query).json


def balance(client: FlaskClient, method_id: str = GIFT_CARD) -> float:
    amount: float = get(client, f"/users/{USER}")["payment_methods"][method_id]["balance"]
    return amount


# Reads


def test_it_reports_health(retail: FlaskClient) -> None:
    assert get(retail, "/health") == {"status": "ok"}


def test_it_finds_a_user_by_email_in_any_case(retail: FlaskClient) -> None:
    assert get(retail, "/users/by-email", email=EMAIL) == {"user_id": USER}
    response = retail.get("/users/by-email", query_string={"email": " Olivia.ITO5204@Example.com"})
    assert response.json == {"user_id": USER}


def test_it_finds_a_user_by_name_and_zip_in_any_case(retail: FlaskClient) -> None:
    response = retail.get("/users/by-name-zip",
                          query_string={"first_name": "olivia", "last_name": "ITO", "zip": "80218"})
    assert response.json == {"user_id": USER}


def test_it_finds_every_seeded_user_by_email_and_by_name_zip(store: RetailStore) -> None:
    for user_id, user in seed("users").items():
        assert store.user_id_by_email(user["email"]) == user_id
        name = user["name"]
        assert store.user_id_by_name_zip(name["first_name"], name["last_name"],
                                         user["address"]["zip"]) == user_id


def test_it_answers_404_for_an_unknown_user_or_wrong_zip(retail: FlaskClient) -> None:
    assert_error(retail.get("/users/by-email", query_string={"email": "nobody@example.com"}),
                 404, "user_not_found")
    assert_error(retail.get("/users/by-name-zip", query_string={
        "first_name": "Olivia", "last_name": "Ito", "zip": "00000"}), 404, "user_not_found")
    assert_error(retail.get("/users/nobody_0000"), 404, "user_not_found")


def test_it_answers_400_for_a_missing_query_parameter(retail: FlaskClient) -> None:
    assert_error(retail.get("/users/by-email"), 400, "missing_parameter")
    assert_error(retail.get("/users/by-name-zip", query_string={"first_name": "Olivia"}),
                 400, "missing_parameter")


def test_it_returns_the_user_with_its_id(retail: FlaskClient) -> None:
    user = get(retail, f"/users/{USER}")
    assert user == {"user_id": USER, **seed("users")[USER]}
    assert user["payment_methods"][GIFT_CARD]["balance"] == 56


@pytest.mark.parametrize("spelling", ["W5866402", "%23W5866402", "#W5866402"])
def test_it_returns_an_order_whatever_the_spelling_of_its_id(retail: FlaskClient,
                                                             spelling: str) -> None:
    # A literal '#' would start the URL's fragment: the test client, like any HTTP client,
    # sends only what comes before it, so '#W...' is sent encoded.
    path = f"/orders/{spelling.replace('#', '%23')}"
    assert get(retail, path) == seed("orders")[DELIVERED_ORDER]


def test_it_answers_404_in_the_error_shape_for_an_unknown_order(retail: FlaskClient) -> None:
    assert_error(retail.get("/orders/W0000000"), 404, "order_not_found")
    assert_error(post(retail, "/orders/W0000000/cancel", {"reason": "no longer needed"}),
                 404, "order_not_found")


def test_it_lists_the_50_products_and_returns_one_with_its_variants(
        retail: FlaskClient) -> None:
    products = get(retail, "/products")
    assert len(products) == 50
    assert products == sorted(products, key=lambda p: p["name"])
    assert {"name": "Hiking Boots", "product_id": "7363354090"} in products
    boots = get(retail, "/products/7363354090")
    assert boots == seed("products")["7363354090"]
    assert boots["variants"]["8106223139"]["price"] == 249.12
    assert_error(retail.get("/products/0"), 404, "product_not_found")


def test_it_answers_404_in_the_error_shape_for_an_unknown_route(retail: FlaskClient) -> None:
    assert_error(retail.get("/nowhere"), 404, "not_found")
    assert_error(retail.get("/reset"), 405, "method_not_allowed")


# Cancel


def test_it_cancels_a_pending_order_and_refunds_a_gift_card_at_once(
        retail: FlaskClient) -> None:
    response = post(retail, order_path(PENDING_GIFT_CARD_ORDER, "cancel"),
                    {"reason": "ordered by mistake"})
    assert response.status_code == 200, response.json
    order = response.json
    assert order["status"] == "cancelled"
    assert order["cancel_reason"] == "ordered by mistake"
    assert order["payment_history"] == [
        {"transaction_type": "payment", "amount": 3570.34, "payment_method_id": GIFT_CARD},
        {"transaction_type": "refund", "amount": 3570.34, "payment_method_id": GIFT_CARD},
    ]
    assert balance(retail) == 3626.34  # 56 + 3570.34
    assert get(retail, order_path(PENDING_GIFT_CARD_ORDER)) == order


def test_it_refunds_a_card_payment_later_not_to_a_gift_card(retail: FlaskClient) -> None:
    order = post(retail, order_path(PENDING_ORDER, "cancel"), {"reason": "no longer needed"}).json
    assert order["payment_history"][-1] == {
        "transaction_type": "refund", "amount": 663.85, "payment_method_id": CREDIT_CARD}
    assert balance(retail) == 56


def test_it_refuses_to_cancel_a_delivered_order(retail: FlaskClient) -> None:
    response = post(retail, order_path(DELIVERED_ORDER, "cancel"), {"reason": "no longer needed"})
    assert_error(response, 409, "order_not_pending")
    assert get(retail, order_path(DELIVERED_ORDER)) == seed("orders")[DELIVERED_ORDER]
    processed = post(retail, order_path(PROCESSED_ORDER, "cancel"), {"reason": "no longer needed"})
    assert_error(processed, 409, "order_not_pending")


def test_it_refuses_a_cancel_reason_outside_the_two_allowed(retail: FlaskClient) -> None:
    response = post(retail, order_path(PENDING_ORDER, "cancel"), {"reason": "too expensive"})
    assert_error(response, 400, "invalid_reason")
    assert get(retail, order_path(PENDING_ORDER))["status"] == "pending"


# Modify a pending order


def test_it_modifies_a_pending_orders_address(retail: FlaskClient) -> None:
    order = post(retail, order_path(PENDING_ORDER, "modify-address"), ADDRESS).json
    assert order["address"] == ADDRESS
    assert order["status"] == "pending"
    assert get(retail, order_path(PENDING_ORDER))["address"] == ADDRESS


def test_it_refuses_an_address_with_a_missing_field(retail: FlaskClient) -> None:
    body = {k: v for k, v in ADDRESS.items() if k != "city"}
    assert_error(post(retail, order_path(PENDING_ORDER, "modify-address"), body),
                 400, "invalid_field")
    assert_error(post(retail, order_path(DELIVERED_ORDER, "modify-address"), ADDRESS),
                 409, "order_not_pending")


def test_it_modifies_items_and_charges_the_difference_to_a_gift_card(
        retail: FlaskClient) -> None:
    body = {"item_ids": [HIKING_BOOTS], "new_item_ids": ["8106223139"],
            "payment_method_id": GIFT_CARD}
    response = post(retail, order_path(PENDING_ORDER, "modify-items"), body)
    assert response.status_code == 200, response.json
    order = response.json
    assert order["status"] == "pending (item modified)"
    boots = next(item for item in order["items"] if item["name"] == "Hiking Boots")
    assert boots == {"name": "Hiking Boots", "product_id": "7363354090", "item_id": "8106223139",
                     "price": 249.12,
                     "options": {"size": "9", "material": "leather", "waterproof": "yes"}}
    assert order["payment_history"][-1] == {
        "transaction_type": "payment", "amount": 8.25, "payment_method_id": GIFT_CARD}
    assert balance(retail) == 47.75  # 56 - (249.12 - 240.87)
    # Once modified, the order is no longer 'pending': no second change, no cancel.
    assert_error(post(retail, order_path(PENDING_ORDER, "modify-items"), body),
                 409, "order_not_pending")
    assert_error(post(retail, order_path(PENDING_ORDER, "cancel"), {"reason": "no longer needed"}),
                 409, "order_not_pending")


def test_it_refuses_to_modify_into_another_product_or_past_a_gift_cards_balance(
        retail: FlaskClient) -> None:
    path = order_path(PENDING_GIFT_CARD_ORDER, "modify-items")
    # 6700049080 is an Action Camera; 2509076505 is a pair of Sneakers.
    other_product = {"item_ids": ["6700049080"], "new_item_ids": ["2509076505"],
                     "payment_method_id": PAYPAL}
    assert_error(post(retail, path, other_product), 400, "invalid_new_item")
    # Digital Camera 5996159312 (2895.55) to 9644439410 (3280.31): 384.76 more than 56.
    too_dear = {"item_ids": ["5996159312"], "new_item_ids": ["9644439410"],
                "payment_method_id": GIFT_CARD}
    assert_error(post(retail, path, too_dear), 409, "insufficient_balance")
    not_in_order = {"item_ids": [HIKING_BOOTS], "new_item_ids": ["8106223139"],
                    "payment_method_id": PAYPAL}
    assert_error(post(retail, path, not_in_order), 400, "item_not_in_order")
    assert get(retail, order_path(PENDING_GIFT_CARD_ORDER)) == \
        seed("orders")[PENDING_GIFT_CARD_ORDER]


def test_it_refuses_an_unavailable_variant(store: RetailStore) -> None:
    products = seed("products")
    order_id, item, variant_id = next(
        (order_id, item, variant_id)
        for order_id, order in seed("orders").items() if order["status"] == "pending"
        for item in order["items"]
        for variant_id, variant in products[item["product_id"]]["variants"].items()
        if not variant["available"]
    )
    with pytest.raises(Conflict) as raised:
        store.write(lambda tx: operations.modify_pending_order_items(
            tx, order_id, [item["item_id"]], [variant_id], "unused"))
    assert raised.value.code == "item_unavailable"


def test_it_modifies_the_payment_method_and_moves_gift_card_money(
        retail: FlaskClient) -> None:
    order = post(retail, order_path(PENDING_GIFT_CARD_ORDER, "modify-payment"),
                 {"payment_method_id": PAYPAL}).json
    assert order["status"] == "pending"
    assert order["payment_history"] == [
        {"transaction_type": "payment", "amount": 3570.34, "payment_method_id": GIFT_CARD},
        {"transaction_type": "payment", "amount": 3570.34, "payment_method_id": PAYPAL},
        {"transaction_type": "refund", "amount": 3570.34, "payment_method_id": GIFT_CARD},
    ]
    assert balance(retail) == 3626.34


def test_it_refuses_the_same_payment_method_or_a_gift_card_that_cannot_cover(
        retail: FlaskClient) -> None:
    path = order_path(PENDING_CARD_ORDER, "modify-payment")
    assert_error(post(retail, path, {"payment_method_id": CREDIT_CARD}), 400,
                 "same_payment_method")
    assert_error(post(retail, path, {"payment_method_id": GIFT_CARD}), 409, "insufficient_balance")
    assert_error(post(retail, path, {"payment_method_id": "paypal_0000000"}), 400,
                 "payment_method_not_found")


# Return and exchange a delivered order


def test_it_requests_a_return_of_a_delivered_order(retail: FlaskClient) -> None:
    response = post(retail, order_path(DELIVERED_ORDER, "return"),
                    {"item_ids": [SNEAKERS], "payment_method_id": GIFT_CARD})
    assert response.status_code == 200, response.json
    expected = {**seed("orders")[DELIVERED_ORDER], "status": "return requested",
                "return_items": [SNEAKERS], "return_payment_method_id": GIFT_CARD}
    assert response.json == expected
    assert get(retail, order_path(DELIVERED_ORDER)) == expected
    assert balance(retail) == 56  # the refund comes once the items are back


def test_it_refunds_a_return_only_to_the_original_method_or_a_gift_card(
        retail: FlaskClient) -> None:
    path = order_path(DELIVERED_ORDER, "return")
    assert_error(post(retail, path, {"item_ids": [SNEAKERS], "payment_method_id": CREDIT_CARD}),
                 400, "invalid_refund_method")
    assert_error(post(retail, order_path(PENDING_ORDER, "return"),
                      {"item_ids": [HIKING_BOOTS], "payment_method_id": CREDIT_CARD}),
                 409, "order_not_delivered")
    both = post(retail, path, {"item_ids": [SNEAKERS, ESPRESSO_MACHINE],
                               "payment_method_id": PAYPAL})
    assert both.json["return_items"] == sorted([SNEAKERS, ESPRESSO_MACHINE])
    assert_error(post(retail, path, {"item_ids": [SNEAKERS], "payment_method_id": PAYPAL}),
                 409, "order_not_delivered")


def test_it_requests_an_exchange_of_a_delivered_order(retail: FlaskClient) -> None:
    response = post(retail, order_path(DELIVERED_ORDER, "exchange"),
                    {"item_ids": [SNEAKERS], "new_item_ids": ["2509076505"],
                     "payment_method_id": PAYPAL})
    assert response.status_code == 200, response.json
    expected = {**seed("orders")[DELIVERED_ORDER], "status": "exchange requested",
                "exchange_items": [SNEAKERS], "exchange_new_items": ["2509076505"],
                "exchange_payment_method_id": PAYPAL,
                "exchange_price_difference": -18.25}  # 189.50 - 207.75
    assert response.json == expected
    assert get(retail, order_path(DELIVERED_ORDER)) == expected
    assert_error(post(retail, order_path(DELIVERED_ORDER, "return"),
                      {"item_ids": [SNEAKERS], "payment_method_id": PAYPAL}),
                 409, "order_not_delivered")


def test_it_refuses_an_exchange_a_gift_card_cannot_cover_or_with_mismatched_lists(
        retail: FlaskClient) -> None:
    path = order_path(DELIVERED_ORDER, "exchange")
    # Espresso Machine 2996.03 -> 7407838442 (3081.91): 85.88 more than the card's 56.
    assert_error(post(retail, path, {"item_ids": [ESPRESSO_MACHINE],
                                     "new_item_ids": ["7407838442"],
                                     "payment_method_id": GIFT_CARD}),
                 409, "insufficient_balance")
    assert_error(post(retail, path, {"item_ids": [ESPRESSO_MACHINE, SNEAKERS],
                                     "new_item_ids": ["7407838442"],
                                     "payment_method_id": PAYPAL}),
                 400, "item_count_mismatch")
    assert_error(post(retail, path, {"item_ids": [], "new_item_ids": [],
                                     "payment_method_id": PAYPAL}),
                 400, "no_items")
    assert get(retail, order_path(DELIVERED_ORDER)) == seed("orders")[DELIVERED_ORDER]


# The user's default address


def test_it_modifies_a_users_default_address(retail: FlaskClient) -> None:
    user = post(retail, f"/users/{USER}/address", ADDRESS).json
    assert user == get(retail, f"/users/{USER}")
    assert user["user_id"] == USER
    assert user["address"] == ADDRESS
    # The new zip is how the user is found by name from now on.
    found = retail.get("/users/by-name-zip",
                       query_string={"first_name": "Olivia", "last_name": "Ito", "zip": "97201"})
    assert found.json == {"user_id": USER}
    assert_error(post(retail, "/users/nobody_0000/address", ADDRESS), 404, "user_not_found")


# Request shape


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", ""])
def test_it_answers_400_in_the_error_shape_for_a_body_that_is_not_a_json_object(
        retail: FlaskClient, data: str) -> None:
    response = retail.post(order_path(PENDING_ORDER, "cancel"), data=data,
                           content_type="application/json")
    assert_error(response, 400, "invalid_json")


def test_it_answers_400_for_fields_of_the_wrong_type(retail: FlaskClient) -> None:
    assert_error(post(retail, order_path(DELIVERED_ORDER, "return"),
                      {"item_ids": SNEAKERS, "payment_method_id": PAYPAL}), 400, "invalid_field")
    assert_error(post(retail, order_path(PENDING_ORDER, "cancel"), {"reason": 3}),
                 400, "invalid_field")


# Idempotency, transactions, reset


def test_it_replays_a_write_under_the_same_idempotency_key_without_acting_again(
        retail: FlaskClient) -> None:
    path = order_path(PENDING_ORDER, "modify-items")
    body = {"item_ids": [HIKING_BOOTS], "new_item_ids": ["8106223139"],
            "payment_method_id": GIFT_CARD}
    first = post(retail, path, body, key="turn-1")
    # The same request, the order id spelled the other way: the same reply, no second charge.
    again = post(retail, f"/orders/%23{PENDING_ORDER.lstrip('#')}/modify-items", body,
                 key="turn-1")
    assert first.status_code == again.status_code == 200
    assert again.json == first.json
    assert len(again.json["payment_history"]) == 2
    assert balance(retail) == 47.75
    # Without the key it would have acted (and been refused: the order is no longer pending).
    assert_error(post(retail, path, body), 409, "order_not_pending")


def test_it_replays_a_refusal_under_its_key_and_refuses_the_key_for_another_request(
        retail: FlaskClient) -> None:
    cancel = order_path(DELIVERED_ORDER, "cancel")
    first = post(retail, cancel, {"reason": "no longer needed"}, key="k-409")
    again = post(retail, cancel, {"reason": "no longer needed"}, key="k-409")
    assert_error(first, 409, "order_not_pending")
    assert again.json == first.json
    assert_error(post(retail, cancel, {"reason": "ordered by mistake"}, key="k-409"),
                 422, "idempotency_key_reused")
    assert_error(post(retail, cancel, {"reason": "no longer needed"}, key="x" * 256),
                 400, "invalid_idempotency_key")


def test_an_idempotent_write_works_on_a_route_without_an_order(retail: FlaskClient) -> None:
    # The order-id normaliser applies to order routes only; a user's address is not one.
    first = post(retail, f"/users/{USER}/address", ADDRESS, key="addr-1")
    again = post(retail, f"/users/{USER}/address", ADDRESS, key="addr-1")

    assert first.status_code == 200, first.json
    assert again.json == first.json


def test_it_keeps_idempotency_keys_in_the_database(db_path: Path, store: RetailStore) -> None:
    create_app(db_path).test_client().post(
        order_path(PENDING_GIFT_CARD_ORDER, "cancel"), json={"reason": "no longer needed"},
        headers={"Idempotency-Key": "k-1"})
    with sqlite3.connect(db_path) as conn:
        row = conn.execute("SELECT method, path, status, body FROM idempotency_keys"
                           " WHERE key = 'k-1'").fetchone()
    assert row[:3] == ("POST", "/orders/%23W3657213/cancel", 200)
    assert json.loads(row[3])["status"] == "cancelled"
    # A fresh app on the same file (a restart) still knows the key.
    again = create_app(db_path).test_client().post(
        order_path(PENDING_GIFT_CARD_ORDER, "cancel"), json={"reason": "no longer needed"},
        headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 200
    assert store.user(USER)["payment_methods"][GIFT_CARD]["balance"] == 3626.34


def test_it_rolls_back_everything_a_failed_write_did(store: RetailStore) -> None:
    def half_done(tx: Any) -> dict[str, Any]:
        order = tx.order(PENDING_ORDER)
        order["status"] = "cancelled"
        tx.save_order(order)
        raise Conflict("changed my mind")

    with pytest.raises(Conflict):
        store.write(half_done)
    assert store.order(PENDING_ORDER)["status"] == "pending"

    def crashes(tx: Any) -> dict[str, Any]:
        order = tx.order(PENDING_ORDER)
        order["status"] = "cancelled"
        tx.save_order(order)
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        store.write(crashes)
    assert store.order(PENDING_ORDER)["status"] == "pending"


def test_it_resets_to_the_seed(retail: FlaskClient) -> None:
    post(retail, order_path(PENDING_GIFT_CARD_ORDER, "cancel"), {"reason": "no longer needed"},
         key="before-reset")
    post(retail, f"/users/{USER}/address", ADDRESS)
    assert retail.post("/reset").json == {"status": "reset"}
    assert get(retail, order_path(PENDING_GIFT_CARD_ORDER)) == \
        seed("orders")[PENDING_GIFT_CARD_ORDER]
    assert get(retail, f"/users/{USER}") == {"user_id": USER, **seed("users")[USER]}
    # Keys are forgotten with the state they answered for: the same key acts again.
    again = post(retail, order_path(PENDING_GIFT_CARD_ORDER, "cancel"),
                 {"reason": "no longer needed"}, key="before-reset")
    assert again.json["status"] == "cancelled"


def test_it_seeds_a_missing_or_empty_file_and_keeps_a_seeded_one(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    store = RetailStore(empty)
    assert store.order(PENDING_ORDER)["status"] == "pending"
    store.write(lambda tx: operations.cancel_pending_order(tx, PENDING_ORDER, "no longer needed"))
    assert RetailStore(empty).order(PENDING_ORDER)["status"] == "cancelled"
    assert RetailStore(tmp_path / "new.db").order(PENDING_ORDER)["status"] == "pending"


# Over real HTTP, under gunicorn


def test_it_serves_the_api_over_http_under_gunicorn(retail_backend: RetailBackend) -> None:
    """`appliance demo-backend retail` as the session's order system (tests/conftest.py)."""
    retail_backend.reset()
    with httpx.Client(base_url=retail_backend.url, timeout=10) as http:
        assert http.get("/users/by-email", params={"email": EMAIL}).json() == {"user_id": USER}
        assert http.get("/orders/%23W3657213").json()["status"] == "pending"
        headers = {"Idempotency-Key": "live-1"}
        body = {"reason": "no longer needed"}
        first = http.post("/orders/W3657213/cancel", json=body, headers=headers)
        again = http.post("/orders/W3657213/cancel", json=body, headers=headers)
        assert first.status_code == again.status_code == 200
        assert first.json() == again.json()
        assert first.json()["status"] == "cancelled"
        user = http.get(f"/users/{USER}").json()
        assert user["payment_methods"][GIFT_CARD]["balance"] == 3626.34
        refused = http.post("/orders/W5866402/cancel", json=body)
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "order_not_pending"
        bad = http.post("/orders/W5442520/cancel", content=b"{oops",
                        headers={"Content-Type": "application/json"})
        assert bad.status_code == 400
        assert bad.json() == {"error": {"code": "invalid_json",
                                        "message": "the request body must be a JSON object"}}
        assert http.post("/reset").status_code == 200
        assert http.get("/orders/W3657213").json()["status"] == "pending"


def test_it_keeps_the_seed_data_as_shipped() -> None:
    """The packaged files are τ-bench's, unchanged (counts as in its data)."""
    assert (len(seed("users")), len(seed("orders")), len(seed("products"))) == (500, 1000, 50)
    assert (SEED_DIR / "LICENSE.tau-bench-retail").read_text().startswith("MIT License")
