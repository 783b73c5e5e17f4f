"""The LLM extractor: a slot's value read by the `extraction` task's models.

For slots with `extractor: llm`, when the patterns find nothing in the answer to the slot's
question (engine.py). The model's output is constrained to `{"value": <the slot's JSON schema
or null>}` (a llama.cpp grammar, vLLM's guided decoding), and what it returns is kept only if
the same validation the pattern extractors apply accepts it:
- enum: one of the slot's `values`; choice: one of the option keys the lookup returned;
- email, number, address and the brand's formats (an order number, a zip code): `extract()`
  reads the value back (rendered as text), and an identifier must be in the message (its
  digits, an email's words), so a value the model made up is not taken for the customer's.
  A format's value is constrained to its `pattern`, and the prompt says what it is with the
  format's `description`.
Anything else (no value, invalid JSON, a value that does not validate, a model error) is None,
and the engine asks as it would have.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from appliance.errors import ConfigError, ModelError
from appliance.llm.base import ChatMessage, GenerationParams
from appliance.llm.router import ModelRouter
from appliance.workflows.expressions import ExpressionError, render
from appliance.workflows.extract import (
    NO_FORMATS,
    Formats,
    _key,
    _option_text,
    _options,
    extract,
)
from appliance.workflows.schema import LLM_SLOT_TYPES, Slot

logger = logging.getLogger(__name__)

TASK = "extraction"
#: One extraction is a turn's side step: a model that has not answered by then is not waited on.
TIMEOUT_S = 8.0
#: `{"value": ...}` holds a short value; an address needs more.
MAX_TOKENS = 48
MAX_TOKENS_ADDRESS = 96
#: Options listed in the prompt for a choice slot (an order has a handful of items).
MAX_OPTIONS = 20

_NULL: dict[str, Any] = {"type": "null"}
_ADDRESS_FIELDS = ("address1", "address2", "city", "state", "zip")
#: JSON schemas of the value, per slot type (enum and choice are built from their values).
#: Patterns are written with `[.]` rather than `\.`: llama.cpp's grammar has no `\.` escape.
_SCHEMAS: dict[str, dict[str, Any]] = {
    "email": {"type": "string",
              "pattern": "^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+([.][A-Za-z0-9-]+)+$"},
    "number": {"type": "number"},
    "address": {
        "type": "object",
        "properties": {
            "address1": {"type": "string"}, "address2": {"type": "string"},
            "city": {"type": "string"}, "state": {"type": "string", "pattern": "^[A-Z]{2}$"},
            "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
        },
        "required": list(_ADDRESS_FIELDS),
        "additionalProperties": False,
    },
}
_MEANING = {
    "email": "the customer's email address",
    "number": "a number",
    "enum": "one of the allowed values listed below",
    "choice": "which one of the options listed below the customer means (answer its id)",
    "address": "a US postal address (street, unit if any, city, two-letter state, zip code)",
}
_SYSTEM = """You read one detail from a customer's message for a customer-service agent.
The detail: {meaning}.
The agent asked the customer: "{prompt}"
{listing}Answer with JSON {{"value": ...}}. The value is null when the message does not give \
the detail: never guess."""


class LlmExtractor:
    """Reads a slot's value with the router's `extraction` models; see the module docstring.

    Thread-safe (it holds only the router). `__call__` never raises for a model's failure.
    """

    def __init__(self, router: ModelRouter, *, timeout_s: float = TIMEOUT_S) -> None:
        if TASK not in router.tasks:
            raise ConfigError(f"the model router has no route for {TASK!r}")
        self._router = router
        self._timeout_s = timeout_s

    def __call__(self, slot: Slot, text: str, values: Mapping[str, Any],
                 formats: Formats = NO_FORMATS) -> Any | None:
        """The slot's value in `text`, validated, or None. `formats`: the brand's slot
        formats, for slots whose type names one."""
        if slot.type not in LLM_SLOT_TYPES and slot.type not in formats:
            return None
        allowed = _allowed(slot, values)
        if allowed is not None and not allowed:
            return None  # a choice with nothing to choose from yet
        schema = _value_schema(slot, allowed, formats)
        messages = (ChatMessage("system", _system_prompt(slot, values, allowed, formats)),
                    ChatMessage("user", text))
        params = GenerationParams(
            max_tokens=MAX_TOKENS_ADDRESS if slot.type == "address" else MAX_TOKENS,
            temperature=0.0, timeout_s=self._timeout_s,
            json_schema={"type": "object", "properties": {"value": schema},
                         "required": ["value"], "additionalProperties": False},
        )
        try:
            routed = self._router.complete(TASK, lambda _model: messages, params)
        except ModelError as exc:
            logger.debug("llm extractor, %s slot: no model answered (%s)", slot.type, exc.code)
            return None
        raw = routed.completion.text
        value = validated(slot, _parse(raw), text, values, allowed, formats)
        logger.debug("llm extractor, %s slot: %s answered %.200r: %s", slot.type,
                     routed.model_id, raw, "kept" if value is not None else "rejected")
        return value


def validated(slot: Slot, value: Any, text: str, values: Mapping[str, Any],
              allowed: Sequence[Any] | None = None,
              formats: Formats = NO_FORMATS) -> Any | None:
    """`value` as the slot holds it when the pattern extractors' validation accepts it (see
    the module docstring), else None. `allowed`: a choice slot's option keys, when known;
    `formats`: the brand's slot formats."""
    if value is None or isinstance(value, bool):
        return None
    match slot.type:
        case "enum":
            return value if value in slot.values else None
        case "choice":
            keys = _allowed(slot, values) if allowed is None else allowed
            return value if value in (keys or ()) else None
        case "address":
            if not isinstance(value, Mapping):
                return None
            rendered = _render_address(value)
            if rendered is None or not _grounded(str(value.get("zip", "")), text):
                return None
            return extract(slot, rendered, values, asked=True)
        case "email" | "number":
            return _read_back(slot, value, text, values, formats)
    return _read_back(slot, value, text, values, formats) if slot.type in formats else None


def _read_back(slot: Slot, value: Any, text: str, values: Mapping[str, Any],
               formats: Formats) -> Any | None:
    """An identifier or a number as the pattern extractors read it from the model's value;
    an identifier only when it is in the customer's message."""
    if not isinstance(value, str | int | float):
        return None
    checked = extract(slot, str(value), values, asked=True, formats=formats)
    if checked is None or (slot.type != "number" and not _grounded(checked, text)):
        return None
    return checked


def _allowed(slot: Slot, values: Mapping[str, Any]) -> list[Any] | None:
    """enum: its values; choice: the option keys (JSON scalars only); others: None."""
    if slot.type == "enum":
        return list(slot.values)
    if slot.type == "choice":
        # The same options the pattern extractor reads.
        keys = [_key(slot, option) for option in _options(slot, values)]
        return [key for key in keys
                if isinstance(key, str | int | float) and not isinstance(key, bool)]
    return None


def _value_schema(slot: Slot, allowed: Sequence[Any] | None,
                  formats: Formats) -> dict[str, Any]:
    if allowed is not None:
        return {"enum": [*allowed, None]}
    slot_format = formats.get(slot.type)
    schema = (_SCHEMAS[slot.type] if slot_format is None
              else {"type": "string", "pattern": slot_format.pattern})
    return {"anyOf": [schema, _NULL]}


def _system_prompt(slot: Slot, values: Mapping[str, Any], allowed: Sequence[Any] | None,
                   formats: Formats) -> str:
    try:
        prompt = render(slot.prompt, values)
    except ExpressionError:
        prompt = slot.prompt
    listing = ""
    if slot.type == "enum":
        listing = "Allowed values: " + "; ".join(slot.values) + ".\n"
    elif slot.type == "choice" and allowed:
        by_key = {str(_key(slot, option)): option for option in _options(slot, values)}
        lines = [f"- id {key}: " + ", ".join(
            _option_text(by_key.get(str(key)), slot.match_on or ((slot.key,) if slot.key else ())))
            for key in allowed[:MAX_OPTIONS]]
        listing = "Options:\n" + "\n".join(lines) + "\n"
    slot_format = formats.get(slot.type)
    meaning = _MEANING[slot.type] if slot_format is None else slot_format.description
    return _SYSTEM.format(meaning=meaning, prompt=prompt, listing=listing)


def _parse(raw: str) -> Any:
    """The `value` of the model's JSON reply; None for anything else (a reply cut short by
    max_tokens is not JSON)."""
    try:
        reply = json.loads(raw)
    except ValueError:
        return None
    return reply.get("value") if isinstance(reply, dict) else None


def _render_address(value: Mapping[str, Any]) -> str | None:
    """An address as the one line the pattern extractor reads: "12 Elm St, Apt 4, Austin, TX
    78701"."""
    parts = {name: value.get(name) for name in _ADDRESS_FIELDS}
    if not all(isinstance(part, str) for part in parts.values()):
        return None
    street = ", ".join(str(parts[name]).strip() for name in ("address1", "address2", "city")
                       if str(parts[name]).strip())
    return f"{street}, {parts['state']} {parts['zip']}"


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _grounded(value: Any, text: str) -> bool:
    """The identifier is in the message, written however: its digits in a row for one with
    digits ("123-4567" for 1234567), each word of an email ("jo at x dot com")."""
    value = str(value).lower()
    digits = re.sub(r"\D", "", value)
    if "@" not in value and digits:
        return digits in re.sub(r"\D", "", text)
    compact = _compact(text)
    return all(part in compact for part in re.findall(r"[a-z0-9]+", value))
