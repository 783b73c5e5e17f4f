"""What connectors produce, and the contract every connector follows.

A connector reads one source location (a folder, an export, a file) and yields, per document,
either a `RawDocument` or a `DocumentError`. It never raises for one bad document: a corrupt PDF,
invalid JSON, an undecodable file or an oversized one becomes a `DocumentError` naming the
document, and reading goes on with the rest. It raises `SourceError` only when the location as a
whole cannot be read (missing path, not an export of this kind).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from appliance.errors import InvalidRequest

#: Largest single file a connector reads; larger ones become a DocumentError.
MAX_FILE_BYTES = 20 * 1024 * 1024


class SourceError(InvalidRequest):
    """The source location as a whole cannot be read as this kind of source."""

    code = "source_unreadable"


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path ("Returns > Refunds"; "" for none)."""

    heading: str
    text: str


@dataclass(frozen=True)
class RawDocument:
    #: Stable id within the source: relative file path, page id, thread ts, macro id, jsonl id.
    external_id: str
    title: str
    sections: tuple[Section, ...]
    #: Where a citation points: a relative path, a URL, or a permalink.
    location: str
    updated_at: dt.datetime | None = None
    author: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n\n".join(
            f"{s.heading}\n{s.text}" if s.heading else s.text for s in self.sections
        ).strip()


@dataclass(frozen=True)
class DocumentError:
    external_id: str
    message: str


class Connector(Protocol):
    def __call__(
        self, path: Path, options: Mapping[str, Any]
    ) -> Iterator[RawDocument | DocumentError]:
        """Read every document at `path`; see the module docstring for the error contract."""
        ...
