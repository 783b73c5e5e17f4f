"""A brand's handoffs for the CX team: the numbers (escalation rate, reasons, time to a human)
and the recent handoffs to label. A handoff the agent should have handled becomes an eval case
for its workflow and candidate training utterances for the intent model. Readers see; editors
label.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance.db.models import Brand, Handoff
from appliance.errors import InvalidRequest
from appliance.evals.suites import HANDOFF_SUITE
from appliance.handoff.service import CORRECT, SHOULD_HAVE, HandoffService
from appliance.web import services_of_app
from appliance.web.admin import bp
from appliance.web.admin.auth import EDITOR_ROLES, READER_ROLES, login_required, signed_in_user
from appliance.web.admin.handoff_views import packet_view, stats_view, usernames
from appliance.web.admin.scope import brand_for

#: Handoffs listed on the review page, newest first.
RECENT = 50
NOTE_MAX = 500
#: How each verdict reads on the page.
VERDICTS = {SHOULD_HAVE: "Agent should have handled it", CORRECT: "Correct escalation"}


@dataclass(frozen=True)
class Lesson:
    """A handoff the agent should have handled, as material to learn from."""

    handoff: Handoff
    eval_case: str
    customer_turns: list[str]


def _handoffs() -> HandoffService:
    return services_of_app().handoffs


def _brand_handoff(brand: Brand, public_id: str) -> Handoff:
    return _handoffs().get(public_id, brand_ids=[brand.id])


@bp.get("/brands/<slug>/handoffs")
@login_required(*READER_ROLES)
def handoff_review(slug: str) -> ResponseReturnValue:
    user = signed_in_user()
    found = brand_for(user, slug)
    service = _handoffs()
    handoffs = service.recent(found, RECENT)
    lessons = [Lesson(h, service.eval_case(h), service.customer_turns(h))
               for h in handoffs if h.review == SHOULD_HAVE]
    return render_template(
        "admin/handoff_review.html", brand=found, handoffs=handoffs,
        reasons={h.id: packet_view(h).reason_text for h in handoffs},
        names=usernames(handoffs), lessons=lessons, stats=stats_view(service.stats(found)),
        verdicts=VERDICTS, editor=user.role in EDITOR_ROLES, note_max=NOTE_MAX,
    )


@bp.post("/brands/<slug>/handoffs/<public_id>/review")
@login_required(*EDITOR_ROLES)
def handoff_label(slug: str, public_id: str) -> ResponseReturnValue:
    user = signed_in_user()
    found = brand_for(user, slug)
    handoff = _brand_handoff(found, public_id)
    verdict = request.form.get("verdict", "")
    note = request.form.get("note", "").replace("\x00", "").strip()
    try:
        if len(note) > NOTE_MAX:
            raise InvalidRequest(f"note: at most {NOTE_MAX} characters", param="note")
        _handoffs().review(handoff, verdict, user.username, note or None)
    except InvalidRequest as exc:
        flash(f"Not reviewed: {exc.message}", "error")
    else:
        flash(f"Reviewed {handoff.public_id}: {VERDICTS[verdict].lower()}.", "success")
    return redirect(url_for("admin.handoff_review", slug=found.slug, _anchor=handoff.public_id))


@bp.post("/brands/<slug>/handoffs/<public_id>/promote")
@login_required(*EDITOR_ROLES)
def handoff_promote(slug: str, public_id: str) -> ResponseReturnValue:
    """Add the handoff to the brand's `handoffs` eval suite (quarantined until reviewed)."""
    user = signed_in_user()
    found = brand_for(user, slug)
    handoff = _brand_handoff(found, public_id)
    if handoff.review != SHOULD_HAVE:
        flash("Only a handoff the agent should have handled becomes an eval case.", "error")
    else:
        case = _handoffs().case_of(handoff)
        services = services_of_app()
        try:
            services.suites.add_case(found, case, user.username)
        except InvalidRequest as exc:
            flash(f"Not added: {exc.message}", "error")
        else:
            flash(f"Added {handoff.public_id} to the {HANDOFF_SUITE!r} eval suite, "
                  "quarantined until its expectations are filled in.", "success")
    return redirect(url_for("admin.handoff_review", slug=found.slug, _anchor=handoff.public_id))


@bp.get("/brands/<slug>/handoffs/<public_id>/eval-case.yaml")
@login_required(*READER_ROLES)
def handoff_eval_case(slug: str, public_id: str) -> ResponseReturnValue:
    handoff = _brand_handoff(brand_for(signed_in_user(), slug), public_id)
    return Response(
        _handoffs().eval_case(handoff), mimetype="text/yaml",
        headers={"Content-Disposition": f'attachment; filename="{handoff.public_id}.yaml"'},
    )
