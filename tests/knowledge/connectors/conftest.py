"""Fixtures for the connector tests: where the sample exports are, and a reader that runs a
connector to the end and sorts what it yielded into documents and errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appliance.knowledge.base import Connector, DocumentError, RawDocument

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@dataclass(frozen=True)
class Read:
    documents: list[RawDocument]
    errors: list[DocumentError]

    def by_id(self, external_id: str) -> RawDocument:
        return next(doc for doc in self.documents if doc.external_id == external_id)

    @property
    def ids(self) -> list[str]:
        return [doc.external_id for doc in self.documents]


Reader = Callable[..., Read]


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def run(connector: Connector, path: Path, options: Mapping[str, Any] | None = None) -> Read:
    documents, errors = [], []
    for item in connector(path, options or {}):
        if isinstance(item, RawDocument):
            documents.append(item)
        else:
            assert isinstance(item, DocumentError), item
            errors.append(item)
    return Read(documents, errors)


@pytest.fixture
def read() -> Callable[[Connector, Path, Mapping[str, Any] | None], Read]:
    """`read(connector, path, options)` runs the connector to the end."""
    return run
