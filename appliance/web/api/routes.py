"""/v1 routes: conversations and messages (JSON or a Server-Sent Events stream)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from flask import Response, jsonify, request, stream_with_context
from pydantic import BaseModel

from appliance.agent.conversations import TurnResult
from appliance.brands import policy_of, validated
from appliance.db.models import Brand, Conversation, Message, Outcome
from appliance.errors import ApplianceError, InvalidRequest, NotFound, PermissionDenied
from appliance.idempotency import HEADER as IDEMPOTENCY_HEADER
from appliance.idempotency import Claim, Replay, fingerprint
from appliance.llm.base import TextDelta
from appliance.outcomes import outcome_json
from appliance.reporting import DateRange
from appliance.web import services_of_app
from appliance.web.api import bp, schemas
from appliance.web.api.auth import Principal, current_principal, limit_request, widget_token
from appliance.web.api.openapi import openapi_document
from appliance.web.api.streams import event_streams
from appliance.web.errors import request_id
from appliance.web.markup import message_html

log = logging.getLogger(__name__)
Body = TypeVar("Body", bound=BaseModel)


def _body(model: type[Body]) -> Body:
    raw = request.get_data(cache=False)
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequest("request body is not valid JSON", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    parsed: Body = validated(model, data)
    return parsed


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


def _created(conversation: Conversation, greeting: Message, token: str | None) -> Response:
    body = schemas.ConversationCreated(
        id=conversation.public_id, brand=conversation.brand.slug, status=conversation.status,
        channel=conversation.channel, customer=conversation.customer,
        created_at=_iso(conversation.created_at) or "",
        greeting=schemas.Greeting(id=greeting.public_id, text=greeting.text,
                                  html=str(message_html(greeting.text, greeting.role))),
        token=token,
    )
    response = jsonify(body.model_dump(exclude_none=True))
    response.status_code = 201
    return response


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())


@bp.post("/conversations")
def create_conversation() -> Response:
    principal = current_principal()
    if principal.conversation_id is not None:
        raise NotFound("widget tokens cannot open conversations", code="not_found")
    body = _body(schemas.CreateConversation)
    services = services_of_app()
    customer = services.identity.customer(
        principal.brand, body.customer.model_dump(exclude_none=True), public=False)
    conversation, greeting = services.conversations.start(principal.brand, customer,
                                                          body.channel)
    return _created(conversation, greeting, None)


@bp.post("/widget/<slug>/conversations")
def create_widget_conversation(slug: str) -> Response:
    """Public: the chat widget opens a conversation and gets a token scoped to it."""
    services = services_of_app()
    brand = services.brands.get(slug)
    if not policy_of(brand).widget_enabled:
        raise NotFound(f"no brand {slug!r}", code="brand_not_found")
    limit_request(brand)
    body = _body(schemas.CreateConversation)
    customer = services.identity.customer(brand, body.customer.model_dump(exclude_none=True),
                                          public=True)
    conversation, greeting = services.conversations.start(brand, customer, "widget")
    return _created(conversation, greeting, widget_token(brand, conversation.public_id))


@bp.get("/conversations/<conversation_id>")
def get_conversation(conversation_id: str) -> Response:
    principal = current_principal()
    principal.check_conversation(conversation_id)
    services = services_of_app()
    conversation = services.conversations.get(principal.brand, conversation_id)
    # Stored text holds placeholders; the brand's channel sees what the customer may see.
    view = services.conversations.customer_view(conversation)
    messages = [_message_out(m, view) for m in services.conversations.messages(conversation)]
    outcome = services.outcomes.of(conversation)
    body = schemas.Transcript(
        id=conversation.public_id, brand=principal.brand.slug, status=conversation.status,
        status_reason=conversation.status_reason,
        channel=conversation.channel, customer=view(conversation.customer),
        created_at=_iso(conversation.created_at) or "",
        updated_at=_iso(conversation.updated_at) or "",
        closed_at=_iso(conversation.closed_at), messages=messages,
        outcome=(_outcome_out(outcome, conversation.public_id, principal.brand) if outcome
                 else None),
    )
    return jsonify(body.model_dump())


@bp.post("/conversations/<conversation_id>/feedback")
def post_feedback(conversation_id: str) -> Response:
    """The customer's feedback (the widget's "Did this solve it?" and its rating)."""
    principal = current_principal()
    principal.check_conversation(conversation_id)
    body = _body(schemas.PostFeedback)
    services = services_of_app()
    conversation = services.conversations.get(principal.brand, conversation_id)
    given = services.outcomes.feedback(conversation, resolved=body.resolved, csat=body.csat,
                                       comment=body.comment)
    return jsonify(schemas.FeedbackOut(id=given.id, conversation=conversation.public_id,
                                       resolved=given.resolved, csat=given.csat).model_dump())


@bp.get("/outcomes")
def list_outcomes() -> Response:
    """The brand's own outcomes, for its key."""
    principal = current_principal()
    if principal.conversation_id is not None:
        raise PermissionDenied("a widget token cannot read outcomes", code="key_required")
    since, until = (_timestamp(name) for name in ("since", "until"))
    rows = services_of_app().outcomes.list(principal.brand, since, until)
    return jsonify(schemas.Outcomes(outcomes=[_outcome_out(row, cid, principal.brand)
                                              for row, cid in rows]).model_dump())


def _outcome_out(outcome: Outcome, conversation_id: str, brand: Brand) -> schemas.OutcomeOut:
    return schemas.OutcomeOut.model_validate(outcome_json(outcome, conversation_id, brand))


def _timestamp(name: str) -> dt.datetime | None:
    """A query parameter in ISO 8601, as naive UTC (how the database stores times)."""
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"{name}: not an ISO 8601 time", param=name) from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


#: Longest a client may hold the events stream open waiting for a message.
MAX_EVENTS_WAIT_S = 30.0
_EVENTS_POLL_S = 0.5


@bp.get("/conversations/<conversation_id>/events")
def conversation_events(conversation_id: str) -> Response:
    """Server-Sent Events of messages added after `after` (a message id): how a channel
    receives what a human agent writes. Each `message` event is a transcript message; the
    stream ends after the first batch, or with a `ping` after `wait` seconds (default 25,
    at most 30); the client reconnects with the last id it saw."""
    principal = current_principal()
    principal.check_conversation(conversation_id)
    services = services_of_app()
    conversation = services.conversations.get(principal.brand, conversation_id)
    try:
        wait = float(request.args.get("wait", "25"))
    except ValueError:
        raise InvalidRequest("wait: a number of seconds", param="wait") from None
    if not 0 <= wait <= MAX_EVENTS_WAIT_S:
        raise InvalidRequest(f"wait: 0 to {MAX_EVENTS_WAIT_S:g} seconds", param="wait")
    after = request.args.get("after")
    if after is not None and not Message.select().where(
            (Message.public_id == after) & (Message.conversation == conversation)).exists():
        raise InvalidRequest("after: not a message of this conversation", param="after")

    def newer() -> list[Message]:
        messages = services.conversations.messages(conversation)
        ids = [m.public_id for m in messages]
        return messages[ids.index(after) + 1:] if after in ids else messages

    close = event_streams().open(principal.bucket)

    def events() -> Iterator[str]:
        deadline = time.monotonic() + wait
        while True:
            batch = newer()
            if batch:
                fresh = Conversation.get_by_id(conversation.id)
                fresh.brand = principal.brand
                view = services.conversations.customer_view(fresh)
                for message in batch:
                    yield _sse("message", _message_out(message, view).model_dump())
                return
            if time.monotonic() >= deadline:
                yield _sse("ping", {})
                return
            time.sleep(_EVENTS_POLL_S)

    response = Response(
        stream_with_context(events()), mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    # The server closes every response it sent, or began to: the stream's count ends then.
    response.call_on_close(close)
    return response


def _message_out(m: Message, view: Callable[[Any], Any]) -> schemas.MessageOut:
    text = view(m.text)
    return schemas.MessageOut.model_validate({
        "id": m.public_id, "role": m.role, "text": text,
        "html": str(message_html(text, m.role)), "model": m.model,
        "created_at": _iso(m.created_at) or "", "citations": m.citations or [],
        "author": m.author,
    })


def _metrics_reader() -> Principal:
    """The request's API key: a widget token cannot read metrics."""
    principal = current_principal()
    if principal.conversation_id is not None:
        raise PermissionDenied("a widget token cannot read metrics", code="key_required")
    return principal


@bp.get("/metrics/escalations")
def escalation_metrics() -> Response:
    """The brand's escalation rate by reason and workflow, and time to a human."""
    principal = _metrics_reader()
    try:
        days = int(request.args.get("days", "30"))
    except ValueError:
        raise InvalidRequest("days: must be a whole number", param="days") from None
    if not 1 <= days <= 366:
        raise InvalidRequest("days: between 1 and 366", param="days")
    stats = services_of_app().handoffs.stats(principal.brand, days=days)
    return jsonify(schemas.EscalationStats.model_validate(stats).model_dump())


@bp.get("/metrics/summary")
def metrics_summary() -> Response:
    """The brand's report over a date range (appliance/reporting.py)."""
    principal = _metrics_reader()
    period = DateRange.parse(request.args.get("since"), request.args.get("until"))
    report = services_of_app().reports.summary(principal.brand, period,
                                               request.args.get("group_by"))
    return jsonify(schemas.MetricsSummary.model_validate(report.as_json()).model_dump())


@bp.get("/metrics/unanswered")
def metrics_unanswered() -> Response:
    """The brand's unanswered questions over a date range, grouped (appliance/reporting.py)."""
    principal = _metrics_reader()
    period = DateRange.parse(request.args.get("since"), request.args.get("until"))
    found = services_of_app().reports.unanswered(principal.brand, period)
    return jsonify(schemas.Unanswered.model_validate(found.as_json()).model_dump())


@bp.post("/conversations/<conversation_id>/close")
def close_conversation(conversation_id: str) -> Response:
    principal = current_principal()
    principal.check_conversation(conversation_id)
    conversation = services_of_app().conversations.close(principal.brand, conversation_id)
    return jsonify(schemas.ConversationStatus(
        id=conversation.public_id, status=conversation.status,
        status_reason=conversation.status_reason).model_dump())


@bp.post("/conversations/<conversation_id>/messages")
def post_message(conversation_id: str) -> Response:
    """One turn. With an Idempotency-Key, a retry gets the stored reply and a key reused
    for another request is a 409 (appliance/idempotency.py)."""
    principal = current_principal()
    principal.check_conversation(conversation_id)
    body = _body(schemas.PostMessage)
    services = services_of_app()
    claim: Claim | None = None
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None:
        held = services.idempotency.claim(principal.brand, key,
                                          fingerprint(conversation_id, body.model_dump()))
        if isinstance(held, Replay):
            return _replayed(held)
        claim = held
    turn = _claimed_turn(claim, lambda on_persist: services.conversations.reply(
        principal.brand, conversation_id, body.text, on_persist=on_persist))
    if request.accept_mimetypes.best == "text/event-stream":
        return _sse_response(turn)
    for event in turn:
        if isinstance(event, TurnResult):
            return jsonify(_reply_body(event))
    raise AssertionError("turn ended without a result")


Turn = Iterator[TextDelta | TurnResult]


def _claimed_turn(claim: Claim | None,
                  start: Callable[[Callable[[TurnResult], None] | None], Turn]) -> Turn:
    """The turn `start` begins, its reply stored under the claim's key in the turn's own
    transaction; a turn that fails or is abandoned before its result releases the claim."""
    if claim is None:
        return start(None)
    try:
        # The stored reply keeps the placeholders the transcript keeps.
        turn = start(lambda result: claim.complete(200, _reply_body(result, stored=True)))
    except BaseException:
        claim.release()
        raise

    def settled() -> Turn:
        finished = False
        try:
            for event in turn:
                finished = finished or isinstance(event, TurnResult)
                yield event
        finally:
            if not finished:
                claim.release()

    return settled()


def _replayed(replay: Replay) -> Response:
    """The stored reply of an Idempotency-Key, as JSON or as one SSE `message` event."""
    if request.accept_mimetypes.best == "text/event-stream":
        response = Response(_sse("message", replay.body), mimetype="text/event-stream",
                            headers={"Cache-Control": "no-cache"})
    else:
        response = jsonify(replay.body)
    response.status_code = replay.status
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _reply_body(result: TurnResult, stored: bool = False) -> dict[str, Any]:
    """The reply as the customer sees it, or (`stored`) with the placeholders of the
    transcript."""
    message = result.message
    text = message.text if stored else result.text
    return schemas.MessageReply(
        message=schemas.AgentMessage(
            id=message.public_id, role="agent", text=text,
            html=str(message_html(text, message.role)), model=message.model or "",
            latency_ms=result.latency_ms["total"], fallback=result.fallback,
            confidence="degraded" if result.fallback else "normal",
            citations=message.citations or [],
        ),
        conversation=schemas.ConversationStatus(
            id=result.conversation.public_id, status=result.conversation.status,
            status_reason=result.conversation.status_reason),
        usage=schemas.Usage(**result.usage),
    ).model_dump()


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _sse_response(turn: Iterator[Any]) -> Response:
    """Stream `delta` events with text, then one `message` event with the JSON reply body.

    The `message` event's text is authoritative: the checks on the draft may change it.
    An error after the stream started arrives as an `error` event in the one error shape.
    """
    rid = request_id()
    # The first event is read before the response starts: a turn refused before it
    # generates anything (the model's queue is full: 503 overloaded) is a plain error
    # response with its status and Retry-After.
    first = next(turn)

    def events() -> Iterator[str]:
        try:
            for event in itertools.chain([first], turn):
                if isinstance(event, TurnResult):
                    yield _sse("message", _reply_body(event))
                else:
                    yield _sse("delta", {"text": event.text})
        except ApplianceError as exc:
            yield _sse("error", exc.to_body(rid))
        except Exception:
            log.exception("request %s failed while streaming", rid)
            yield _sse("error", ApplianceError("The server had an internal error.").to_body(rid))

    return Response(
        stream_with_context(events()), mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
