"""Lumen Goods' order system over HTTP: the JSON API the appliance's workflow tools call.

`create_app(db_path)` serves the `RetailStore` in that SQLite file (seeded on first use), with
the demo backends' error shape and idempotency keys (appliance/demo/http.py). The endpoints are
listed in docs/demo-retail.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, jsonify
from flask.typing import ResponseReturnValue

from appliance.demo import http
from appliance.demo.docstore import Doc
from appliance.demo.retail import operations
from appliance.demo.retail.store import RetailStore, normalize_order_id

bp = Blueprint("retail", __name__)


def create_app(db_path: str | Path) -> Flask:
    """The retail backend's Flask app over the SQLite file at `db_path`."""
    return http.create_backend_app(__name__, RetailStore(db_path), bp)


def _store() -> RetailStore:
    store = http.current_store()
    assert isinstance(store, RetailStore)
    return store


# Reads


@bp.get("/health")
def health() -> ResponseReturnValue:
    return {"status": "ok"}


@bp.get("/users/by-email")
def user_by_email() -> ResponseReturnValue:
    return {"user_id": _store().user_id_by_email(http.query("email"))}


@bp.get("/users/by-name-zip")
def user_by_name_zip() -> ResponseReturnValue:
    user_id = _store().user_id_by_name_zip(http.query("first_name"), http.query("last_name"),
                                           http.query("zip"))
    return {"user_id": user_id}


@bp.get("/users/<user_id>")
def get_user(user_id: str) -> ResponseReturnValue:
    return _store().user(user_id)


@bp.get("/orders/<order_id>")
def get_order(order_id: str) -> ResponseReturnValue:
    return _store().order(order_id)


@bp.get("/products")
def list_products() -> ResponseReturnValue:
    return jsonify(_store().products())


@bp.get("/products/<product_id>")
def get_product(product_id: str) -> ResponseReturnValue:
    return _store().product(product_id)


# Writes


@bp.post("/orders/<order_id>/cancel")
def cancel_order(order_id: str) -> ResponseReturnValue:
    body = http.json_body()
    return _write(operations.cancel_pending_order, body, order_id=order_id,
                  reason=http.string(body, "reason"))


@bp.post("/orders/<order_id>/modify-address")
def modify_order_address(order_id: str) -> ResponseReturnValue:
    body = http.json_body()
    return _write(operations.modify_pending_order_address, body, order_id=order_id,
                  address=_address(body))


@bp.post("/orders/<order_id>/modify-payment")
def modify_order_payment(order_id: str) -> ResponseReturnValue:
    body = http.json_body()
    return _write(operations.modify_pending_order_payment, body, order_id=order_id,
                  payment_method_id=http.string(body, "payment_method_id"))


@bp.post("/orders/<order_id>/modify-items")
def modify_order_items(order_id: str) -> ResponseReturnValue:
    body = http.json_body()
    return _write(operations.modify_pending_order_items, body, order_id=order_id,
                  item_ids=http.strings(body, "item_ids"),
                  new_item_ids=http.strings(body, "new_item_ids"),
                  payment_method_id=http.string(body, "payment_method_id"))


@bp.post("/orders/<order_id>/return")
def return_order_items(order_id: str) -> ResponseReturnValue:
    body = http.json_body()
    return _write(operations.return_delivered_order_items, body, order_id=order_id,
                  item_ids=http.strings(body, "item_ids"),
                  payment_method_id=http.string(body, "payment_method_id"))


@bp.post("/orders/<order_id>/exchange")
def exchange_order_items(order_id: str) -> ResponseReturnValue:
    body = http.json_body()
    return _write(operations.exchange_delivered_order_items, body, order_id=order_id,
                  item_ids=http.strings(body, "item_ids"),
                  new_item_ids=http.strings(body, "new_item_ids"),
                  payment_method_id=http.string(body, "payment_method_id"))


@bp.post("/users/<user_id>/address")
def modify_user_address(user_id: str) -> ResponseReturnValue:
    body = http.json_body()
    return _write(operations.modify_user_address, body, user_id=user_id,
                  address=_address(body))


@bp.post("/reset")
def reset() -> ResponseReturnValue:
    _store().reset()
    return {"status": "reset"}


def _write(operation: Callable[..., Doc], body: dict[str, Any], **args: Any) -> Doc:
    # '#W1' and 'W1' are one order.
    return http.write(operation, body, path_args={"order_id": normalize_order_id}, **args)


# Request parsing


def _address(body: dict[str, Any]) -> dict[str, str]:
    """The six address fields; only address2 may be empty."""
    return {field: http.string(body, field, allow_empty=field == "address2")
            for field in operations.ADDRESS_FIELDS}
