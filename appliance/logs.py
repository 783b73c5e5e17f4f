"""Logging for every process: text or JSON lines (the `log_format` setting) on stdout, where
systemd's journal takes them.

Each line carries the request id, brand and conversation id where known: the web layer binds
them to the request's context (`bind_request`, `bind`) and a filter copies them onto every
record logged while the request runs, whatever module logs it. The HTTP client libraries'
own loggers (httpx, httpcore) are held at WARNING: at INFO and below they write every URL in
full, and tools' URLs carry customers' details; the tool runner logs its calls itself, with
the path's template. Whatever still carries a customer's details (an exception's message
quoting their text, a library's line) leaves with its PII replaced by typed placeholders
(`RedactFilter`, appliance.privacy.detect): card numbers, SSNs, IBANs, account and phone
numbers, emails and dates of birth never reach the journal in clear.
"""

from __future__ import annotations

import logging
import logging.config
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from appliance.config import Settings
from appliance.privacy.detect import Detector, redact

_CONTEXT: dict[str, ContextVar[str | None]] = {
    name: ContextVar(name, default=None) for name in ("request_id", "brand", "conversation_id")
}
#: Loggers that write full URLs (query strings with emails) below WARNING.
_URL_LOGGERS = ("httpx", "httpcore")
_TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
_JSON_FIELDS = ("asctime", "levelname", "name", "process", "message")


def bind_request(request_id: str) -> None:
    """Start a request's context: its id, and no brand or conversation yet (a worker thread
    serves one request after another, and must not lend the last one's ids)."""
    _CONTEXT["request_id"].set(request_id)
    _CONTEXT["brand"].set(None)
    _CONTEXT["conversation_id"].set(None)


def bind(*, brand: str | None = None, conversation_id: str | None = None) -> None:
    """Add the brand or the conversation, once known, to the current context."""
    if brand is not None:
        _CONTEXT["brand"].set(brand)
    if conversation_id is not None:
        _CONTEXT["conversation_id"].set(conversation_id)


class ContextFilter(logging.Filter):
    """Copies the bound ids onto each record (only those known)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT.items():
            value = var.get()
            if value:
                setattr(record, name, value)
        return True


class RedactFilter(logging.Filter):
    """Replaces PII in each record's message and traceback with typed placeholders
    ("[EMAIL_1]"). The traceback is formatted here, redacted, and kept as the record's
    exc_text, which both formatters print."""

    def __init__(self) -> None:
        super().__init__()
        self._detector = Detector()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message, self._detector)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info:
            record.exc_text = redact(
                logging.Formatter().formatException(record.exc_info), self._detector)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, self._detector)
        return True


class TextFormatter(logging.Formatter):
    """The classic line, with the bound ids after the message."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        ids = " ".join(f"{name}={getattr(record, name)}" for name in _CONTEXT
                       if hasattr(record, name))
        return f"{line} [{ids}]" if ids else line


def make_formatter(kind: str) -> logging.Formatter:
    """The formatter of `log_format` `kind` (text or json)."""
    if kind == "json":
        return JsonFormatter(list(_JSON_FIELDS), rename_fields={
            "asctime": "time", "levelname": "level", "name": "logger"})
    return TextFormatter(_TEXT_FORMAT)


def logging_config(settings: Settings) -> dict[str, Any]:
    """The `logging.config.dictConfig` of a process: one stdout handler on the root logger.
    gunicorn takes it too (`logconfig_dict`), so its own lines have the same shape."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}, "redact": {"()": RedactFilter}},
        "formatters": {"main": {"()": make_formatter, "kind": settings.log_format}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout",
                                "formatter": "main", "filters": ["context", "redact"]}},
        "root": {"level": settings.log_level.upper(), "handlers": ["stdout"]},
        "loggers": {
            # gunicorn's loggers write through the root's handler, not handlers of their own.
            "gunicorn.error": {"handlers": [], "propagate": True},
            "gunicorn.access": {"handlers": [], "propagate": True},
            **{name: {"level": "WARNING"} for name in _URL_LOGGERS},
        },
    }


def configure(settings: Settings) -> None:
    """Set up logging for this process, unless something set it up already (gunicorn, with
    the same configuration, or a test runner capturing logs): like `logging.basicConfig`."""
    if logging.getLogger().handlers:
        return
    logging.config.dictConfig(logging_config(settings))
