"""The demo backends' errors: each carries an HTTP status and a stable code, and renders as the
one JSON shape `{"error": {"code": ..., "message": ...}}`."""

from __future__ import annotations

from typing import Any


class BackendError(Exception):
    """Base class: a message safe to show to the caller, an HTTP status and a stable code."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}

    @classmethod
    def from_reply(cls, status: int, body: dict[str, Any]) -> BackendError:
        """The error again, from a reply recorded under an idempotency key."""
        error = body["error"]
        return cls(str(error["message"]), code=str(error["code"]), status=status)


class BadRequest(BackendError):
    """The request is malformed, or names something that cannot be used for this action."""

    status = 400
    code = "bad_request"


class NotFound(BackendError):
    """No such user, order, product, account or card."""

    status = 404
    code = "not_found"


class Conflict(BackendError):
    """The action does not fit the current state (an order's status, a card's status, a balance)."""

    status = 409
    code = "conflict"


class IdempotencyKeyReused(BackendError):
    """The Idempotency-Key was already used for a different request."""

    status = 422
    code = "idempotency_key_reused"


class TooManyAttempts(BackendError):
    """Too many failed tries: the caller is locked out for a while."""

    status = 429
    code = "too_many_attempts"
