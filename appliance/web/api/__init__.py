"""The public HTTP API, /v1: per-brand bearer keys, OpenAI-shaped errors."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/v1")

from appliance.web.api import routes  # noqa: E402,F401  (registers the routes on bp)
