"""Workflow and tool definitions: the documented YAML schema, validated with line numbers.

A brand's workflows are YAML documents the CX team writes (docs/workflows.md is the reference).
Parsing never half-succeeds: a document either validates completely or raises `InvalidRequest`
whose detail lists every problem with the line it is on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from appliance.errors import InvalidRequest
from appliance.workflows.expressions import check_syntax

NAME_RE = r"^[a-z][a-z0-9_]{0,62}$"
#: Slot types the engine knows and what fills them (appliance/workflows/extract.py). Any other
#: slot type names one of the brand's slot formats (`formats:` in its toolset document).
SLOT_TYPES = (
    "email", "first_name", "last_name", "enum", "choice", "choices", "variants", "address",
    "text", "number",
)
#: Slot types an LLM extractor can fill (appliance/workflows/llm_extract.py): those whose value
#: a JSON schema describes and the pattern extractors can check; the brand's formats too.
LLM_SLOT_TYPES = ("email", "number", "enum", "choice", "address")
#: What a finished workflow counts as (the outcome issue bills on these).
OUTCOMES = ("resolved", "saved", "upsold", "informed", "escalated", "abandoned")
STEP_KINDS = ("ask", "lookup", "check", "confirm", "write", "say", "identify", "answer",
              "hand_off", "end", "switch", "record")
FAILURE_ACTIONS = ("reask", "end", "hand_off")
#: How sure the agent is of who the customer is, weakest first (appliance.identity.Assurance).
Level = Literal["contact", "knowledge", "one_time_code", "asserted"]
LEVELS: tuple[str, ...] = get_args(Level)


def regular_expressions(value: tuple[str, ...]) -> tuple[str, ...]:
    """`value` when every item compiles as a regular expression; ValueError naming the first
    that does not (a pydantic validator's error)."""
    for phrase in value:
        try:
            re.compile(phrase)
        except re.error as exc:
            raise ValueError(f"phrase {phrase!r} is not a regular expression: {exc}") from exc
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IdentityNeeds(_Strict):
    """The assurance level a workflow needs before anything about the customer is shown
    (`read`) and before it changes anything (`write`); a stronger level satisfies a weaker
    one."""

    read: Level = "contact"
    write: Level = "contact"

    @model_validator(mode="after")
    def _write_at_least_read(self) -> IdentityNeeds:
        if LEVELS.index(self.write) < LEVELS.index(self.read):
            raise ValueError("identity.write cannot be weaker than identity.read")
        return self


class Triggers(_Strict):
    """When the workflow starts: intents of the brand's intent model, example utterances
    (the brand's workflow matcher is rebuilt from them on publish), and phrases: regular
    expressions (case-insensitive) that start it wherever a request has them ("\\bexchange\\b"),
    however much else the message says."""

    intents: tuple[str, ...] = ()
    examples: tuple[str, ...] = Field(default=(), max_length=500)
    phrases: tuple[str, ...] = Field(default=(), max_length=100)

    @field_validator("phrases")
    @classmethod
    def _compiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return regular_expressions(value)


class Slot(_Strict):
    """A piece of information the workflow needs from the customer.

    `extractor` says what reads it from a message: `patterns` (the default, the deterministic
    extractors of extract.py) or `llm`: the patterns first and, when they find nothing in the
    answer to this slot's question, the `extraction` task's models with output constrained to
    the slot's JSON schema, kept only if the same validation accepts it. `llm` is for the types
    in LLM_SLOT_TYPES.
    """

    #: One of SLOT_TYPES, or the name of a format the brand declares (`order_id`).
    type: str = Field(pattern=NAME_RE)
    prompt: str = Field(min_length=1, max_length=1000)
    #: enum: the allowed values, and phrases that mean each.
    values: tuple[str, ...] = ()
    synonyms: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    #: choice/choices: an expression giving the options (a list of dicts or strings), the
    #: attribute that identifies one, and the attributes a customer may name it by.
    options: str | None = None
    key: str | None = None
    match_on: tuple[str, ...] = ()
    #: variants: the expression giving the chosen items, and the one giving their products.
    items: str | None = None
    products: str | None = None
    #: choice: what "the original" / "the same" means, as an expression.
    default: str | None = None
    extractor: Literal["patterns", "llm"] = "patterns"
    #: Read only from the answer to its own question, never from other messages: a value
    #: that other details share the shape of (the date a problem was noticed, beside a date
    #: of birth) or words a request is made of ("close" in "close my card", for a slot that
    #: asks whether to close after an offer).
    only_when_asked: bool = False

    @model_validator(mode="after")
    def _check_type_options(self) -> Slot:
        if self.extractor == "llm" and self.type in SLOT_TYPES and (
                self.type not in LLM_SLOT_TYPES):
            raise ValueError(f"extractor: llm is not available for {self.type} slots (only "
                             f"{', '.join(LLM_SLOT_TYPES)} and the brand's formats)")
        if self.type == "enum" and not self.values:
            raise ValueError("an enum slot needs `values`")
        unknown = set(self.synonyms) - set(self.values)
        if unknown:
            raise ValueError(f"synonyms for values not listed: {sorted(unknown)}")
        if self.type in ("choice", "choices") and not self.options:
            raise ValueError(f"a {self.type} slot needs `options`")
        if self.type == "variants" and not (self.items and self.products):
            raise ValueError("a variants slot needs `items` and `products`")
        return self


class Step(_Strict):
    """One step. Exactly one of the kind keys is set; `when` makes any step conditional."""

    ask: str | tuple[str, ...] | None = None
    #: ask: other sets of slots that satisfy the step instead (e.g. email, or name + zip).
    alternatives: tuple[tuple[str, ...], ...] = ()
    lookup: str | None = None
    write: str | None = None
    check: str | None = None
    confirm: str | None = None
    say: str | None = None
    identify: str | None = None
    answer: Literal["knowledge"] | None = None
    hand_off: str | None = None
    end: str | None = None
    #: Another workflow of the brand that takes over, with the slots it shares.
    switch: str | None = Field(default=None, pattern=NAME_RE)
    #: Values kept with the run's slots, so they are recorded when it ends: what an
    #: outcome bills on (`upsell_value`), by name, each a template or `{{ expr }}`.
    record: dict[str, Any] | None = None

    when: str | None = None
    prompt: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    #: lookup: call once per element of this list expression (bound as `it`).
    each: str | None = None
    save_as: str | None = None
    #: check, lookup, write: what to do when it fails, and the slots to clear for a re-ask.
    on_fail: Literal["reask", "end", "hand_off"] = "reask"
    clear: tuple[str, ...] = ()
    #: check/lookup failure message, shown before re-asking.
    message: str | None = None
    #: identify: the tool that fetches the verified customer's profile.
    profile: str | None = None
    #: end / identify: the outcome recorded (defaults to the workflow's).
    outcome: str | None = None
    #: identify: the assurance level this way of identifying achieves (`asserted` only for
    #: the id the brand's site signed).
    assurance: Level = "contact"

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)

    @property
    def asks(self) -> tuple[str, ...]:
        return (self.ask,) if isinstance(self.ask, str) else tuple(self.ask or ())

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a step needs exactly one of {', '.join(STEP_KINDS)}; "
                             f"got {', '.join(kinds) or 'none'}")
        if self.kind in ("lookup", "write") and not self.save_as and self.kind == "lookup":
            raise ValueError("a lookup step needs `save_as`")
        if self.kind == "check" and not self.message:
            raise ValueError("a check step needs a `message` for when it fails")
        if self.kind == "record" and not all(re.match(NAME_RE, name) for name in
                                             self.record or {}):
            raise ValueError("record names must be lower_snake_case")
        if self.kind == "identify" and not self.profile:
            raise ValueError("an identify step needs `profile` (the tool that loads them)")
        return self


class Workflow(_Strict):
    """A workflow definition (one YAML document)."""

    name: str = Field(pattern=NAME_RE)
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    triggers: Triggers = Field(default_factory=Triggers)
    #: The identity workflow verifies the customer; others may require it first.
    provides_identity: bool = False
    requires_identity: bool = False
    #: The levels it needs (default: the brand's policy, `identity`).
    identity: IdentityNeeds | None = None
    slots: dict[str, Slot] = Field(default_factory=dict)
    steps: tuple[Step, ...] = Field(min_length=1)
    outcome: Literal["resolved", "saved", "upsold", "informed", "escalated",
                     "abandoned"] = "resolved"
    #: Named limits the steps' conditions read as `limits.NAME`.
    limits: dict[str, float | int | str | bool] = Field(default_factory=dict)
    #: Names of the tools this workflow's steps may call; nothing else can run.
    tools: tuple[str, ...] = ()

    @field_validator("slots")
    @classmethod
    def _slot_names(cls, value: dict[str, Slot]) -> dict[str, Slot]:
        for name in value:
            if not re.match(NAME_RE, name):
                raise ValueError(f"slot name {name!r} must be lower_snake_case")
        return value

    @model_validator(mode="after")
    def _references(self) -> Workflow:
        for index, step in enumerate(self.steps):
            for slot in (*step.asks, *(s for group in step.alternatives for s in group),
                         *step.clear):
                if slot not in self.slots:
                    raise ValueError(f"steps[{index}] names unknown slot {slot!r}")
            for tool in (step.lookup, step.write, step.profile):
                if tool is not None and tool not in self.tools:
                    raise ValueError(
                        f"steps[{index}] calls {tool!r}, which is not in the workflow's `tools`")
        for where, source, is_expression in self._sources():
            problem = check_syntax(source, expression=is_expression)
            if problem is not None:
                raise ValueError(f"{where}: {problem}")
        if self.provides_identity and self.requires_identity:
            raise ValueError("the identity workflow cannot itself require identity")
        if self.provides_identity and not any(s.kind == "identify" for s in self.steps):
            raise ValueError("an identity workflow needs an `identify` step")
        return self


    def _sources(self) -> list[tuple[str, str, bool]]:
        """Every template (False) and expression (True) in the definition, with where it is."""
        found: list[tuple[str, str, bool]] = []
        for name, slot in self.slots.items():
            found.append((f"slots.{name}.prompt", slot.prompt, False))
            found += [(f"slots.{name}.{key}", value, True) for key in (
                "options", "items", "products", "default") if (value := getattr(slot, key))]
        for index, step in enumerate(self.steps):
            where = f"steps[{index}]"
            found += [(f"{where}.{key}", value, True) for key in ("when", "check", "each")
                      if (value := getattr(step, key))]
            found += [(f"{where}.{key}", value, False) for key in (
                "confirm", "say", "message", "prompt", "identify") if (value := getattr(step, key))]
            found += [(f"{where}.args.{key}", value, False) for key, value in step.args.items()
                      if isinstance(value, str)]
            found += [(f"{where}.record.{key}", value, False)
                      for key, value in (step.record or {}).items() if isinstance(value, str)]
        return found


#: The named normalisers of a slot format (see SlotFormat).
Normaliser = Literal["upper", "lower", "digits", "strip_spaces"]


class Prefix(_Strict):
    """A normaliser that puts `prefix` before the value unless it starts with it already."""

    prefix: str = Field(min_length=1, max_length=20)


class SlotFormat(_Strict):
    """How one of the brand's identifiers is written (an order number, a card's last four
    digits, a date of birth): slots of this type are read with it.

    `find` is a regular expression that finds the value in a customer's free text; its first
    group, when it has one, is the value's text, else the whole match. The text goes through
    `normalise`, in order: `upper`, `lower`, `digits` (keep only the digits), `strip_spaces`,
    `{prefix: "ORD-"}`. The result is the slot's value when it matches `pattern` in full; the
    LLM extractor's output is constrained to `pattern` too (llama.cpp's grammars: write
    `[0-9]` rather than `\\d`, `[.]` rather than `\\.`).
    """

    #: What the value is, as the LLM extractor's prompt says it ("an order number, written
    #: like ORD-123456").
    description: str = Field(min_length=1, max_length=200)
    find: str = Field(min_length=1, max_length=500)
    normalise: tuple[Normaliser | Prefix, ...] = ()
    pattern: str = Field(min_length=1, max_length=500)
    #: A value of this format already given is replaced only by the answer to its question:
    #: a later message with such a value in it (a zip code in an address) is no correction.
    replaced_only_when_asked: bool = False

    @field_validator("normalise", mode="before")
    @classmethod
    def _known_normalisers(cls, value: Any) -> Any:
        named = get_args(Normaliser)
        for step in value if isinstance(value, list | tuple) else ():
            if isinstance(step, str) and step not in named:
                raise ValueError(f"unknown normaliser {step!r} (one of {', '.join(named)}, "
                                 f"or {{prefix: TEXT}})")
        return value

    @field_validator("find", "pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a regular expression: {exc}") from exc
        if compiled.groups > 1:
            raise ValueError(f"{value!r} has {compiled.groups} groups; at most one (the value)")
        return value


class ToolSpec(_Strict):
    """A declarative HTTP tool in the brand's systems."""

    name: str = Field(pattern=NAME_RE)
    description: str = ""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    #: Path template relative to the toolset's base URL; `{arg}` is filled URL-encoded.
    path: str = Field(min_length=1)
    #: JSON schemas for the arguments and the result.
    arguments: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    result: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    #: A write changes the brand's data: it needs a confirmed step and gets an idempotency key.
    writes: bool = False
    requires_identity: bool = True
    #: Dotted path in the result that must equal the verified customer's id.
    owner: str | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    #: Retries on connection errors and 5xx, for idempotent tools only (never writes).
    retries: int = Field(default=1, ge=0, le=5)
    #: Argument names logged as "***".
    redact: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _writes_never_retry(self) -> ToolSpec:
        if self.writes and self.retries and self.method in ("POST", "PATCH"):
            raise ValueError("a write tool must not retry (set retries: 0)")
        return self


class Toolset(_Strict):
    """A brand's tools, all served from one base URL with one credential."""

    base_url: str = Field(pattern=r"^https?://")
    #: A file holding the bearer token sent as `Authorization` (never stored in the database).
    auth_token_file: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    #: How the brand's identifiers are written, by name: a slot whose type is the name is
    #: read with it.
    formats: dict[str, SlotFormat] = Field(default_factory=dict)

    @field_validator("formats")
    @classmethod
    def _format_names(cls, value: dict[str, SlotFormat]) -> dict[str, SlotFormat]:
        for name in value:
            if not re.match(NAME_RE, name):
                raise ValueError(f"format name {name!r} must be lower_snake_case")
            if name in SLOT_TYPES:
                raise ValueError(f"format name {name!r} is a slot type the engine knows")
        return value

    @field_validator("tools")
    @classmethod
    def _unique(cls, value: tuple[ToolSpec, ...]) -> tuple[ToolSpec, ...]:
        names = [tool.name for tool in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"tools defined twice: {duplicates}")
        return value

    def get(self, name: str) -> ToolSpec | None:
        return next((tool for tool in self.tools if tool.name == name), None)


# --- parsing with line numbers ----------------------------------------------------------------


def parse_workflow(text: str, source: str = "workflow") -> Workflow:
    """Validate a workflow YAML document; InvalidRequest lists each error with its line."""
    return parse_document(text, Workflow, source)


def parse_toolset(text: str, source: str = "tools") -> Toolset:
    return parse_document(text, Toolset, source)


M = TypeVar("M", bound=BaseModel)


class DefinitionError(InvalidRequest):
    """A workflow or toolset document does not validate; `errors` has each problem with its
    line (1-based), its path in the document and a message."""

    code = "invalid_definition"

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


class DefinitionTooLarge(DefinitionError):
    """A document over the limits a definition is held to (`MAX_DEFINITION_BYTES`,
    `MAX_DEFINITION_NODES` once aliases are expanded, `MAX_DEFINITION_DEPTH`)."""

    code = "definition_too_large"


#: The largest document accepted (the largest shipped one, an eval suite, is about 32 KB).
MAX_DEFINITION_BYTES = 256 * 1024
#: Values in a document with every alias expanded: a few aliases nested in each other (a
#: "billion laughs" document of a few hundred bytes) would otherwise store megabytes.
MAX_DEFINITION_NODES = 50_000
#: Nesting of mappings and lists (the shipped documents nest at most 8 deep).
MAX_DEFINITION_DEPTH = 32


def _bounded(node: yaml.Node | None, source: str) -> None:
    """Raise DefinitionTooLarge when `node`, with its aliases expanded, holds too many values
    or nests too deep (an alias inside itself nests without end)."""
    counted: dict[int, int] = {}

    def size(current: yaml.Node, depth: int) -> int:
        if depth > MAX_DEFINITION_DEPTH:
            raise DefinitionTooLarge(
                f"{source}: nested more than {MAX_DEFINITION_DEPTH} deep (line "
                f"{current.start_mark.line + 1})",
                [{"line": current.start_mark.line + 1, "path": "",
                  "message": f"nested more than {MAX_DEFINITION_DEPTH} deep"}])
        known = counted.get(id(current))
        if known is not None:
            return known
        total = 1
        if isinstance(current, yaml.MappingNode):
            total += sum(size(key, depth + 1) + size(value, depth + 1)
                         for key, value in current.value)
        elif isinstance(current, yaml.SequenceNode):
            total += sum(size(item, depth + 1) for item in current.value)
        if total > MAX_DEFINITION_NODES:
            raise DefinitionTooLarge(
                f"{source}: more than {MAX_DEFINITION_NODES:,} values once its aliases are "
                "expanded", [{"line": None, "path": "", "message": "too many values"}])
        counted[id(current)] = total
        return total

    if node is not None:
        size(node, 0)


def parse_document(text: str, model: type[M], source: str) -> M:
    """Validate a YAML document against `model`; DefinitionError lists problems by line, and
    DefinitionTooLarge refuses a document over the limits before anything is built from it."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DEFINITION_BYTES:
        raise DefinitionTooLarge(
            f"{source}: larger than {MAX_DEFINITION_BYTES // 1024} KiB",
            [{"line": None, "path": "", "message": "document too large"}])
    try:
        node = yaml.compose(text)
        _bounded(node, source)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise _invalid(source, [{"line": line, "path": "", "message": f"YAML: {problem}"}]) \
            from exc
    if not isinstance(data, dict):
        raise _invalid(source, [{"line": 1, "path": "", "message": "expected a mapping"}])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{"line": _line_of(node, err["loc"]),
                   "path": ".".join(str(part) for part in err["loc"]),
                   "message": err["msg"].removeprefix("Value error, ")}
                  for err in exc.errors()]
        raise _invalid(source, errors) from None


def _invalid(source: str, errors: list[dict[str, Any]]) -> DefinitionError:
    first = errors[0]
    where = f" (line {first['line']})" if first["line"] else ""
    message = f"{source}: {first['path'] + ': ' if first['path'] else ''}{first['message']}{where}"
    if len(errors) > 1:
        message += f"; and {len(errors) - 1} more"
    return DefinitionError(message, errors)


def _line_of(node: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location (the nearest parent
    that exists when the location names a missing key)."""
    if node is None:
        return None
    line = int(node.start_mark.line) + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((value for key, value in node.value if key.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(
                node.value):
            child = node.value[part]
        if child is None:
            break
        node, line = child, int(child.start_mark.line) + 1
    return line
