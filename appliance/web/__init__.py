"""The web app: `create_app()` is the gunicorn entry point (`appliance.web:create_app()`)."""

from __future__ import annotations

from typing import Any

import peewee
from flask import Flask, Response, current_app, request
from flask_wtf.csrf import CSRFProtect

from appliance import logs
from appliance.config import Settings, load_settings
from appliance.errors import DatabaseUnavailable
from appliance.services import Services, build_services
from appliance.web.proxies import TrustedProxies

EXTENSION_KEY = "appliance"
#: Where `appliance serve` keeps a worker's schema hold (PostgreSQL; appliance.db.schema_lock).
SCHEMA_HOLD_KEY = "schema_hold"
#: Endpoints that open no database connection before the request (appliance/web/meta.py).
_PROBES = frozenset({"meta.healthz", "meta.readyz"})


def create_app(
    test_config: dict[str, Any] | None = None, services: Services | None = None
) -> Flask:
    """Build the Flask app around `services` (built from settings when not given)."""
    if services is None:
        services = build_services(load_settings())
    settings: Settings = services.settings
    logs.configure(settings)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.tls_in_front,
        JSON_SORT_KEYS=False,
    )
    if test_config:
        app.config.update(test_config)
    app.extensions[EXTENSION_KEY] = services

    from appliance.web import errors, markup, meta, metrics
    from appliance.web.api import bp as api_bp

    csrf = CSRFProtect(app)
    errors.init_app(app)
    markup.init_app(app)
    _database_per_request(app, services)
    _security_headers(app, settings)
    app.register_blueprint(meta.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)
    _register_pages(app)
    if settings.trusted_proxies:
        app.wsgi_app = TrustedProxies(app.wsgi_app, settings.trusted_proxies)  # type: ignore[method-assign]
    return app


def _register_pages(app: Flask) -> None:
    """Admin and chat blueprints (server-rendered pages)."""
    from appliance.web.admin import bp as admin_bp
    from appliance.web.chat import bp as chat_bp

    app.register_blueprint(admin_bp)
    app.register_blueprint(chat_bp)


#: No inline script or style anywhere (the admin has no script; the chat page loads the widget
#: from /chat/static), nothing from another origin, and no page may be framed: brands embed the
#: widget as a script on their own pages, never the chat page in a frame (docs/operations.md).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
#: A year, the floor of browsers' HSTS preload lists.
HSTS_MAX_AGE_S = 365 * 24 * 3600


def _security_headers(app: Flask, settings: Settings) -> None:
    """The same headers on every response, errors included; HSTS only when TLS terminates in
    front (`tls_in_front`): over plain HTTP a browser ignores it, and it must not stick to a
    host that has no TLS."""
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
        "Referrer-Policy": "same-origin",
    }
    if settings.tls_in_front:
        headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE_S}"

    @app.after_request
    def _add(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response


def _database_per_request(app: Flask, services: Services) -> None:
    db = services.db

    @app.before_request
    def _connect() -> None:
        # The probes answer for themselves: /healthz needs no database, /readyz reports it.
        if request.endpoint in _PROBES:
            return
        try:
            db.connect(reuse_if_open=True)
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            raise DatabaseUnavailable("The database does not answer; try again shortly.",
                                      retry_after_s=5) from exc
        # A node left on an older release after another migrated (or the reverse) serves
        # nothing on a schema it does not know (appliance.db.schema_lock).
        hold = app.extensions.get(SCHEMA_HOLD_KEY)
        if hold is not None and hold.schema in ("newer", "pending"):
            raise DatabaseUnavailable("This node's release does not match the database's "
                                      "schema; try again shortly.", retry_after_s=5,
                                      code="schema_mismatch")

    @app.teardown_appcontext
    def _close(exc: BaseException | None) -> None:
        if not db.is_closed():
            db.close()


def services_of_app() -> Services:
    """The Services of the app handling the current request."""
    services: Services = current_app.extensions[EXTENSION_KEY]
    return services
