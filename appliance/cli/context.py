"""What CLI commands share: settings read once, services built on first use."""

from __future__ import annotations

import getpass
from collections.abc import Sequence

import click

from appliance.config import Settings, load_settings
from appliance.services import Services, build_services


class CliContext:
    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._services: Services | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def services(self) -> Services:
        if self._services is None:
            self._services = build_services(self.settings)
            self._services.db.connect(reuse_if_open=True)
        return self._services

    def close(self) -> None:
        if self._services is not None:
            self._services.close()

    @property
    def actor(self) -> str:
        """Who to name in the audit log for changes made from the command line."""
        return f"cli:{getpass.getuser()}"


pass_cli = click.make_pass_decorator(CliContext)


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> None:
    """Print rows as an aligned plain-text table."""
    widths = [max(len(str(v)) for v in column) for column in zip(headers, *rows, strict=False)]
    for row in (headers, tuple("-" * w for w in widths), *rows):
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)).rstrip())
