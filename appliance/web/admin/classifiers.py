"""The signal classifiers page: what reads each customer message (intent, sentiment, human
request), what it was trained on, how well it did on held-out folds, and its version.

Users scoped to one brand see the generic classifiers and their own brand's intent model.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import render_template
from flask.typing import ResponseReturnValue

from appliance.db.models import AdminUser
from appliance.signals.service import HUMAN_REQUEST, SENTIMENT, ClassifierInfo
from appliance.web import services_of_app
from appliance.web.admin import bp
from appliance.web.admin.auth import READER_ROLES, login_required, signed_in_user
from appliance.web.admin.scope import visible_brands
from appliance.web.admin.traces import number

#: Held-out metrics in classifier.json, as the page names them.
METRICS = (
    ("accuracy", "Accuracy"), ("macro_f1", "Macro F1"),
    ("in_scope_accuracy", "In-scope accuracy"), ("oos_precision", "OOS precision"),
    ("oos_recall", "OOS recall"),
)
#: Where the bar is set for signals whose model has no threshold of its own.
POLICY_THRESHOLDS = {
    HUMAN_REQUEST: "none in the model: each brand's policy sets human_request_threshold",
    SENTIMENT: "none in the model: each brand's policy sets frustration_threshold",
}


@dataclass(frozen=True)
class ClassifierRow:
    id: str
    signal: str
    #: The brand's name (its slug if the brand is not in the database); None for all brands.
    brand: str | None
    present: bool
    path: str
    labels: int | None
    rows: int | None
    data_sha256: str | None
    folds: int | None
    metrics: tuple[tuple[str, str], ...]
    threshold: str | None
    threshold_rule: str
    trained_at: str | None
    version: str | None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _trained_at(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _threshold_rule(info: ClassifierInfo) -> str:
    rule = info.meta.get("threshold_rule")
    if isinstance(rule, str) and rule:
        return rule
    if info.signal in POLICY_THRESHOLDS:
        return POLICY_THRESHOLDS[info.signal]
    return "none: the best label wins"


def classifier_row(info: ClassifierInfo, brand_names: Mapping[str, str]) -> ClassifierRow:
    meta = info.meta
    data, metrics = _mapping(meta.get("training_data")), _mapping(meta.get("metrics"))
    labels, threshold = meta.get("labels"), meta.get("threshold")
    name, model_sha256 = meta.get("name"), meta.get("model_sha256")
    return ClassifierRow(
        id=info.model_id, signal=info.signal,
        brand=brand_names.get(info.brand, info.brand) if info.brand else None,
        present=info.present, path=str(info.path or ""),
        labels=len(labels) if isinstance(labels, list) else None,
        rows=data.get("rows") if isinstance(data.get("rows"), int) else None,
        data_sha256=str(data["sha256"]) if data.get("sha256") else None,
        folds=metrics.get("folds") if isinstance(metrics.get("folds"), int) else None,
        metrics=tuple((label, number(metrics[key])) for key, label in METRICS
                      if isinstance(metrics.get(key), int | float)),
        threshold=number(threshold) if isinstance(threshold, int | float) else None,
        threshold_rule=_threshold_rule(info),
        trained_at=_trained_at(meta.get("trained_at")),
        version=f"{name}@{model_sha256[:12]}"
        if isinstance(name, str) and isinstance(model_sha256, str) else None,
    )


def visible_classifiers(user: AdminUser) -> list[ClassifierRow]:
    """The generic classifiers and the intent models of the brands this user may see (every
    declared one for an appliance-wide user, even for a brand not created yet)."""
    brands = {brand.slug: brand.name for brand in visible_brands(user)}
    return [
        classifier_row(info, brands) for info in services_of_app().signals.classifiers()
        if info.brand is None or user.brand_id is None or info.brand in brands
    ]


@bp.get("/models/classifiers")
@login_required(*READER_ROLES)
def classifiers() -> ResponseReturnValue:
    return render_template(
        "admin/classifiers.html", classifiers=visible_classifiers(signed_in_user()))
