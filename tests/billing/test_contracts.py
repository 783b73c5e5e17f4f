"""Contracts per brand: validated TOML, exact decimals, versions by effective date, audited."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import Result

from appliance import audit
from appliance.billing.contracts import (
    Contract,
    contract_at,
    contract_versions,
    parse_contract,
    set_contract,
)
from appliance.db.models import Brand
from appliance.errors import Conflict, InvalidRequest
from appliance.services import Services

CONTRACT = """
currency = "EUR"
price_per_resolution = 0.99
price_per_save = 12.50
upsell_share = 0.15
monthly_minimum = 500
effective_from = 2026-12-01
"""


def terms(effective_from: str, price: str = "1.00") -> Contract:
    return parse_contract(f'currency = "EUR"\nprice_per_resolution = {price}\n'
                          f"effective_from = {effective_from}\n")


def test_it_reads_prices_as_exact_decimals_with_the_documented_defaults() -> None:
    contract = parse_contract(CONTRACT)

    assert contract.price_per_resolution == Decimal("0.99")
    assert contract.price_per_save == Decimal("12.50")
    assert contract.upsell_share == Decimal("0.15")
    assert contract.monthly_minimum == Decimal(500)
    assert contract.assume_resolved_after_hours == 24
    assert contract.reopen_window_hours == 72
    assert contract.model_dump(mode="json")["price_per_resolution"] == "0.99"


@pytest.mark.parametrize(("text", "key"), [
    (CONTRACT + "price_per_chat = 1\n", "price_per_chat"),
    (CONTRACT.replace("price_per_save = 12.50", "price_per_save = -1"), "price_per_save"),
    (CONTRACT.replace("monthly_minimum = 500", "monthly_minimum = -0.01"), "monthly_minimum"),
    (CONTRACT.replace("upsell_share = 0.15", "upsell_share = 1.5"), "upsell_share"),
    (CONTRACT.replace('"EUR"', '"euro"'), "currency"),
])
def test_it_refuses_a_bad_contract_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_contract(text)

    assert caught.value.param == key
    assert caught.value.message.startswith(f"{key}:")


def test_it_returns_the_version_in_force_on_each_day(services: Services, brand: Brand) -> None:
    set_contract(services.db, brand, terms("2026-11-01", "1.00"), actor="it")
    set_contract(services.db, brand, terms("2026-12-01", "2.00"), actor="it")
    set_contract(services.db, brand, terms("2026-12-01", "3.00"), actor="it")

    assert contract_at(brand, dt.date(2026, 10, 31)) is None
    before = contract_at(brand, dt.datetime(2026, 11, 30, 23, 59))
    assert before is not None and before.terms.price_per_resolution == Decimal("1.00")
    after = contract_at(brand, dt.datetime(2026, 12, 1))
    assert after is not None and (after.version, after.terms.price_per_resolution) == (
        3, Decimal("3.00"))
    assert [v.version for v in contract_versions(brand)] == [1, 2, 3]


def test_it_refuses_a_version_that_takes_effect_before_the_newest(
    services: Services, brand: Brand
) -> None:
    set_contract(services.db, brand, terms("2026-12-01"), actor="it")

    with pytest.raises(Conflict) as caught:
        set_contract(services.db, brand, terms("2026-11-01"), actor="it")

    assert caught.value.param == "effective_from"
    assert len(contract_versions(brand)) == 1


def test_it_sets_and_shows_contracts_from_the_cli_and_audits_each_change(
    invoke: Callable[..., Result], brand: Brand, tmp_path: Path
) -> None:
    path = tmp_path / "contract.toml"
    path.write_text(CONTRACT.replace("2026-12-01", "2020-01-01"))

    set_result = invoke("contracts", "set", "--brand", "acme", "--file", str(path))
    shown = invoke("contracts", "show", "--brand", "acme", "--json")

    assert set_result.exit_code == 0, set_result.output
    assert "contract version 1 for acme" in set_result.output
    document = json.loads(shown.stdout)
    assert document["in_force"]["version"] == 1
    assert document["in_force"]["price_per_resolution"] == "0.99"
    assert document["in_force"]["created_by"].startswith("cli:")
    change = audit.recent(1)[0]
    assert (change.action, change.target) == ("contract.set", "acme")
    assert change.detail["terms"]["upsell_share"] == "0.15"
    text = invoke("contracts", "show", "--brand", "acme")
    assert "version 1 in force" in text.stdout and "monthly_minimum" in text.stdout


def test_it_refuses_a_contract_file_with_an_unknown_key_from_the_cli(
    invoke: Callable[..., Result], brand: Brand, tmp_path: Path
) -> None:
    path = tmp_path / "contract.toml"
    path.write_text(CONTRACT + "discount = 0.1\n")

    result = invoke("contracts", "set", "--brand", "acme", "--file", str(path))

    assert result.exit_code != 0
    assert "discount" in str(result.exception)
    assert contract_versions(brand) == []
