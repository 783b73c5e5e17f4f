"""The public chat page, /chat/<slug>, and the embeddable widget script it is built on.

The widget (`static/widget.js`, plain JavaScript, no build step) talks to the public API only:
`POST /v1/widget/<slug>/conversations` for a conversation and its token, then
`POST /v1/conversations/<id>/messages` read as a Server-Sent Events stream.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint(
    "chat", __name__, url_prefix="/chat", template_folder="templates", static_folder="static"
)

# The view module registers its routes on bp.
from appliance.web.chat import views  # noqa: E402,F401
