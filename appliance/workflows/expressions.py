"""Templates and conditions in workflow definitions, evaluated in Jinja's sandbox.

CX teams write `{{ order.status }}`-style templates and `order.status == 'pending'`-style
conditions; the sandbox lets them read the conversation's values and call the usual filters,
and nothing else (no attribute access to internals, no imports).

A published template runs on every customer turn that reaches it, so what one evaluation may
cost is bounded too: text and lists it builds (`'x' * 200000000`, `'x' | center(10 ** 9)`)
are refused past `MAX_OUTPUT_CHARS` before they are built, loops over `range` take at most
`MAX_RANGE_STEPS` steps in all, and an evaluation still running after `TIME_BUDGET_S` stops.
Each is an ExpressionError (`template_limit`), never a stalled worker.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined, UndefinedError
from jinja2 import filters as jinja_filters
from jinja2.runtime import Context
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


#: The longest text, and the longest list, one evaluation may build.
MAX_OUTPUT_CHARS = 20_000
#: Steps all the `range` loops of one evaluation may take together.
MAX_RANGE_STEPS = 10_000
#: The largest exponent `**` takes.
MAX_EXPONENT = 64
#: Seconds one evaluation may run (far beyond any real template: a backstop).
TIME_BUDGET_S = 2.0


class ExpressionError(InvalidRequest):
    """A template or condition could not be evaluated."""

    code = "invalid_expression"


class TemplateLimit(ExpressionError):
    """A template or condition went past what one evaluation may cost."""

    code = "template_limit"


class _Budget:
    """What the evaluation in progress has spent."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.deadline = clock() + TIME_BUDGET_S
        self.steps = 0

    def tick(self) -> None:
        if self.clock() > self.deadline:
            raise TemplateLimit(f"took longer than {TIME_BUDGET_S:g} s")


_budget: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)
#: The clock budgets read (a test may stand in its own).
clock: Callable[[], float] = time.monotonic


def _tick() -> None:
    budget = _budget.get()
    if budget is not None:
        budget.tick()


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple) else None


def _check_size(size: int) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise TemplateLimit(f"would build more than {MAX_OUTPUT_CHARS:,} characters or items")


def _bounded_range(*args: int) -> Iterator[int]:
    """`range`, its steps counted against the evaluation's budget."""
    budget = _budget.get()
    for step in range(*args):
        if budget is not None:
            budget.steps += 1
            if budget.steps > MAX_RANGE_STEPS:
                raise TemplateLimit(f"loops of more than {MAX_RANGE_STEPS:,} steps")
            budget.tick()
        yield step


def _widening(name: str, width_at: int) -> Callable[..., Any]:
    """Jinja's filter `name`, refusing a width (argument `width_at`) past the output limit."""
    original = jinja_filters.FILTERS[name]

    def bounded(*args: Any, **kwargs: Any) -> Any:
        width = args[width_at] if len(args) > width_at else kwargs.get("width", 0)
        if isinstance(width, int) and not isinstance(width, bool):
            _check_size(abs(width))
        return original(*args, **kwargs)

    return bounded


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with what its operators, calls and lookups may cost bounded."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise TemplateLimit(f"an exponent above {MAX_EXPONENT}")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if _sized(seq) is not None and isinstance(times, int):
                    _check_size(len(seq) * times)
        if operator == "+" and _sized(left) is not None and _sized(right) is not None:
            _check_size(len(left) + len(right))
        if operator == "%":
            for arg in right if isinstance(right, tuple) else (right,):
                if isinstance(arg, int) and not isinstance(arg, bool):
                    _check_size(abs(arg))
        return super().call_binop(context, operator, left, right)

    def call(self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)


@functools.cache
def _environment(strict: bool) -> ImmutableSandboxedEnvironment:
    env = _BoundedEnvironment(
        undefined=StrictUndefined if strict else Undefined, autoescape=False,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.globals["range"] = _bounded_range
    env.filters.update(money=_money, options=_options, address=_address, variant=_variant,
                       price_in=_price_in, pick=_pick, years_since=_years_since,
                       center=_widening("center", 1), indent=_widening("indent", 1),
                       wordwrap=_widening("wordwrap", 1))
    return env


class _Spending:
    """A budget for one evaluation (nested evaluations share the outer one)."""

    def __enter__(self) -> None:
        self._token = _budget.set(_budget.get() or _Budget(clock))

    def __exit__(self, *exc: object) -> None:
        _budget.reset(self._token)


def render(template: str, values: Mapping[str, Any]) -> str:
    """Render a message template; a missing value renders as empty text."""
    try:
        with _Spending():
            rendered = []
            size = 0
            for chunk in _environment(False).from_string(template).generate(values):
                size += len(chunk)
                _check_size(size)
                rendered.append(chunk)
        return "".join(rendered).strip()
    except TemplateLimit as exc:
        raise TemplateLimit(f"template {template[:80]!r}: {exc.message}") from exc
    except TemplateError as exc:
        raise ExpressionError(f"template {template!r}: {exc.message}") from exc


def evaluate(expression: str, values: Mapping[str, Any]) -> Any:
    """The value of an expression (a condition, an option list, an argument); None when it
    reads a value the conversation does not have yet (`order.items` before the lookup)."""
    try:
        with _Spending():
            result = _environment(False).compile_expression(expression)(**values)
    except UndefinedError:
        return None
    except TemplateLimit as exc:
        raise TemplateLimit(f"expression {expression[:80]!r}: {exc.message}") from exc
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
