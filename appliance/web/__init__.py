"""The web app: `create_app()` is the gunicorn entry point (`appliance.web:create_app()`)."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from flask_wtf.csrf import CSRFProtect

from appliance import logs
from appliance.config import Settings, load_settings
from appliance.services import Services, build_services

EXTENSION_KEY = "appliance"


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
    app.register_blueprint(meta.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)
    _register_pages(app)
    return app


def _register_pages(app: Flask) -> None:
    """Admin and chat blueprints (server-rendered pages)."""
    from appliance.web.admin import bp as admin_bp
    from appliance.web.chat import bp as chat_bp

    app.register_blueprint(admin_bp)
    app.register_blueprint(chat_bp)


def _database_per_request(app: Flask, services: Services) -> None:
    db = services.db

    @app.before_request
    def _connect() -> None:
        db.connect(reuse_if_open=True)

    @app.teardown_appcontext
    def _close(exc: BaseException | None) -> None:
        if not db.is_closed():
            db.close()


def services_of_app() -> Services:
    """The Services of the app handling the current request."""
    services: Services = current_app.extensions[EXTENSION_KEY]
    return services
