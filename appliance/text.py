"""Validating text that people send: customers' messages and human agents' replies."""

from __future__ import annotations

from appliance.errors import ApplianceError, InvalidRequest


def validated_text(text: str, *, max_chars: int, too_long: type[ApplianceError]) -> str:
    """`text` stripped and without NUL; raises InvalidRequest (`param` text) when it is empty or
    not valid Unicode, and `too_long` when it has more than `max_chars` characters."""
    # NUL is not text (and PostgreSQL cannot store it); everything else is kept.
    text = text.replace("\x00", "").strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone UTF-16 surrogate ("\ud800" in JSON) is no character: nothing could store,
        # embed or generate from it.
        raise InvalidRequest("text: not valid Unicode (unpaired surrogate)", param="text",
                             code="invalid_text") from exc
    if not text:
        raise InvalidRequest("text: must not be empty", param="text", code="empty_message")
    if len(text) > max_chars:
        raise too_long(f"text: longer than {max_chars} characters", param="text",
                       code="message_too_long")
    return text
