"""Request ids and the one error model on the web: JSON for the API, HTML for pages."""

from __future__ import annotations

import logging
import re
import secrets

from flask import Flask, Response, g, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from appliance import logs
from appliance.errors import (
    ApplianceError,
    AuthenticationError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    TryLater,
)

log = logging.getLogger(__name__)
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
JSON_PREFIXES = ("/v1", "/healthz", "/readyz", "/-/", "/metrics")


class MethodNotAllowed(InvalidRequest):
    status = 405
    code = "method_not_allowed"


_HTTP_TO_ERROR: dict[int, type[ApplianceError]] = {
    400: InvalidRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}


def request_id() -> str:
    rid: str = g.get("request_id", "")
    return rid


def wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES)


def render_error(error: ApplianceError) -> Response | tuple[str, int]:
    if wants_json():
        response = jsonify(error.to_body(request_id()))
        response.status_code = error.status
        if isinstance(error, TryLater):
            response.headers["Retry-After"] = str(error.retry_after_s)
        return response
    return render_template("error.html", error=error, request_id=request_id()), error.status


def init_app(app: Flask) -> None:
    @app.before_request
    def _assign_request_id() -> None:
        supplied = request.headers.get("X-Request-ID", "")
        g.request_id = (
            supplied if _CLIENT_REQUEST_ID.match(supplied) else f"req_{secrets.token_hex(8)}"
        )
        logs.bind_request(g.request_id)
        logs.bind(conversation_id=(request.view_args or {}).get("conversation_id"))

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        response.headers["X-Request-ID"] = request_id()
        return response

    @app.errorhandler(ApplianceError)
    def _appliance_error(error: ApplianceError) -> Response | tuple[str, int]:
        if error.status >= 500:
            log.error("request %s failed: %s", request_id(), error.code, exc_info=error)
        return render_error(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        kind = _HTTP_TO_ERROR.get(status, ApplianceError)
        # werkzeug's descriptions are generic and safe ("The requested URL was not found").
        message = error.description or error.name
        response = make_response(render_error(kind(message, status=status)))
        allowed = getattr(error, "valid_methods", None)
        if status == 405 and allowed:
            response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError) -> Response | tuple[str, int]:
        return render_error(
            PermissionDenied("The form expired; reload the page and retry.", code="csrf_failed")
        )

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response | tuple[str, int]:
        log.exception("request %s failed", request_id())
        return render_error(
            ApplianceError("The server had an internal error; the request id identifies it in "
                           "the logs.")
        )
