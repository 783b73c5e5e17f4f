"""What every demo backend's Flask app shares: the factory's error handlers, request parsing,
and writes under an `Idempotency-Key`.

Every error is `{"error": {"code", "message"}}`: 400 bad input, 404 not found, 409 wrong state,
422 an Idempotency-Key reused for another request, 429 too many failed tries, 500 a bug (logged,
never described to the caller).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from flask import Blueprint, Flask, current_app, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from appliance.demo.docstore import Doc, DocStore, IdempotentRequest
from appliance.demo.errors import BackendError, BadRequest

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255
_STORE = "demo_store"


def create_backend_app(import_name: str, store: DocStore[Any], blueprint: Blueprint) -> Flask:
    """A Flask app serving `blueprint` over `store`, every error in the one JSON shape."""
    app = Flask(import_name)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the documents' own order
    app.extensions[_STORE] = store
    app.register_blueprint(blueprint)
    app.register_error_handler(BackendError, _backend_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def current_store() -> DocStore[Any]:
    """The store of the app serving this request."""
    store: DocStore[Any] = current_app.extensions[_STORE]
    return store


def write(operation: Callable[..., Doc], body: Mapping[str, Any], *,
          path_args: Mapping[str, Callable[[str], str]] | None = None, **args: Any) -> Doc:
    """Run one operation in one transaction, under the request's Idempotency-Key if any.

    `path_args` normalises URL parts the store spells one way (an order id with or without its
    '#'), so that a retry that spells them differently is still the same request.
    """
    action = partial(operation, **args)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return current_store().write(action)
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY:
        raise BadRequest(f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
                         code="invalid_idempotency_key")
    view_args = dict(request.view_args or {})
    for name, normalize in (path_args or {}).items():
        if name in view_args:  # the routes of an app do not all have every part
            view_args[name] = normalize(view_args[name])
    path = url_for(str(request.endpoint), **view_args)
    return current_store().write(action, IdempotentRequest(key, request.method, path, dict(body)))


# Request parsing


def query(name: str) -> str:
    """A required, non-blank query parameter, stripped."""
    value = request.args.get(name, "").strip()
    if not value:
        raise BadRequest(f"query parameter {name!r} is required", code="missing_parameter")
    return value


def json_body() -> dict[str, Any]:
    """The request's JSON object (any content type: callers that forget the header mean JSON)."""
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object", code="invalid_json")
    return body


def string(body: Mapping[str, Any], name: str, *, allow_empty: bool = False) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not (allow_empty or value.strip()):
        kind = "a string" if allow_empty else "a non-empty string"
        raise BadRequest(f"{name!r} must be {kind}", code="invalid_field")
    return value


def strings(body: Mapping[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{name!r} must be a list of strings", code="invalid_field")
    return value


# Errors


def _backend_error(exc: BackendError) -> ResponseReturnValue:
    return exc.to_body(), exc.status


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    code = (exc.name or "error").lower().replace(" ", "_")
    return {"error": {"code": code, "message": exc.description or exc.name}}, status


def _unexpected_error(exc: Exception) -> ResponseReturnValue:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return {"error": {"code": "internal_error", "message": "internal error"}}, 500
