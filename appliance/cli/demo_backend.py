"""`appliance demo-backend retail|bank`: the demo brands' own systems, as separate local
services."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import Flask


def register(cli: click.Group) -> None:
    cli.add_command(demo_backend)


@click.group("demo-backend")
def demo_backend() -> None:
    """The demo brands' back-office systems that their agents' workflow tools call."""


def _options(default_port: int, what: str) -> Callable[[Callable[..., None]],
                                                     Callable[..., None]]:
    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        command = click.option(
            "--db", "db_path", required=True,
            type=click.Path(dir_okay=False, writable=True, path_type=Path),
            help=f"SQLite file of the {what}; created and seeded if it does not exist.",
        )(command)
        command = click.option("--host", default="127.0.0.1", show_default=True,
                               help="Address to listen on.")(command)
        return click.option("--port", type=click.IntRange(1, 65535), default=default_port,
                            show_default=True, help="TCP port to listen on.")(command)
    return decorate


@demo_backend.command("retail")
@_options(8090, "order database")
def retail(port: int, host: str, db_path: Path) -> None:
    """Run Lumen Goods' order system (users, orders, products; τ-bench retail semantics) under
    gunicorn, in the foreground. POST /reset puts the seed data back."""
    from appliance.demo.retail.app import create_app
    from appliance.demo.retail.store import RetailStore

    # Create and seed the file here, before gunicorn starts, so a bad path fails loudly once.
    RetailStore(db_path)
    _serve("appliance-demo-retail", host, port, lambda: create_app(db_path))


@demo_backend.command("bank")
@_options(8091, "bank's database")
def bank(port: int, host: str, db_path: Path) -> None:
    """Run Rho-Bank's systems (customers, accounts, cards, transactions, disputes, card orders,
    closures, limit requests, referrals, applications, verifications and one-time codes; the
    rules of its help center) under gunicorn, in the foreground. POST /reset puts the seed
    data back; GET /demo/otp/USER_ID shows the last one-time code sent."""
    from appliance.demo.bank.app import create_app
    from appliance.demo.bank.store import BankStore

    BankStore(db_path)
    _serve("appliance-demo-bank", host, port, lambda: create_app(db_path))


def _serve(proc_name: str, host: str, port: int, app: Callable[[], Flask]) -> None:
    from gunicorn.app.base import BaseApplication

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
                "proc_name": proc_name,
                # No gunicorn control socket: nothing uses it, and it would land in $HOME.
                "control_socket_disable": True,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return app()

    Application().run()
