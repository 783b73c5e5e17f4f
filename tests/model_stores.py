"""Model stores for tests: the real manifest, changed as a test needs, written to a temp dir.

Entries keep their `package` + `file`, so the real embedded models are used from where the
install put them; files that live in the real store (the signal classifiers, an operator's
large model) are named by their absolute path there.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

REPO = Path(__file__).resolve().parent.parent
REAL_MANIFEST = REPO / "model_store" / "manifest.toml"


def _anchored(entry: dict[str, Any]) -> dict[str, Any]:
    """`entry` with a store-relative file made absolute in the real store."""
    if "file" in entry and "package" not in entry:
        return {**entry, "file": str(REAL_MANIFEST.parent / entry["file"])}
    return entry


def real_entry(model_id: str) -> dict[str, Any]:
    manifest = tomllib.loads(REAL_MANIFEST.read_text())
    entry: dict[str, Any] = next(e for e in manifest["models"] if e["id"] == model_id)
    return entry


def write_store(
    directory: Path, *, reply: list[str], extra: tuple[dict[str, Any], ...] = (),
    changed: dict[str, dict[str, Any]] | None = None, dropped: tuple[str, ...] = (),
) -> Path:
    """A store at `directory` with the real entries (each updated by `changed[id]`, none of
    `dropped`), the `extra` entries, and the cpu profile's reply route set to `reply`."""
    manifest = tomllib.loads(REAL_MANIFEST.read_text())
    models = [{**_anchored(entry), **(changed or {}).get(entry["id"], {})}
              for entry in manifest["models"] if entry["id"] not in dropped]
    manifest["models"] = [*list(extra), *models]
    manifest["profiles"]["cpu"]["reply"] = reply
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.toml").write_text(tomli_w.dumps(manifest))
    return directory
