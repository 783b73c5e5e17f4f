"""Liveness, readiness and introspection: /healthz, /readyz, /-/versions.

/healthz and /readyz are public (load balancers and systemd probe them); /-/versions tells an
attacker which package versions to look up, so it answers only a signed-in it_admin or a
monitoring system holding the metrics token.
"""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from appliance import __version__
from appliance.db.migrate import applied_versions, available
from appliance.errors import AuthenticationError
from appliance.web import SCHEMA_HOLD_KEY, services_of_app
from appliance.web.admin.auth import current_user
from appliance.web.metrics import metrics_token_presented

bp = Blueprint("meta", __name__)

_PACKAGES = ("flask", "gunicorn", "peewee", "apscheduler", "llama-cpp-python", "httpx", "pydantic")


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up and serving requests."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready for traffic: the database answers, its schema is exactly the one this release knows,
    this worker holds the schema lock (PostgreSQL under `appliance serve`) and has warmed up
    (appliance.readiness). 503 otherwise.

    Model health is reported but does not fail readiness: with every model down the agent
    still answers with the brand's canned message (a warm-up that failed is reported the
    same way: the parts load on first use).
    """
    services = services_of_app()
    checks: dict[str, Any] = {}
    try:
        services.db.connect(reuse_if_open=True)  # the app's teardown closes it
        known, applied = {m.version for m in available()}, applied_versions(services.db)
        # A schema newer than this release: another node migrated while this one was down.
        detail = ("schema newer than this release" if applied - known
                  else "migrations pending" if known - applied else "schema current")
        checks["database"] = {"ok": applied == known, "detail": detail}
    except Exception:  # any database failure means not ready
        checks["database"] = {"ok": False, "detail": "database unreachable"}
    hold = current_app.extensions.get(SCHEMA_HOLD_KEY)
    if hold is not None:  # PostgreSQL under `appliance serve`
        checks["schema_lock"] = {"ok": hold.held, "detail": "held" if hold.held else "not held"}
    warm = services.warm
    checks["warm_up"] = {"ok": warm.ready, "detail": warm.state, "seconds": warm.seconds}
    if warm.ready:
        # While warming up the model is busy loading: asking it now would wait for that.
        primary = services.router.primary("reply")
        health = primary.check_health()
        checks["reply_model"] = {"ok": health.ok, "model": primary.spec.id,
                                 "detail": health.detail}
    ready = all(check["ok"] for name, check in checks.items() if name != "reply_model")
    return jsonify({"status": "ready" if ready else "not_ready", "checks": checks}), (
        200 if ready else 503
    )


@bp.get("/-/versions")
def versions() -> Response:
    """What runs here; 401 (`login_required`) unless an it_admin or the metrics token asks."""
    services = services_of_app()
    user = current_user()
    if not ((user is not None and user.role == "it_admin")
            or metrics_token_presented(services.settings)):
        raise AuthenticationError("Sign in as an it_admin, or send the metrics token.",
                                  code="login_required")
    packages: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    return jsonify({
        "appliance": __version__,
        "python": platform.python_version(),
        "packages": packages,
        "database": {
            "engine": "sqlite" if services.settings.is_sqlite else "postgresql",
            "schema_version": max(applied_versions(services.db), default=0),
        },
        "model_profile": services.settings.model_profile,
        "models": {
            model_id: {"role": model.spec.role, "backend": model.spec.backend}
            for model_id, model in services.router.models.items()
        },
    })
