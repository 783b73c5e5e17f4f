"""One error hierarchy for the whole appliance.

Every error a client can see is an `ApplianceError`. The web layer renders it as one JSON shape
(OpenAI-style, see `to_body`) for the API and as an HTML page for the admin. Adapters translate
library errors into these classes at the boundary (`raise ... from exc`) and say whether trying
again or falling back to another backend makes sense.
"""

from __future__ import annotations

from typing import Any


class ApplianceError(Exception):
    """Base class: a message safe to show to a client, an HTTP status and a stable code."""

    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"
    #: True when the same call may succeed if tried again or sent to another backend.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_body(self, request_id: str | None = None) -> dict[str, Any]:
        """The one JSON error shape: {"error": {message, type, param, code}, "request_id"}."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            },
            "request_id": request_id,
        }


class ConfigError(ApplianceError):
    """A setting is missing or invalid; the message names the key."""

    code = "config_error"


class InvalidRequest(ApplianceError):
    """The request is malformed or a field is missing or of the wrong type."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class PayloadTooLarge(InvalidRequest):
    """The request or one of its fields is over the configured size limit."""

    status = 413
    code = "payload_too_large"


class AuthenticationError(ApplianceError):
    """No credentials, or credentials that are wrong or revoked."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(ApplianceError):
    """Authenticated, but not allowed to do this."""

    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(ApplianceError):
    """No such resource for this caller (also what another brand's resources look like)."""

    status = 404
    type = "not_found_error"
    code = "not_found"


class Conflict(ApplianceError):
    """The resource is in a state that does not allow this (e.g. a closed conversation)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class ModelError(ApplianceError):
    """A model backend failed to answer."""

    status = 503
    type = "server_error"
    code = "model_error"


class ModelUnavailable(ModelError):
    """The backend is down, not loaded or unreachable; another backend may answer."""

    code = "model_unavailable"
    retryable = True


class ModelTimeout(ModelError):
    """The backend did not answer within its timeout; another backend may answer."""

    code = "model_timeout"
    retryable = True


class TryLater(ApplianceError):
    """Refused for now: the client may send the same request again after `retry_after_s`
    (the Retry-After header)."""

    retryable = True

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = max(1, retry_after_s)


class RateLimited(TryLater):
    """The caller (API key, widget token or address) is over its rate."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limited"


class Overloaded(TryLater):
    """The box is saturated: the model queue is full or its wait exceeds the turn budget."""

    status = 503
    type = "server_error"
    code = "overloaded"


class DatabaseUnavailable(TryLater):
    """The database does not answer (a PostgreSQL failover, a network cut), or holds the schema
    of another release (`code` schema_mismatch, during another node's upgrade): nothing is
    served from what this node may still hold; another node, or this one shortly, may answer."""

    status = 503
    type = "server_error"
    code = "database_unavailable"


class InProgress(TryLater):
    """The same request (its Idempotency-Key) is still running."""

    status = 409
    type = "invalid_request_error"
    code = "idempotency_in_progress"


class LoginThrottled(TryLater):
    """Too many failed sign-ins for this username or this address: wait, or ask an it_admin
    to lift the lock-out."""

    status = 429
    type = "rate_limit_error"
    code = "login_throttled"
