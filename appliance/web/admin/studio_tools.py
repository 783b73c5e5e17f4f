"""The Studio's page for a brand's tools and slot formats (its `tools.yaml`): the document in
the workflows' YAML editor with errors on their lines, a summary of what it declares and which
workflows use each part, and "try a format", which reads a sentence the way the engine reads a
slot of that format.

Saving goes through `WorkflowService.save_toolset`, as `appliance workflows import` does: the
document is validated, a tool or format a published or draft workflow uses cannot be dropped,
and the change is audited. It takes effect at once (a toolset has no drafts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance.db.models import Brand
from appliance.errors import InvalidRequest
from appliance.web import services_of_app
from appliance.web.admin import bp
from appliance.web.admin.auth import EDITOR_ROLES, READER_ROLES, login_required, signed_in_user
from appliance.web.admin.scope import brand_for
from appliance.web.admin.studio_yaml import errors_of
from appliance.workflows import schema
from appliance.workflows.extract import extract

#: A sentence tried against a format is cut to this many characters.
TRY_MAX = 1000
STARTER = """\
# Where the brand's systems answer, the tools the workflows may call there, and how the
# brand's customers write its identifiers (docs/workflows.md, "Tools" and "Slot formats").
base_url: https://systems.example.com
formats: {}
tools: []
"""


@dataclass(frozen=True)
class Trial:
    """A sentence read with one of the brand's formats: the value, or None when nothing in it
    is written that way."""

    format: str
    text: str
    value: str | None


def read_with_format(toolset: schema.Toolset, name: str, text: str) -> str | None:
    """What the engine takes from `text` for a slot of format `name`, as the answer to the
    slot's question (the same `extract` the engine calls on every message)."""
    slot = schema.Slot(type=name, prompt="?")
    value = extract(slot, text, {}, asked=True, formats=toolset.formats)
    return None if value is None else str(value)


def normalise_text(slot_format: schema.SlotFormat) -> str:
    """The format's normalisers as the document writes them, in order."""
    return ", ".join(step if isinstance(step, str) else f"prefix {step.prefix}"
                     for step in slot_format.normalise)


def _trial(toolset: schema.Toolset | None) -> Trial | None:
    """The sentence of `?format=NAME&text=...` read with that format, when both are given
    and the brand declares the format."""
    name = request.args.get("format", "")
    text = request.args.get("text", "").replace("\x00", "")[:TRY_MAX]
    if toolset is None or name not in toolset.formats or not text.strip():
        return None
    return Trial(name, text, read_with_format(toolset, name, text))


def _render(brand: Brand, *, source: str, errors: list[dict[str, Any]] | None = None) -> str:
    service = services_of_app().workflows
    toolset = service.toolset(brand)
    return render_template(
        "admin/workflow_tools.html", brand=brand, toolset=toolset,
        row=service.toolset_row(brand), use=service.toolset_use(brand),
        source=source, errors=errors or [], trial=_trial(toolset),
        normalise_text=normalise_text, try_max=TRY_MAX, editor_roles=EDITOR_ROLES,
    )


@bp.get("/brands/<slug>/tools")
@login_required(*READER_ROLES)
def workflow_tools(slug: str) -> ResponseReturnValue:
    found = brand_for(signed_in_user(), slug)
    row = services_of_app().workflows.toolset_row(found)
    return _render(found, source=row.source if row is not None else STARTER)


@bp.post("/brands/<slug>/tools")
@login_required(*EDITOR_ROLES)
def workflow_tools_save(slug: str) -> ResponseReturnValue:
    """Store the posted document; a rejected one is shown again with its errors, and the
    stored one is left as it was."""
    user = signed_in_user()
    found = brand_for(user, slug)
    source = request.form.get("source", "").replace("\r\n", "\n")
    try:
        services_of_app().workflows.save_toolset(found, source, user.username)
    except InvalidRequest as exc:
        return _render(found, source=source, errors=errors_of(exc, source)), 400
    flash("Saved the tools and formats: the agent uses them from the next message on.",
          "success")
    return redirect(url_for("admin.workflow_tools", slug=found.slug))
