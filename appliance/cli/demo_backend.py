"""`appliance demo-backend retail`: the demo brands' own systems, as separate local services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def register(cli: click.Group) -> None:
    cli.add_command(demo_backend)


@click.group("demo-backend")
def demo_backend() -> None:
    """The demo brands' back-office systems that their agents' workflow tools call."""


@demo_backend.command("retail")
@click.option("--port", type=click.IntRange(1, 65535), default=8090, show_default=True,
              help="TCP port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--db", "db_path", required=True,
              type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="SQLite file of the order database; created and seeded if it does not exist.")
def retail(port: int, host: str, db_path: Path) -> None:
    """Run Lumen Goods' order system (users, orders, products; τ-bench retail semantics) under
    gunicorn, in the foreground. POST /reset puts the seed data back."""
    from gunicorn.app.base import BaseApplication

    from appliance.demo.retail.app import create_app
    from appliance.demo.retail.store import RetailStore

    # Create and seed the file here, before gunicorn starts, so a bad path fails loudly once.
    RetailStore(db_path)

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options: dict[str, Any] = {
                "bind": f"{host}:{port}",
                # One sync worker: a demo's traffic, and SQLite writes are serialized anyway.
                "workers": 1,
                "worker_class": "sync",
                "timeout": 30,
                "graceful_timeout": 10,
                "accesslog": "-",
                "errorlog": "-",
                "proc_name": "appliance-demo-retail",
                # No gunicorn control socket: nothing uses it, and it would land in $HOME.
                "control_socket_disable": True,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return create_app(db_path)

    Application().run()
