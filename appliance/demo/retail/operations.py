"""What each write does to the documents: the semantics of τ-bench's retail tools.

Each function takes the transaction's `Tx`, checks everything before it changes anything, saves
what it changed and returns the updated order (or user). Checks come in τ-bench's order, and
its rules hold: only a 'pending' order can be cancelled or modified, only a 'delivered' one
returned or exchanged; a gift card pays only what its balance covers; a refund for a cancelled
order reaches a gift card at once (other methods in 5-7 business days, outside this system).
Run them with `RetailStore.write`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from appliance.demo.docstore import Doc
from appliance.demo.errors import BadRequest, Conflict
from appliance.demo.retail.store import RetailTx, user_view

CANCEL_REASONS = ("no longer needed", "ordered by mistake")
ADDRESS_FIELDS = ("address1", "address2", "city", "state", "country", "zip")


def cancel_pending_order(tx: RetailTx, order_id: str, reason: str) -> Doc:
    """Status 'cancelled', `cancel_reason` set, a refund per payment appended to the payment
    history; gift-card payments go back on the card's balance now."""
    order = tx.order(order_id)
    _require_status(order, "pending", "non-pending order cannot be cancelled")
    if reason not in CANCEL_REASONS:
        raise BadRequest(f"reason must be one of {', '.join(map(repr, CANCEL_REASONS))}",
                         code="invalid_reason")
    user = tx.user(order["user_id"])
    refunds = []
    for payment in order["payment_history"]:
        method_id = payment["payment_method_id"]
        refunds.append({"transaction_type": "refund", "amount": payment["amount"],
                        "payment_method_id": method_id})
        if "gift_card" in method_id:
            _add_to_balance(user["payment_methods"][method_id], payment["amount"])
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    order["payment_history"].extend(refunds)
    tx.save_order(order)
    tx.save_user(order["user_id"], user)
    return order


def modify_pending_order_address(tx: RetailTx, order_id: str, address: Mapping[str, str]) -> Doc:
    """Replace a pending order's shipping address."""
    order = tx.order(order_id)
    _require_status(order, "pending", "non-pending order cannot be modified")
    order["address"] = {field: address[field] for field in ADDRESS_FIELDS}
    tx.save_order(order)
    return order


def modify_pending_order_payment(tx: RetailTx, order_id: str, payment_method_id: str) -> Doc:
    """Pay a pending order with another single method: a payment with the new method and a
    refund to the old one are appended; gift-card balances change at once."""
    order = tx.order(order_id)
    _require_status(order, "pending", "non-pending order cannot be modified")
    user = tx.user(order["user_id"])
    method = _payment_method(user, payment_method_id)
    history = order["payment_history"]
    if len(history) != 1 or history[0]["transaction_type"] != "payment":
        raise Conflict("there should be exactly one payment for a pending order",
                       code="payment_history_not_single")
    old_method_id = history[0]["payment_method_id"]
    if old_method_id == payment_method_id:
        raise BadRequest("the new payment method should be different from the current one",
                         code="same_payment_method")
    amount = history[0]["amount"]
    if method["source"] == "gift_card" and method["balance"] < amount:
        raise Conflict("insufficient gift card balance to pay for the order",
                       code="insufficient_balance")
    history.extend([
        {"transaction_type": "payment", "amount": amount, "payment_method_id": payment_method_id},
        {"transaction_type": "refund", "amount": amount, "payment_method_id": old_method_id},
    ])
    if method["source"] == "gift_card":
        _add_to_balance(method, -amount)
    if "gift_card" in old_method_id:
        _add_to_balance(user["payment_methods"][old_method_id], amount)
    tx.save_order(order)
    tx.save_user(order["user_id"], user)
    return order


def modify_pending_order_items(tx: RetailTx, order_id: str, item_ids: Sequence[str],
                               new_item_ids: Sequence[str], payment_method_id: str) -> Doc:
    """Swap items of a pending order for available variants of the same products, once:
    status 'pending (item modified)'. The price difference is paid with (or refunded to)
    `payment_method_id`, appended to the payment history; a gift card's balance changes now."""
    order = tx.order(order_id)
    _require_status(order, "pending", "non-pending order cannot be modified")
    _require_items_in_order(order, item_ids)
    difference = _price_difference(tx, order, item_ids, new_item_ids)
    user = tx.user(order["user_id"])
    method = _payment_method(user, payment_method_id)
    if method["source"] == "gift_card" and method["balance"] < difference:
        raise Conflict("insufficient gift card balance to pay for the new item",
                       code="insufficient_balance")
    order["payment_history"].append({
        "transaction_type": "payment" if difference > 0 else "refund",
        "amount": abs(difference),
        "payment_method_id": payment_method_id,
    })
    if method["source"] == "gift_card":
        _add_to_balance(method, -difference)
    for item_id, new_item_id in zip(item_ids, new_item_ids, strict=True):
        item = _first_item(order, item_id)
        variant = tx.product(item["product_id"])["variants"][new_item_id]
        item["item_id"] = new_item_id
        item["price"] = variant["price"]
        item["options"] = variant["options"]
    order["status"] = "pending (item modified)"
    tx.save_order(order)
    tx.save_user(order["user_id"], user)
    return order


def return_delivered_order_items(tx: RetailTx, order_id: str, item_ids: Sequence[str],
                                 payment_method_id: str) -> Doc:
    """Status 'return requested' with `return_items` (sorted) and `return_payment_method_id`:
    the original payment method or one of the user's gift cards."""
    order = tx.order(order_id)
    _require_status(order, "delivered", "non-delivered order cannot be returned")
    user = tx.user(order["user_id"])
    _payment_method(user, payment_method_id)
    original = order["payment_history"][0]["payment_method_id"]
    if "gift_card" not in payment_method_id and payment_method_id != original:
        raise BadRequest("payment method should be either the original payment method or a "
                         "gift card", code="invalid_refund_method")
    _require_items_in_order(order, item_ids)
    order["status"] = "return requested"
    order["return_items"] = sorted(item_ids)
    order["return_payment_method_id"] = payment_method_id
    tx.save_order(order)
    return order


def exchange_delivered_order_items(tx: RetailTx, order_id: str, item_ids: Sequence[str],
                                   new_item_ids: Sequence[str], payment_method_id: str) -> Doc:
    """Status 'exchange requested' with `exchange_items` and `exchange_new_items` (sorted),
    `exchange_payment_method_id` and `exchange_price_difference`. Nothing is charged yet; a
    gift card must still cover a positive difference."""
    order = tx.order(order_id)
    _require_status(order, "delivered", "non-delivered order cannot be exchanged")
    _require_items_in_order(order, item_ids)
    difference = _price_difference(tx, order, item_ids, new_item_ids)
    user = tx.user(order["user_id"])
    method = _payment_method(user, payment_method_id)
    if method["source"] == "gift_card" and method["balance"] < difference:
        raise Conflict("insufficient gift card balance to pay for the price difference",
                       code="insufficient_balance")
    order["status"] = "exchange requested"
    order["exchange_items"] = sorted(item_ids)
    order["exchange_new_items"] = sorted(new_item_ids)
    order["exchange_payment_method_id"] = payment_method_id
    order["exchange_price_difference"] = difference
    tx.save_order(order)
    return order


def modify_user_address(tx: RetailTx, user_id: str, address: Mapping[str, str]) -> Doc:
    """Replace a user's default address; returns the user with `user_id`."""
    user = tx.user(user_id)
    user["address"] = {field: address[field] for field in ADDRESS_FIELDS}
    tx.save_user(user_id, user)
    return user_view(user_id, user)


def _require_status(order: Doc, status: str, message: str) -> None:
    if order["status"] != status:
        raise Conflict(f"{message} (order {order['order_id']} is {order['status']!r})",
                       code=f"order_not_{status}")


def _require_items_in_order(order: Doc, item_ids: Sequence[str]) -> None:
    """Every item id in the order, as many times as listed (a list may repeat an id)."""
    if not item_ids:
        raise BadRequest("item_ids must name at least one item", code="no_items")
    in_order = Counter(item["item_id"] for item in order["items"])
    for item_id, count in Counter(item_ids).items():
        if count > in_order[item_id]:
            raise BadRequest(f"item {item_id} not found in order {order['order_id']}",
                             code="item_not_in_order")


def _price_difference(tx: RetailTx, order: Doc, item_ids: Sequence[str],
                      new_item_ids: Sequence[str]) -> float:
    """What the new items cost more (positive) or less than the old ones; each new item must
    be an available variant of the same product as the item at its position."""
    if len(item_ids) != len(new_item_ids):
        raise BadRequest("the number of items to be exchanged should match",
                         code="item_count_mismatch")
    difference = 0.0
    for item_id, new_item_id in zip(item_ids, new_item_ids, strict=True):
        item = _first_item(order, item_id)
        product = tx.product(item["product_id"])
        variant = product["variants"].get(new_item_id)
        if variant is None:
            raise BadRequest(f"new item {new_item_id} is not a variant of {product['name']} "
                             f"(product {product['product_id']})", code="invalid_new_item")
        if not variant["available"]:
            raise Conflict(f"new item {new_item_id} is not available", code="item_unavailable")
        difference += variant["price"] - item["price"]
    return round(difference, 2)


def _first_item(order: Doc, item_id: str) -> Doc:
    item: Doc = next(item for item in order["items"] if item["item_id"] == item_id)
    return item


def _payment_method(user: Doc, payment_method_id: str) -> Doc:
    method: Doc | None = user["payment_methods"].get(payment_method_id)
    if method is None:
        raise BadRequest(f"payment method {payment_method_id} not found",
                         code="payment_method_not_found")
    return method


def _add_to_balance(gift_card: Doc, amount: float) -> None:
    gift_card["balance"] = round(gift_card["balance"] + amount, 2)
