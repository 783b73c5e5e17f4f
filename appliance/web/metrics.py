"""`/metrics`: Prometheus's scrape, for the addresses in `metrics_allow` or with the
`metrics_token` bearer token."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, request

from appliance import metrics
from appliance.config import Settings
from appliance.errors import PermissionDenied
from appliance.web import services_of_app
from appliance.web.proxies import address_in

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    """Every worker's metrics in the text exposition format; 403 for anyone else."""
    _check_access(services_of_app().settings)
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


def _check_access(settings: Settings) -> None:
    """A request with a bearer token is judged by the token alone (a wrong one is refused
    from anywhere); one without, by its address. The refusal names neither."""
    if request.headers.get("Authorization"):
        if not metrics_token_presented(settings):
            raise _refused()
        return
    if not address_in(request.remote_addr, settings.metrics_allow):
        raise _refused()


def metrics_token_presented(settings: Settings) -> bool:
    """The request carries `Authorization: Bearer <metrics_token>` (and one is configured)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = settings.metrics_token
    return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.encode())


def _refused() -> PermissionDenied:
    return PermissionDenied("Not allowed to read the metrics.", code="metrics_forbidden")
