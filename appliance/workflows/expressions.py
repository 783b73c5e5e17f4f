"""Templates and conditions in workflow definitions, evaluated in Jinja's sandbox.

CX teams write `{{ order.status }}`-style templates and `order.status == 'pending'`-style
conditions; the sandbox lets them read the conversation's values and call the usual filters,
and nothing else (no attribute access to internals, no imports, bounded ranges).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from appliance.errors import InvalidRequest

_WHOLE_EXPRESSION = re.compile(r"^\{\{(?P<expr>[^{}]*)\}\}$")


def _money(value: Any) -> str:
    try:
        return f"${float(value):,.2f}"
    except (TypeError, ValueError):
        return str(value)


def _options(value: Any) -> str:
    """An item's options as "color blue, size M"."""
    if isinstance(value, Mapping):
        return ", ".join(f"{key} {val}" for key, val in value.items())
    return str(value)


def _address(value: Any) -> str:
    if not isinstance(value, Mapping):
        return str(value)
    parts = [value.get("address1"), value.get("address2"), value.get("city"),
             " ".join(str(p) for p in (value.get("state"), value.get("zip")) if p),
             value.get("country")]
    return ", ".join(str(part) for part in parts if part)


def _variant(products: Any, item_id: Any) -> Any:
    """The variant with `item_id` among products' variants (None if there is none)."""
    for product in products or ():
        variant = ((product or {}).get("variants") or {}).get(str(item_id))
        if variant is not None:
            return variant
    return None


def _price_in(item_id: Any, products: Any) -> float:
    """A variant's price, for `new_items | map('price_in', products) | sum`."""
    variant = _variant(products, item_id)
    return float(variant.get("price", 0.0)) if variant else 0.0


def _pick(items: Any, item_ids: Any) -> list[Any]:
    """The items for `item_ids`, one per id and in their order: `order['items'] | pick(items)`
    lists an item the order holds twice once when one id is chosen, twice when two are."""
    remaining = list(items or ())
    picked = []
    for item_id in item_ids or ():
        index = next((i for i, item in enumerate(remaining)
                      if isinstance(item, Mapping) and item.get("item_id") == item_id), None)
        if index is not None:
            picked.append(remaining.pop(index))
    return picked


def _years_since(value: Any, date_format: str = "%m/%d/%Y") -> int:
    """Whole years from the date `value` (written as `date_format`) to today: how long an
    account has been open ("date_of_account_open | years_since >= 2"). -1 when `value` is no
    such date, so no rule on an unknown date holds."""
    try:
        then = dt.datetime.strptime(str(value), date_format).date()
    except ValueError:
        return -1
    today = dt.datetime.now(dt.UTC).date()
    return today.year - then.year - ((today.month, today.day) < (then.month, then.day))


@functools.cache
def _environment(strict: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined if strict else Undefined, autoescape=False,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(money=_money, options=_options, address=_address, variant=_variant,
                       price_in=_price_in, pick=_pick, years_since=_years_since)
    return env


class ExpressionError(InvalidRequest):
    """A template or condition could not be evaluated."""

    code = "invalid_expression"


def render(template: str, values: Mapping[str, Any]) -> str:
    """Render a message template; a missing value renders as empty text."""
    try:
        return _environment(False).from_string(template).render(values).strip()
    except TemplateError as exc:
        raise ExpressionError(f"template {template!r}: {exc.message}") from exc


def evaluate(expression: str, values: Mapping[str, Any]) -> Any:
    """The value of an expression (a condition, an option list, an argument); None when it
    reads a value the conversation does not have yet (`order.items` before the lookup)."""
    try:
        result = _environment(False).compile_expression(expression)(**values)
    except UndefinedError:
        return None
    except TemplateError as exc:
        raise ExpressionError(f"expression {expression!r}: {exc.message}") from exc
    return None if isinstance(result, Undefined) else result


def argument(value: Any, values: Mapping[str, Any]) -> Any:
    """A tool argument: `{{ expr }}` alone keeps the expression's type (a list stays a list);
    other strings are rendered; dicts and lists are filled in recursively."""
    if isinstance(value, str):
        whole = _WHOLE_EXPRESSION.match(value.strip())
        if whole:
            return evaluate(whole.group("expr"), values)
        return render(value, values)
    if isinstance(value, Mapping):
        return {key: argument(item, values) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [argument(item, values) for item in value]
    return value


def check_syntax(source: str, *, expression: bool) -> str | None:
    """None when the template or expression parses, else the parser's message."""
    env = _environment(False)
    try:
        if expression:
            env.compile_expression(source)
        else:
            env.parse(source)
    except TemplateError as exc:
        return exc.message or "syntax error"
    return None
