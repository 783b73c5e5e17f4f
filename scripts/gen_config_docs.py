"""Write docs/configuration.md from the settings registry; `--check` fails if it is stale."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from appliance.config import ENV_PREFIX, Settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

HEADER = """# Configuration

Every setting has a default. Sources, later wins: defaults < the TOML file named by
`APPLIANCE_CONFIG` (default `/etc/appliance/appliance.toml`, flat `key = value` lines) <
environment variables `APPLIANCE_<NAME>`. Secrets (marked below) can also be read from a file
named by `APPLIANCE_<NAME>_FILE`, e.g. a systemd credential. An unknown key or a value of the
wrong type stops the appliance at start with an error naming the key.
`appliance config show` prints the effective values with secrets redacted.

This page is generated from `appliance/config.py` by `scripts/gen_config_docs.py`; a test fails
when it is out of date.

| setting | environment | type | default | secret | what it does |
|---|---|---|---|---|---|
"""


def render() -> str:
    rows = []
    for field in dataclasses.fields(Settings):
        default = field.default
        shown = ",".join(default) if isinstance(default, tuple) else str(default)
        shown = "derived" if shown in ("", ".") else f"`{shown}`"
        secret = "yes" if field.metadata["secret"] else ""
        rows.append(
            f"| `{field.name}` | `{ENV_PREFIX}{field.name.upper()}` | {field.type} | "
            f"{shown} | {secret} | "
            f"{field.metadata['help']} |"
        )
    return HEADER + "\n".join(rows) + "\n"


def main() -> None:
    text = render()
    if "--check" in sys.argv:
        if not DOC.is_file() or DOC.read_text() != text:
            sys.exit(f"{DOC} is out of date: run python scripts/gen_config_docs.py")
        return
    DOC.write_text(text)


if __name__ == "__main__":
    main()
