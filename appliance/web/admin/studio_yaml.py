"""The Studio editor's YAML side: the form fields read from a document, merged back into it,
errors placed on lines, and a unified diff split into styled rows.

The editor posts the YAML and the form fields together, with each field's value as the page
showed it (`initial_<field>`). A field the author changed wins over the YAML for that key; the
document is then rewritten with `yaml.safe_dump` (its comments are lost). With no field
changed the YAML is saved exactly as written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from appliance.errors import InvalidRequest
from appliance.workflows.schema import DefinitionError

FIELDS = ("title", "description", "examples", "requires_identity", "identity_read",
          "identity_write", "outcome")
#: The form fields of `identity: {read, write}`: empty leaves the key out (the brand's policy).
IDENTITY_FIELDS = {"identity_read": "read", "identity_write": "write"}
#: Names the Studio's URLs take for themselves (/workflows/new).
RESERVED_NAMES = frozenset({"new"})
STARTER = """\
name: my_workflow
title: My workflow
description: What this workflow does for the customer.
triggers:
  examples:
    - something a customer says to start it
    - another way to say it
requires_identity: false
outcome: resolved
tools: []
steps:
  - say: The reply the customer gets.
"""


def _load(source: str) -> dict[str, Any] | None:
    """The document as a mapping, or None when it is not one (the service says why)."""
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def fields_of(source: str) -> dict[str, str]:
    """The form's values for a YAML document (empty where it does not say)."""
    data = _load(source) or {}
    triggers = data.get("triggers")
    examples = triggers.get("examples") if isinstance(triggers, dict) else None
    identity = data.get("identity")
    return {
        "title": str(data.get("title") or ""),
        "description": str(data.get("description") or "").strip(),
        "examples": "\n".join(str(e) for e in examples) if isinstance(examples, list) else "",
        "requires_identity": "1" if data.get("requires_identity") is True else "",
        **{name: str(identity.get(key) or "") if isinstance(identity, dict) else ""
           for name, key in IDENTITY_FIELDS.items()},
        "outcome": str(data.get("outcome") or "resolved"),
    }


def posted_fields(form: Mapping[str, str], prefix: str = "") -> dict[str, str]:
    """The fields as posted (`prefix` "initial_": as the page showed them), normalised so
    that an untouched field compares equal."""
    values = {name: form.get(prefix + name, "").replace("\x00", "") for name in FIELDS}
    values["examples"] = "\n".join(_lines(values["examples"]))
    values["description"] = values["description"].replace("\r\n", "\n").strip()
    values["title"] = values["title"].strip()
    values["requires_identity"] = "1" if values["requires_identity"] else ""
    for name in IDENTITY_FIELDS:
        values[name] = values[name].strip()
    return values


def _apply(data: dict[str, Any], name: str, value: str) -> None:
    if name == "requires_identity":
        data[name] = value == "1"
    elif name in IDENTITY_FIELDS:
        _apply_level(data, IDENTITY_FIELDS[name], value)
    elif name == "examples":
        triggers = data.get("triggers")
        triggers = dict(triggers) if isinstance(triggers, dict) else {}
        triggers["examples"] = _lines(value)
        if not triggers["examples"]:
            del triggers["examples"]
        if triggers:
            data["triggers"] = triggers
        else:
            data.pop("triggers", None)
    elif name == "description" and not value:
        data.pop(name, None)
    else:
        data[name] = value


def _apply_level(data: dict[str, Any], key: str, level: str) -> None:
    """Set `identity.<key>` (the schema checks the level), or take it out when empty, and
    `identity` with it when nothing is left (the brand's policy applies)."""
    identity = data.get("identity")
    identity = dict(identity) if isinstance(identity, dict) else {}
    if level:
        identity[key] = level
    else:
        identity.pop(key, None)
    if identity and "identity" not in data and "requires_identity" in data:
        # Beside `requires_identity`, where a reader of the document looks for it.
        items = list(data.items())
        at = [key for key, _ in items].index("requires_identity") + 1
        data.clear()
        data.update([*items[:at], ("identity", identity), *items[at:]])
    elif identity:
        data["identity"] = identity
    else:
        data.pop("identity", None)


def merge_fields(source: str, fields: dict[str, str],
                 initial: dict[str, str]) -> tuple[str, bool]:
    """`source` with the fields the author changed written in, and whether any was. A
    document that is not a YAML mapping is returned as it is, for the service to reject."""
    changed = {name: value for name, value in fields.items() if value != initial.get(name)}
    data = _load(source) if changed else None
    if data is None:
        return source, False
    for name, value in changed.items():
        _apply(data, name, value)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100), True


def fields_again(source: str, fields: dict[str, str], initial: dict[str, str],
                 merged: bool) -> tuple[dict[str, str], dict[str, str]]:
    """The form (values, initial values) to show again with a rejected document: read from
    the YAML when it holds every change the author made, else as posted (so that changes
    not yet merged are merged on the next save)."""
    if (merged or fields == initial) and _load(source) is not None:
        current = fields_of(source)
        return current, dict(current)
    return fields, initial


def check_new(source: str, existing: Iterable[str]) -> None:
    """A new workflow must not take the name of one that exists (saving would edit that
    one) nor a name the Studio's URLs use."""
    name = (_load(source) or {}).get("name")
    if not isinstance(name, str):
        return
    if name in RESERVED_NAMES:
        raise InvalidRequest(f"the name {name!r} is reserved; choose another",
                             param="name", code="workflow_name_reserved")
    if name in set(existing):
        raise InvalidRequest(f"a workflow named {name!r} exists already; edit it on its page",
                             param="name", code="workflow_exists")


def _key_line(source: str, key: str) -> int | None:
    """The line of a top-level key, for errors that name only the key."""
    for number, line in enumerate(source.splitlines(), 1):
        if key and line.startswith(f"{key}:"):
            return number
    return None


def errors_of(exc: InvalidRequest, source: str) -> list[dict[str, Any]]:
    """Each problem as {line, path, message}: a DefinitionError lists them; other refusals
    (a renamed workflow, an unknown tool) name a top-level key."""
    if isinstance(exc, DefinitionError):
        return list(exc.errors)
    path = exc.param or ""
    return [{"line": _key_line(source, path), "path": path, "message": exc.message}]


def diff_rows(lines: list[str]) -> list[tuple[str, str]]:
    """(kind, line) per unified diff line; kind: file, hunk, add, del or context."""
    rows = []
    for index, line in enumerate(lines):
        if index < 2 and line.startswith(("---", "+++")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "context"
        rows.append((kind, line))
    return rows
