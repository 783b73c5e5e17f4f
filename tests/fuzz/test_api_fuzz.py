"""/v1 fuzzed from its own OpenAPI document (schemathesis): every operation, over a thousand
generated requests in all, against the real app on a seeded SQLite database. No request gets
a 5xx, and every error is in the one error shape. Derandomized, with no example database, so
every run (and CI) draws the same requests and gives the same verdict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from server_support import make_settings

from appliance.db.migrate import migrate
from appliance.demo.seed import seed
from appliance.services import build_services
from appliance.web import create_app
from appliance.web.api.openapi import openapi_document

#: Requests per operation; the document has a dozen operations, so over 1,000 in all.
EXAMPLES = 100
MINIMUM_CASES = 1000
ERROR_FIELDS = {"message", "type", "param", "code"}
#: Long-polls wait for a message up to `wait` seconds on a real conversation: fuzzed on
#: made-up ids only, which answer at once.
LONG_POLLS = {"/v1/conversations/{conversation_id}/events"}


@dataclass(frozen=True)
class Target:
    schema: Any
    headers: dict[str, str]
    #: Values that exist, so that requests reach past the 404s: a conversation, a brand.
    real: dict[str, str]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    # No rate limits: a thousand requests on one key would be mostly 429s, and what lies
    # behind the limiter is what this fuzzes (tests/api test the limits).
    services = build_services(make_settings(
        root, database_url=f"sqlite:///{root / 'appliance.db'}",
        rate_limit_key_per_minute=0, rate_limit_token_per_minute=0,
        rate_limit_address_per_minute=0))
    services.db.connect(reuse_if_open=True)
    migrate(services.db)
    credentials = seed(services, knowledge=False)
    app = create_app({"TESTING": False}, services=services)
    schema = schemathesis.openapi.from_dict(openapi_document())
    schema.app = app
    brand = services.brands.get("lumen-goods")
    conversation, _ = services.conversations.start(brand, {}, "api")
    yield Target(schema, {"Authorization": f"Bearer {credentials['keys']['lumen-goods']}"},
                 {"conversation_id": conversation.public_id, "slug": "lumen-goods"})
    services.close()


def problems_of(response: Any) -> list[str]:
    """What is wrong with a response: a 5xx, or an error outside the one shape."""
    if response.status_code >= 500:
        return [f"{response.status_code}: {response.text[:300]}"]
    if response.status_code < 400:
        return []
    try:
        body = response.json()
    except ValueError:
        return [f"{response.status_code} is not JSON: {response.text[:300]}"]
    if not (isinstance(body, dict) and set(body) == {"error", "request_id"}
            and isinstance(body["error"], dict) and set(body["error"]) == ERROR_FIELDS
            and all(isinstance(body["error"][k], str) and body["error"][k]
                    for k in ("message", "type", "code"))):
        return [f"{response.status_code} outside the error shape: {body}"]
    # schemathesis keeps each header as the list of its values, names lower-cased.
    if response.headers.get("x-request-id") != [body["request_id"]]:
        return [f"{response.status_code}: X-Request-ID is not the body's request_id"]
    return []


#: Derandomized with no example database: the same requests on every run. No deadline: a
#: request's time is not what this checks.
SETTINGS = hypothesis.settings(max_examples=EXAMPLES, derandomize=True, database=None,
                               deadline=None, suppress_health_check=list(HealthCheck),
                               phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])


def _fuzz(target: Target, operation: Any, calls: Counter[str], answered: set[str],
          problems: list[str]) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    reals = {} if operation.path in LONG_POLLS else target.real

    @SETTINGS
    @given(case=operation.as_strategy(), real=st.booleans())
    def one(case: Any, real: bool) -> None:
        if real and case.path_parameters:
            case.path_parameters = {name: reals.get(name, value)
                                    for name, value in case.path_parameters.items()}
        response = case.call(headers=target.headers)
        calls[label] += 1
        if response.status_code < 300:
            answered.add(operation.path)
        problems.extend(f"{label} {case.path_parameters} {case.query} {case.body!r}: {p}"
                        for p in problems_of(response))

    one()


# Each request is cheap but a few run the model: minutes on busy cores, and how fast they
# are is not what this checks.
@pytest.mark.timeout(1800)
def test_no_request_to_v1_gets_a_5xx_or_an_error_outside_the_shape(target: Target) -> None:
    calls: Counter[str] = Counter()
    answered: set[str] = set()
    problems: list[str] = []
    operations = [result.ok() for result in target.schema.get_all_operations()]

    for operation in operations:
        _fuzz(target, operation, calls, answered, problems)

    assert len(calls) == len(operations) >= 12, calls
    assert sum(calls.values()) >= MINIMUM_CASES, calls
    # The requests reach past validation and the 404s: each operation answered some.
    assert answered >= {op.path for op in operations} - LONG_POLLS
    assert problems == []
