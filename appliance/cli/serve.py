"""`appliance serve` (gunicorn) and `appliance scheduler`."""

from __future__ import annotations

import json
from typing import Any

import click

from appliance.cli.context import CliContext, pass_cli, table


def register(cli: click.Group) -> None:
    cli.add_command(serve)
    cli.add_command(scheduler)


@click.command()
@click.option("--bind", help="HOST:PORT to listen on (default: the 'bind' setting).")
@click.option("--workers", type=int, help="Worker processes (default: 'web_workers').")
@pass_cli
def serve(ctx: CliContext, bind: str | None, workers: int | None) -> None:
    """Run the web app (API, chat, admin) under gunicorn, in the foreground."""
    from gunicorn.app.base import BaseApplication

    from appliance import logs, metrics
    from appliance.db import schema_lock
    from appliance.services import build_services
    from appliance.web import SCHEMA_HOLD_KEY, create_app
    from appliance.web.health import HealthListener, worker_health

    settings = ctx.settings
    # Before the workers fork: each writes its metrics there, /metrics adds them up.
    metrics.prepare_multiprocess(settings.data_dir / "prometheus")
    # Made now, so that an address in use stops the start with the setting's name.
    health = HealthListener(settings.health_bind) if settings.health_bind else None

    def when_ready(server: Any) -> None:
        if health is not None:
            health.start(lambda: worker_health(
                list(server.WORKERS.values()), server.num_workers, server.timeout))

    def post_fork(server: Any, worker: Any) -> None:
        if health is not None:
            health.close_inherited()

    def on_exit(server: Any) -> None:
        if health is not None:
            health.stop()

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options: dict[str, Any] = {
                "bind": bind or settings.bind,
                "workers": workers or settings.web_workers,
                "worker_class": "gthread",
                "threads": settings.web_threads,
                "timeout": settings.web_timeout_s,
                "graceful_timeout": 30,
                "accesslog": "-",
                "errorlog": "-",
                "loglevel": settings.log_level.lower(),
                "logconfig_dict": logs.logging_config(settings),
                # The path without its query string, which can hold customers' details.
                "access_log_format": '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms',
                "child_exit": metrics.worker_exited,
                "when_ready": when_ready,
                "post_fork": post_fork,
                "on_exit": on_exit,
                "proc_name": "appliance-web",
                # No gunicorn control socket: nothing uses it, and it would land in $HOME.
                "control_socket_disable": True,
                # Each worker builds its own services after fork: model weights, ONNX sessions
                # and database connections are never shared across processes.
                "preload_app": False,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            services = build_services(settings)
            # Models, indexes and classifiers load now, not on a customer's first message.
            services.start_warm_up()
            app = create_app(services=services)
            # Kept as long as the worker lives: no migration changes the schema under it.
            app.extensions[SCHEMA_HOLD_KEY] = schema_lock.hold(settings, "web")
            return app

    Application().run()


@click.group(invoke_without_command=True)
@click.pass_context
def scheduler(click_ctx: click.Context) -> None:
    """Run the background job scheduler in the foreground: it leads, or stands by while
    another node's leads (docs/operations.md)."""
    if click_ctx.invoked_subcommand is not None:
        return
    from appliance import logs
    from appliance.jobs.scheduler import run_scheduler

    ctx = click_ctx.find_object(CliContext)
    assert ctx is not None
    logs.configure(ctx.settings)
    click_ctx.exit(run_scheduler(ctx.services))


@scheduler.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_cli
def scheduler_status(ctx: CliContext, as_json: bool) -> None:
    """Which node's scheduler leads, since when, and every node's scheduler."""
    from appliance.jobs import leader

    with ctx.services.db.connection_context():  # the report reads the shared database
        report = leader.status()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"leader: {report['leader'] or 'none'}"
               + (f" since {report['since']}" if report["since"] else ""))
    table([(n["name"], n["role"], str(n["pid"]), n["last_seen"] or "")
           for n in report["nodes"]], ("node", "role", "pid", "last_seen"))
