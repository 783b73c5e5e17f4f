"""Lumen Goods' order system over HTTP: the JSON API the appliance's workflow tools call.

`create_app(db_path)` serves the `RetailStore` in that SQLite file (seeded on first use). Every
error is `{"error": {"code", "message"}}`: 400 bad input, 404 not found, 409 wrong state, 422 an
Idempotency-Key reused for another request. Writes honour an `Idempotency-Key` header. The
endpoints are listed in docs/demo-retail.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from appliance.demo.retail import operations
from appliance.demo.retail.errors import BadRequest, RetailError
from appliance.demo.retail.store import (
    Doc,
    IdempotentRequest,
    RetailStore,
    Tx,
    normalize_order_id,
)

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255

bp = Blueprint("retail", __name__)


def create_app(db_path: str | Path) -> Flask:
    """The retail backend's Flask app over the SQLite file at `db_path`."""
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the documents' own order
    app.extensions["retail_store"] = RetailStore(db_path)
    app.register_blueprint(bp)
    app.register_error_handler(RetailError, _retail_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _store() -> RetailStore:
    store: RetailStore = current_app.extensions["retail_store"]
    return store


# Reads


@bp.get("/health")
def health() -> ResponseReturnValue:
    return {"status": "ok"}


@bp.get("/users/by-email")
def user_by_email() -> ResponseReturnValue:
    return {"user_id": _store().user_id_by_email(_query("email"))}


@bp.get("/users/by-name-zip")
def user_by_name_zip() -> ResponseReturnValue:
    user_id = _store().user_id_by_name_zip(_query("first_name"), _query("last_name"),
                                           _query("zip"))
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
    body = _body()
    return _write(operations.cancel_pending_order, body, order_id=order_id,
                  reason=_string(body, "reason"))


@bp.post("/orders/<order_id>/modify-address")
def modify_order_address(order_id: str) -> ResponseReturnValue:
    body = _body()
    return _write(operations.modify_pending_order_address, body, order_id=order_id,
                  address=_address(body))


@bp.post("/orders/<order_id>/modify-payment")
def modify_order_payment(order_id: str) -> ResponseReturnValue:
    body = _body()
    return _write(operations.modify_pending_order_payment, body, order_id=order_id,
                  payment_method_id=_string(body, "payment_method_id"))


@bp.post("/orders/<order_id>/modify-items")
def modify_order_items(order_id: str) -> ResponseReturnValue:
    body = _body()
    return _write(operations.modify_pending_order_items, body, order_id=order_id,
                  item_ids=_strings(body, "item_ids"),
                  new_item_ids=_strings(body, "new_item_ids"),
                  payment_method_id=_string(body, "payment_method_id"))


@bp.post("/orders/<order_id>/return")
def return_order_items(order_id: str) -> ResponseReturnValue:
    body = _body()
    return _write(operations.return_delivered_order_items, body, order_id=order_id,
                  item_ids=_strings(body, "item_ids"),
                  payment_method_id=_string(body, "payment_method_id"))


@bp.post("/orders/<order_id>/exchange")
def exchange_order_items(order_id: str) -> ResponseReturnValue:
    body = _body()
    return _write(operations.exchange_delivered_order_items, body, order_id=order_id,
                  item_ids=_strings(body, "item_ids"),
                  new_item_ids=_strings(body, "new_item_ids"),
                  payment_method_id=_string(body, "payment_method_id"))


@bp.post("/users/<user_id>/address")
def modify_user_address(user_id: str) -> ResponseReturnValue:
    body = _body()
    return _write(operations.modify_user_address, body, user_id=user_id,
                  address=_address(body))


@bp.post("/reset")
def reset() -> ResponseReturnValue:
    _store().reset()
    return {"status": "reset"}


def _write(operation: Callable[..., Doc], body: dict[str, Any], **args: Any) -> Doc:
    """Run one operation in one transaction, under the request's Idempotency-Key if any."""
    action: Callable[[Tx], Doc] = partial(operation, **args)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return _store().write(action)
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY:
        raise BadRequest(f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
                         code="invalid_idempotency_key")
    # The path as the store names things ('#W1' and 'W1' are one order), so that a retry
    # that spells the id differently is still the same request.
    view_args = dict(request.view_args or {})
    if "order_id" in view_args:
        view_args["order_id"] = normalize_order_id(view_args["order_id"])
    path = url_for(str(request.endpoint), **view_args)
    return _store().write(action, IdempotentRequest(key, request.method, path, body))


# Request parsing


def _query(name: str) -> str:
    value = request.args.get(name, "").strip()
    if not value:
        raise BadRequest(f"query parameter {name!r} is required", code="missing_parameter")
    return value


def _body() -> dict[str, Any]:
    # Any content type: callers that forget the JSON header still mean JSON.
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object", code="invalid_json")
    return body


def _string(body: dict[str, Any], name: str, *, allow_empty: bool = False) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not (allow_empty or value.strip()):
        kind = "a string" if allow_empty else "a non-empty string"
        raise BadRequest(f"{name!r} must be {kind}", code="invalid_field")
    return value


def _strings(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{name!r} must be a list of strings", code="invalid_field")
    return value


def _address(body: dict[str, Any]) -> dict[str, str]:
    """The six address fields; only address2 may be empty."""
    return {field: _string(body, field, allow_empty=field == "address2")
            for field in operations.ADDRESS_FIELDS}


# Errors


def _retail_error(exc: RetailError) -> ResponseReturnValue:
    return exc.to_body(), exc.status


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    code = (exc.name or "error").lower().replace(" ", "_")
    return {"error": {"code": code, "message": exc.description or exc.name}}, status


def _unexpected_error(exc: Exception) -> ResponseReturnValue:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return {"error": {"code": "internal_error", "message": "internal error"}}, 500
