"""The admin pages, /admin: server-rendered, Flask session login, CSRF on every form.

Views call the same services as the API and the CLI (`services_of_app()`), so every change made
here is validated and audited exactly like one made there. They import the database models
only as the types those services return, and never query them (tests/web/test_admin_layering.py).
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")

# The view modules register their routes on bp.
from appliance.web.admin import (  # noqa: E402,F401
    auth,
    billing,
    brands,
    classifiers,
    dashboard,
    evals,
    handoff_review,
    handoffs,
    knowledge,
    privacy,
    reports,
    studio,
    studio_tools,
    users,
)
