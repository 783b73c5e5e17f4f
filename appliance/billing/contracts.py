"""Contracts per brand: what an outcome costs, versioned with the date each version takes effect.

Money is a `Decimal` in code and a decimal string in storage (the `terms` JSON) and in the
ledger, never a float: contract files are read with TOML floats parsed as decimals, so
`price_per_resolution = 0.99` is exactly 0.99. Versions are numbered 1, 2, ... per brand; the
one in force at a time is the newest whose `effective_from` is on or before that day (UTC).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import peewee
import tomli_w
from pydantic import BaseModel, ConfigDict, Field

from appliance import audit
from appliance.brands import validated
from appliance.db.models import BillingContract, Brand
from appliance.errors import Conflict, InvalidRequest


class Contract(BaseModel):
    """A contract's terms, as written in `contract.toml`. Unknown keys and negative prices are
    refused, naming the key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR.")
    price_per_resolution: Decimal = Field(ge=0, description="Billed per settled resolution.")
    price_per_save: Decimal = Field(default=Decimal(0), ge=0,
                                    description="Billed per settled saved cancellation.")
    upsell_share: Decimal = Field(default=Decimal(0), ge=0, le=1,
                                  description="Fraction of each settled upsell's value billed.")
    monthly_minimum: Decimal = Field(default=Decimal(0), ge=0,
                                     description="The least a closed month's invoice comes to.")
    assume_resolved_after_hours: int = Field(
        default=24, ge=1,
        description="Hours a conversation the agent answered must stay idle before it counts "
                    "as an assumed resolution.")
    reopen_window_hours: int = Field(
        default=72, ge=0,
        description="Hours during which a customer message in the same conversation reverses "
                    "its resolution; it settles after that.")
    human_cost_per_contact: Decimal = Field(
        default=Decimal(0), ge=0,
        description="What a contact handled by the brand's own people costs it; the reports "
                    "compare the cost per resolution with it (0: not known).")
    effective_from: dt.date = Field(description="The first day (UTC) this version is in force.")


@dataclass(frozen=True)
class ContractVersion:
    """A stored version of a brand's contract."""

    version: int
    terms: Contract
    created_by: str
    created_at: dt.datetime

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, **self.terms.model_dump(mode="json"),
                "created_by": self.created_by,
                "created_at": self.created_at.isoformat(timespec="seconds")}


def parse_contract(text: str) -> Contract:
    """Validate the TOML text of a contract; InvalidRequest names the offending key."""
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequest(f"contract file: {exc}", code="invalid_contract") from exc
    contract: Contract = validated(Contract, data)
    return contract


def contract_toml(terms: Contract) -> str:
    """`terms` as the TOML text `parse_contract` reads back to the same terms."""
    return tomli_w.dumps(terms.model_dump(mode="python"))


def load_contract(path: Path) -> Contract:
    """`parse_contract` of a file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror}",
                             code="invalid_contract") from exc
    return parse_contract(text)


def _version_of(row: BillingContract) -> ContractVersion:
    return ContractVersion(row.version, Contract.model_validate(row.terms), row.created_by,
                           row.created_at)


def set_contract(db: peewee.Database, brand: Brand, terms: Contract, *,
                 actor: str) -> ContractVersion:
    """Store `terms` as the brand's next version, audited. A version may not take effect
    before the newest one does: history is added to, never rewritten."""
    with db.atomic():
        newest = (BillingContract.select().where(BillingContract.brand == brand)
                  .order_by(BillingContract.version.desc()).first())
        if newest is not None and terms.effective_from < newest.effective_from:
            raise Conflict(
                f"effective_from: {terms.effective_from} is before version {newest.version}'s "
                f"{newest.effective_from}", code="contract_backdated", param="effective_from")
        row = BillingContract.create(
            brand=brand, version=1 if newest is None else newest.version + 1,
            effective_from=terms.effective_from, terms=terms.model_dump(mode="json"),
            created_by=actor)
        audit.record(actor, "contract.set", brand.slug,
                     {"version": row.version, "terms": row.terms})
    return _version_of(row)


def contract_versions(brand: Brand) -> list[ContractVersion]:
    """Every version of the brand's contract, oldest first."""
    rows = BillingContract.select().where(BillingContract.brand == brand).order_by(
        BillingContract.version)
    return [_version_of(row) for row in rows]


def contract_at(brand: Brand, when: dt.datetime | dt.date) -> ContractVersion | None:
    """The version in force at `when` (a naive UTC datetime or a day), None before the first."""
    day = when.date() if isinstance(when, dt.datetime) else when
    row = (BillingContract.select()
           .where((BillingContract.brand == brand) & (BillingContract.effective_from <= day))
           .order_by(BillingContract.effective_from.desc(), BillingContract.version.desc())
           .first())
    return None if row is None else _version_of(row)
