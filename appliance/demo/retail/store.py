"""Lumen Goods' order database: one JSON document per user, order and product.

A `DocStore` (appliance/demo/docstore.py) seeded from the packaged τ-bench data (`data/`):
every write is one transaction, with idempotency keys and a reset to the seed.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from appliance.demo.docstore import Doc, DocStore, SeedRows, Tx, json_seed_rows
from appliance.demo.errors import NotFound

SEED_DIR = Path(__file__).resolve().parent / "data"
DOC_TABLES = ("users", "orders", "products")


def normalize_order_id(order_id: str) -> str:
    """Order ids are stored as '#W0000000'; callers may leave out the '#'."""
    order_id = order_id.strip()
    return order_id if order_id.startswith("#") else f"#{order_id}"


@cache
def _seed_rows() -> SeedRows:
    return {table: json_seed_rows(json.loads((SEED_DIR / f"{table}.json").read_text(
        encoding="utf-8"))) for table in DOC_TABLES}


class RetailTx(Tx):
    """The retail documents as one transaction sees them. Lookups raise `NotFound`."""

    def order(self, order_id: str) -> Doc:
        doc = self.get("orders", normalize_order_id(order_id))
        if doc is None:
            raise NotFound(f"order {normalize_order_id(order_id)} not found",
                           code="order_not_found")
        return doc

    def user(self, user_id: str) -> Doc:
        """The user's document as stored (without `user_id`: it is the key)."""
        doc = self.get("users", user_id)
        if doc is None:
            raise NotFound(f"user {user_id} not found", code="user_not_found")
        return doc

    def product(self, product_id: str) -> Doc:
        doc = self.get("products", product_id)
        if doc is None:
            raise NotFound(f"product {product_id} not found", code="product_not_found")
        return doc

    def save_order(self, order: Doc) -> None:
        self.put("orders", order["order_id"], order)

    def save_user(self, user_id: str, user: Doc) -> None:
        self.put("users", user_id, user)

    def user_ids_where(self, condition: str, params: tuple[str, ...]) -> list[str]:
        return self.ids_where("users", condition, params)


class RetailStore(DocStore[RetailTx]):
    """The retail database in the SQLite file at `path`, seeded on first use.

    Reads return plain JSON-able dicts and raise `NotFound`; writes are the functions of
    `appliance.demo.retail.operations`, run with `write`.
    """

    COLLECTIONS = DOC_TABLES
    tx_class = RetailTx

    def seed_rows(self) -> SeedRows:
        return _seed_rows()

    # Reads

    def user_id_by_email(self, email: str) -> str:
        with self.reading() as tx:
            found = tx.user_ids_where("casefold(json_extract(doc, '$.email')) = ?",
                                      (email.strip().casefold(),))
        if not found:
            raise NotFound("no user with this email", code="user_not_found")
        return found[0]

    def user_id_by_name_zip(self, first_name: str, last_name: str, zip_code: str) -> str:
        with self.reading() as tx:
            found = tx.user_ids_where(
                "casefold(json_extract(doc, '$.name.first_name')) = ?"
                " AND casefold(json_extract(doc, '$.name.last_name')) = ?"
                " AND json_extract(doc, '$.address.zip') = ?",
                (first_name.strip().casefold(), last_name.strip().casefold(), zip_code.strip()),
            )
        if not found:
            raise NotFound("no user with this name and zip code", code="user_not_found")
        return found[0]

    def user(self, user_id: str) -> Doc:
        """The user's document with `user_id` added."""
        with self.reading() as tx:
            return user_view(user_id, tx.user(user_id))

    def order(self, order_id: str) -> Doc:
        with self.reading() as tx:
            return tx.order(order_id)

    def product(self, product_id: str) -> Doc:
        with self.reading() as tx:
            return tx.product(product_id)

    def products(self) -> list[Doc]:
        """Every product's name and id, by name."""
        with self.reading() as tx:
            products = tx.docs_where("products", "1", ())
        return sorted(({"name": doc["name"], "product_id": doc["product_id"]}
                       for doc in products), key=lambda p: (p["name"], p["product_id"]))


def user_view(user_id: str, user: Doc) -> Doc:
    """A user's document as the API shows it: with its id."""
    return {"user_id": user_id, **user}
