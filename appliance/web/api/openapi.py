"""The OpenAPI 3.1 document of /v1, built from the pydantic schemas."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

from appliance import __version__
from appliance.web.api import schemas

_MODELS: tuple[type[BaseModel], ...] = (
    schemas.CreateConversation, schemas.PostMessage, schemas.ConversationCreated,
    schemas.MessageReply, schemas.Transcript, schemas.ConversationStatus, schemas.ErrorBody,
    schemas.EscalationStats, schemas.PostFeedback, schemas.FeedbackOut, schemas.Outcomes,
    schemas.MetricsSummary, schemas.Unanswered,
)
_ERRORS = {
    "400": "Malformed JSON, a missing or wrong-typed field",
    "401": "Missing, wrong or revoked key",
    "404": "No such conversation for this key (other brands' look the same)",
    "409": "The conversation is closed; or the Idempotency-Key was used for another request "
           "(idempotency_conflict) or its request is still running (idempotency_in_progress, "
           "with Retry-After)",
    "413": "The body or the message text is over the size limit",
    "429": "Over the rate of the key, the widget token or the client address (rate_limited); "
           "Retry-After says when to try again",
    "503": "The box is saturated (overloaded): the model queue is full or its wait exceeds the "
           "turn budget, or the event streams are at their cap; Retry-After says when to try "
           "again",
}
#: Statuses whose responses carry Retry-After.
_RETRY_AFTER = {"409", "429", "503"}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Any unique string (printable ASCII). A retry with the same key and body "
                   "gets the original reply (header Idempotent-Replayed: true) and never runs "
                   "the turn twice; the key with another body is a 409 idempotency_conflict. "
                   "Keys are kept 24 hours, per brand.",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _op(summary: str, ok: str, model: type[BaseModel], *, body: type[BaseModel] | None = None,
        auth: bool = True, sse: bool = False, conv: bool = False,
        idempotent: bool = False) -> dict[str, Any]:
    content = _json(model)
    if sse:
        content["text/event-stream"] = {
            "schema": {"type": "string"},
            "description": "`delta` events `{text}`, then one `message` event with the JSON "
                           "body; an `error` event in the error shape if the turn fails.",
        }
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {ok: {"description": "OK", "content": content}} | {
            status: {"description": text, "content": _json(schemas.ErrorBody)}
            | ({"headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1},
                                            "description": "Seconds to wait"}}}
               if status in _RETRY_AFTER else {})
            for status, text in _ERRORS.items()
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(body)}
    if conv:
        op["parameters"] = [{"name": "conversation_id", "in": "path", "required": True,
                             "schema": {"type": "string"}}]
    if idempotent:
        op["parameters"] = [*op.get("parameters", []), _IDEMPOTENCY_KEY]
    if not auth:
        op["security"] = []
    return op


@cache
def openapi_document() -> dict[str, Any]:
    components = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    conversation = "/v1/conversations/{conversation_id}"
    return {
        "openapi": "3.1.0",
        "info": {"title": "Switchboard appliance API", "version": __version__},
        "components": {
            "schemas": components,
            "securitySchemes": {"brandKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"brandKey": []}],
        "paths": {
            "/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                                         "responses": {"200": {"description": "OK"}}}},
            "/v1/conversations": {"post": _op(
                "Open a conversation", "201", schemas.ConversationCreated,
                body=schemas.CreateConversation)},
            "/v1/widget/{slug}/conversations": {"post": _op(
                "Open a conversation from the chat widget (public; returns a scoped token)",
                "201", schemas.ConversationCreated, body=schemas.CreateConversation, auth=False)
                | {"parameters": [{"name": "slug", "in": "path", "required": True,
                                   "schema": {"type": "string"}}]}},
            conversation: {"get": _op("The transcript", "200", schemas.Transcript, conv=True)},
            f"{conversation}/messages": {"post": _op(
                "Send the customer's message; get the agent's reply (JSON or SSE stream)",
                "200", schemas.MessageReply, body=schemas.PostMessage, sse=True, conv=True,
                idempotent=True)},
            f"{conversation}/feedback": {"post": _op(
                "The customer's feedback: did it solve it, and a 1-5 rating (the latest "
                "counts)", "200", schemas.FeedbackOut, body=schemas.PostFeedback, conv=True)},
            "/v1/outcomes": {"get": _op(
                "The brand's outcomes attributed in [since, until) (ISO 8601), oldest first",
                "200", schemas.Outcomes)
                | {"parameters": [{"name": name, "in": "query", "required": False,
                                   "schema": {"type": "string", "format": "date-time"}}
                                  for name in ("since", "until")]}},
            f"{conversation}/close": {"post": _op(
                "Close the conversation", "200", schemas.ConversationStatus, conv=True)},
            f"{conversation}/events": {"get": {
                "summary": "Server-Sent Events of messages after `after` (e.g. a human "
                           "agent's replies); ends after the first batch or a `ping` after "
                           "`wait` seconds",
                "parameters": [
                    {"name": "conversation_id", "in": "path", "required": True,
                     "schema": {"type": "string"}},
                    {"name": "after", "in": "query", "required": False,
                     "schema": {"type": "string"}},
                    {"name": "wait", "in": "query", "required": False,
                     "schema": {"type": "number", "minimum": 0, "maximum": 30}}],
                "responses": {"200": {"description": "OK", "content": {
                    "text/event-stream": {"schema": {"type": "string"}}}}}}},
            "/v1/metrics/escalations": {"get": _op(
                "Escalation rate by reason and workflow, and time to a human (last `days`, "
                "default 30)", "200", schemas.EscalationStats)
                | {"parameters": [{"name": "days", "in": "query", "required": False,
                                   "schema": {"type": "integer", "minimum": 1,
                                              "maximum": 366}}]}},
            "/v1/metrics/summary": {"get": _op(
                "The brand's outcomes, rates, CSAT, handoff reasons, workflow funnels and "
                "billing over [since, until) (ISO 8601 dates or times; a date as `until` "
                "counts that whole day; at most 366 days; default the last 30 days), per day "
                "or workflow with `group_by`", "200", schemas.MetricsSummary)
                | {"parameters": [
                    *({"name": name, "in": "query", "required": False,
                       "schema": {"type": "string"}} for name in ("since", "until")),
                    {"name": "group_by", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["day", "workflow"]}}]}},
            "/v1/metrics/unanswered": {"get": _op(
                "The brand's customer messages the agent could not answer over [since, "
                "until) (as for /v1/metrics/summary), grouped by meaning, biggest first",
                "200", schemas.Unanswered)
                | {"parameters": [{"name": name, "in": "query", "required": False,
                                   "schema": {"type": "string"}}
                                  for name in ("since", "until")]}},
        },
    }
