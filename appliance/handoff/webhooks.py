"""Signed webhooks to a brand's helpdesk: endpoints, a transactional outbox, delivery with
retries, and what a receiver needs to check a signature. See docs/webhooks.md.

The contract in three lines:
- `enqueue` stores one delivery per active endpoint subscribed to the event and sends nothing.
  It must run inside the caller's transaction, so the event exists exactly when the change that
  caused it does (a rollback takes both away).
- `deliver_due`, run by the scheduler's `webhooks.deliver` job, sends what is due. Each delivery
  is claimed by one conditional UPDATE first, so concurrent runs never send the same one at once.
- A failed attempt (not a 2xx, a timeout, a refused connection) is retried with exponential
  backoff until `max_attempts`; then the delivery is `failed`. Nothing here raises out of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import random
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import peewee

from appliance import audit, metrics
from appliance.db.models import Brand, Conversation, WebhookDelivery, WebhookEndpoint, utcnow
from appliance.errors import InvalidRequest, NotFound

log = logging.getLogger(__name__)

EVENTS = ("handoff.created", "handoff.resolved", "evals.regressed")
ENVELOPE_KEYS = frozenset({"version", "id", "event", "created_at", "brand"})
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
PAYLOAD_VERSION = 1
SECRET_PREFIX = "whsec_"
BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 3600.0
#: A claim lasts three timeouts (connect, send, wait for the answer) plus this margin; a sender
#: that died mid-attempt leaves the delivery to be tried again once the claim has run out.
CLAIM_MARGIN_S = 60.0
_ERROR_CHARS = 200
_SNIPPET_BYTES = 80
_TAG_UNSAFE = re.compile(r"[^a-z0-9_:-]+")

Endpoints = list[WebhookEndpoint]
Deliveries = list[WebhookDelivery]


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """The signature header value: `v1=` + hex HMAC-SHA256(secret, "{timestamp}.{body}")."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + raw, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify_signature(
    secret: str, timestamp: int | str, body: bytes | str, header: str,
    tolerance_s: float = 300, now: float | None = None,
) -> bool:
    """True when `header` (X-Switchboard-Signature) signs `body` with `secret` and the
    timestamp (X-Switchboard-Timestamp, unix seconds) is within `tolerance_s` of `now`.

    `body` must be the raw request body as received, not re-serialised JSON. The header may list
    several comma-separated signatures; any valid `v1=` one is enough.
    """
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).encode("utf-8")
    matches = [hmac.compare_digest(part.strip().encode("utf-8"), expected)
               for part in header.split(",")]
    return any(matches)


def backoff(attempts: int, rng: random.Random | None = None) -> dt.timedelta:
    """The wait after the `attempts`-th failed attempt: 30 s doubling each time, up to 10 %
    jitter so failed deliveries do not retry in lockstep, never more than an hour."""
    base = BACKOFF_BASE_S * 2 ** min(attempts - 1, 32)
    jitter = (rng or random).uniform(1.0, 1.1)
    return dt.timedelta(seconds=min(base * jitter, BACKOFF_CAP_S))


@dataclass(frozen=True)
class Attempt:
    """How one POST went: `status` is the HTTP status when one came back."""

    ok: bool
    status: int | None = None
    error: str | None = None


class WebhookService:
    """A brand's webhook endpoints, the outbox of deliveries to them, and sending it.

    Endpoint changes are audited; secrets are never logged or audited. `deliver_due` never
    raises for a receiver's failure; database errors propagate (the job records them).
    """

    def __init__(
        self, db: peewee.Database, *, timeout_s: float = 10.0, max_attempts: int = 8,
        console_url: str = "", transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._db = db
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._console_url = console_url.rstrip("/")
        self._transport = transport

    # --- endpoints ------------------------------------------------------------------------

    def add(
        self, brand: Brand, url: str, events: Sequence[str] = EVENTS, *,
        actor: str, remote_addr: str | None = None,
    ) -> tuple[WebhookEndpoint, str]:
        """Register an endpoint; return it and its signing secret (show the secret once)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidRequest("url: must be an http:// or https:// URL", param="url")
        wanted = list(dict.fromkeys(events))
        unknown = [event for event in wanted if event not in EVENTS]
        if not wanted or unknown:
            raise InvalidRequest(f"events: choose from {', '.join(EVENTS)}", param="events")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        with self._db.atomic():
            endpoint = WebhookEndpoint.create(brand=brand, url=url, secret=secret, events=wanted,
                                              created_by=actor)
            audit.record(actor, "webhook.add", brand.slug,
                         {"endpoint_id": endpoint.id, "url": url, "events": wanted}, remote_addr)
        return endpoint, secret

    def list(self, brand: Brand) -> Endpoints:
        """The brand's endpoints, active and disabled, oldest first."""
        return list(WebhookEndpoint.select().where(WebhookEndpoint.brand == brand.id)
                    .order_by(WebhookEndpoint.id))

    def get(self, brand: Brand, endpoint_id: int) -> WebhookEndpoint:
        endpoint = WebhookEndpoint.get_or_none((WebhookEndpoint.id == endpoint_id)
                                               & (WebhookEndpoint.brand == brand.id))
        if endpoint is None:
            raise NotFound(f"no webhook endpoint {endpoint_id} for brand {brand.slug!r}",
                           code="webhook_not_found")
        return endpoint

    def disable(self, brand: Brand, endpoint_id: int, *, actor: str,
                remote_addr: str | None = None) -> WebhookEndpoint:
        """Stop sending to an endpoint; its pending deliveries are marked failed."""
        with self._db.atomic():
            endpoint = self.get(brand, endpoint_id)
            if endpoint.active:
                endpoint.active = False
                endpoint.disabled_at = utcnow()
                endpoint.save()
                WebhookDelivery.update(status=FAILED, last_error="endpoint disabled").where(
                    (WebhookDelivery.endpoint == endpoint.id)
                    & (WebhookDelivery.status == PENDING)).execute()
                audit.record(actor, "webhook.disable", brand.slug,
                             {"endpoint_id": endpoint.id}, remote_addr)
        return endpoint

    # --- the outbox -----------------------------------------------------------------------

    def conversation_ref(self, conversation: Conversation) -> dict[str, Any]:
        """The payload's `conversation` object, linking its page in the admin console."""
        return {
            "id": conversation.public_id,
            "channel": conversation.channel,
            "status": conversation.status,
            "url": f"{self._console_url}/admin/conversations/{conversation.public_id}",
        }

    def console_link(self, path: str) -> str:
        """`path` (an admin page, /admin/...) under `webhook_console_url`, for a payload."""
        return f"{self._console_url}{path}"

    def enqueue(self, brand: Brand, event: str, data: Mapping[str, Any]) -> Deliveries:
        """Store `event` for every active endpoint of the brand subscribed to it.

        Call inside the transaction that makes the change the event reports (RuntimeError
        otherwise). `data` holds the event's own keys (for handoffs: conversation, handoff),
        JSON-serialisable (TypeError otherwise); the envelope adds version, id, event,
        created_at and brand.
        """
        if event not in EVENTS:
            raise InvalidRequest(f"unknown webhook event {event!r}", param="event")
        if clash := ENVELOPE_KEYS.intersection(data):
            raise InvalidRequest(f"webhook data may not set {', '.join(sorted(clash))}")
        if not self._db.in_transaction():
            raise RuntimeError("enqueue webhooks inside the transaction of the change they "
                               "report (db.atomic())")
        endpoints = [endpoint for endpoint in WebhookEndpoint.select().where(
            (WebhookEndpoint.brand == brand.id) & WebhookEndpoint.active)
            if event in endpoint.events]
        if not endpoints:
            return []
        now = utcnow()
        envelope = {
            "version": PAYLOAD_VERSION,
            "id": "evt_" + secrets.token_hex(12),
            "event": event,
            "created_at": now.isoformat(timespec="seconds") + "Z",
            "brand": {"slug": brand.slug, "name": brand.name},
            **data,
        }
        body = json.dumps(envelope, separators=(",", ":"))
        with self._db.atomic():
            return [WebhookDelivery.create(
                public_id="whd_" + secrets.token_hex(12), endpoint=endpoint, brand=brand.id,
                event_id=envelope["id"], event=event, body=body, status=PENDING,
                next_attempt_at=now, created_at=now) for endpoint in endpoints]

    def enqueue_handoff(self, conversation: Conversation, handoff: Mapping[str, Any],
                        event: str = "handoff.created") -> Deliveries:
        """`enqueue` a handoff event: `handoff` is the packet the human agent works from, with
        its `id`. Call after the conversation's status changed, in the same transaction."""
        data = {"conversation": self.conversation_ref(conversation), "handoff": dict(handoff)}
        if handoff.get("id"):
            data["handoff"]["console_url"] = f"{self._console_url}/admin/handoffs/{handoff['id']}"
        return self.enqueue(conversation.brand, event, data)

    def deliveries(self, brand: Brand, limit: int = 50) -> Deliveries:
        """The brand's most recent deliveries, newest first, with their endpoints."""
        return list(WebhookDelivery.select(WebhookDelivery, WebhookEndpoint)
                    .join(WebhookEndpoint).where(WebhookDelivery.brand == brand.id)
                    .order_by(WebhookDelivery.id.desc()).limit(limit))

    # --- sending --------------------------------------------------------------------------

    def deliver_due(self, now: dt.datetime | None = None, limit: int = 50) -> dict[str, int]:
        """Send up to `limit` due deliveries, one attempt each; return how they went:
        {"delivered", "retrying", "failed", "skipped" (claimed by another sender)}.

        `now` (naive UTC; tests pass a fake clock) is the time for what is due, claims and
        retries; by default the real time at each delivery, so a long run's later claims do not
        expire early. The signature timestamp is always the real time: receivers check it.
        """
        def clock() -> dt.datetime:
            return now or utcnow()

        summary = {"delivered": 0, "retrying": 0, "failed": 0, "skipped": 0}
        due = list(WebhookDelivery.select(WebhookDelivery.id, WebhookDelivery.attempts)
                   .where((WebhookDelivery.status == PENDING)
                          & (WebhookDelivery.next_attempt_at <= clock()))
                   .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit))
        if not due:
            return summary
        with httpx.Client(timeout=self._timeout_s, transport=self._transport) as client:
            for row in due:
                delivery = self._claim(row.id, row.attempts, clock())
                if delivery is None:
                    summary["skipped"] += 1
                    continue
                endpoint = delivery.endpoint
                if endpoint.active:
                    attempt = self._post(client, endpoint, delivery)
                else:
                    attempt = Attempt(False, error="endpoint disabled")
                summary[self._record(delivery, attempt, clock(), final=not endpoint.active)] += 1
        return summary

    def _claim(self, delivery_id: int, attempts: int, now: dt.datetime
               ) -> WebhookDelivery | None:
        """Count the attempt and push the delivery out of reach of other senders, in one
        UPDATE guarded by the attempts seen; exactly one sender matches the row."""
        lease = dt.timedelta(seconds=3 * self._timeout_s + CLAIM_MARGIN_S)
        claimed = WebhookDelivery.update(
            attempts=WebhookDelivery.attempts + 1, next_attempt_at=now + lease,
        ).where((WebhookDelivery.id == delivery_id) & (WebhookDelivery.attempts == attempts)
                & (WebhookDelivery.status == PENDING)
                & (WebhookDelivery.next_attempt_at <= now)).execute()
        if claimed != 1:
            return None
        delivery: WebhookDelivery = (WebhookDelivery.select(WebhookDelivery, WebhookEndpoint)
                                     .join(WebhookEndpoint)
                                     .where(WebhookDelivery.id == delivery_id).get())
        return delivery

    def _post(self, client: httpx.Client, endpoint: WebhookEndpoint,
              delivery: WebhookDelivery) -> Attempt:
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Switchboard-Webhooks/1",
            "X-Switchboard-Event": delivery.event,
            "X-Switchboard-Delivery": delivery.public_id,
            "X-Switchboard-Timestamp": str(timestamp),
            "X-Switchboard-Signature": sign(endpoint.secret, timestamp, delivery.body),
        }
        try:
            with client.stream("POST", endpoint.url, content=delivery.body.encode("utf-8"),
                               headers=headers) as response:
                if 200 <= response.status_code < 300:
                    return Attempt(True, response.status_code)
                return Attempt(False, response.status_code,
                               f"HTTP {response.status_code}{_snippet(response)}")
        except httpx.TimeoutException:
            return Attempt(False, error=f"timeout after {self._timeout_s:g} s")
        except httpx.ConnectError as exc:
            return Attempt(False, error=f"connection failed: {exc}")
        except httpx.HTTPError as exc:
            return Attempt(False, error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a receiver's failure must never stop the other deliveries
            log.exception("webhook delivery %s failed unexpectedly", delivery.public_id)
            return Attempt(False, error=type(exc).__name__)

    def _record(self, delivery: WebhookDelivery, attempt: Attempt, now: dt.datetime, *,
                final: bool = False) -> str:
        """Store the attempt's outcome; return delivered, retrying or failed."""
        changes: dict[Any, Any] = {WebhookDelivery.last_status: attempt.status,
                                   WebhookDelivery.last_error: _short(attempt.error)}
        if attempt.ok:
            outcome = DELIVERED
            changes[WebhookDelivery.delivered_at] = now
        elif final or delivery.attempts >= self._max_attempts:
            outcome = FAILED
        else:
            outcome = "retrying"
            changes[WebhookDelivery.next_attempt_at] = now + backoff(delivery.attempts)
        changes[WebhookDelivery.status] = PENDING if outcome == "retrying" else outcome
        metrics.record_webhook_delivery(outcome)
        level = logging.INFO if attempt.ok else logging.WARNING
        log.log(level, "webhook %s %s to endpoint %s: attempt %d %s%s", delivery.public_id,
                delivery.event, delivery.endpoint_id, delivery.attempts, outcome,
                f" ({attempt.error})" if attempt.error else "")
        # Guarded like the claim: a sender whose claim ran out does not overwrite a newer one.
        WebhookDelivery.update(changes).where(
            (WebhookDelivery.id == delivery.id)
            & (WebhookDelivery.attempts == delivery.attempts)).execute()
        return outcome


def _snippet(response: httpx.Response) -> str:
    """The start of an error answer's body, for the operator (bodies are read no further)."""
    try:
        head = next(response.iter_bytes(_SNIPPET_BYTES), b"")[:_SNIPPET_BYTES]
    except httpx.HTTPError:
        return ""
    text = " ".join(head.decode("utf-8", errors="replace").split())
    return f": {text}" if text else ""


def _short(error: str | None) -> str | None:
    if error is None:
        return None
    return error if len(error) <= _ERROR_CHARS else error[: _ERROR_CHARS - 1] + "…"


# --- Zendesk -------------------------------------------------------------------------------

#: Handoff reasons (the supervisor's rule names) that make a ticket more urgent than normal.
PRIORITY_BY_REASON = {"frustration_high": "high", "frustration_rising": "high"}


def zendesk_ticket(payload: Mapping[str, Any],
                   field_ids: Mapping[str, int] | None = None) -> dict[str, Any]:
    """A Zendesk "create ticket" body (`POST /api/v2/tickets`) for a handoff.created payload.

    Custom fields are conversation_id, sentiment and order_id; `field_ids` maps each to the
    numeric id of the Zendesk account's custom field (unmapped ones keep their name as id).
    """
    handoff = payload.get("handoff") or {}
    conversation = payload.get("conversation") or {}
    brand = payload.get("brand") or {}
    reason = str(handoff.get("reason") or "handoff")
    intent = _name(handoff.get("intent")) or _name(handoff.get("workflow"))
    workflow = handoff.get("workflow") or {}
    customer = handoff.get("customer") or {}
    sentiment = handoff.get("sentiment") or {}
    subject = f"[{brand.get('name', '')}] Handoff: {reason.replace('_', ' ')}"
    if intent:
        subject += f" — {intent.replace('_', ' ')}"
    summary = str(handoff.get("summary") or "No summary.")
    ticket: dict[str, Any] = {
        "subject": subject,
        "comment": {"body": f"{summary}\n\nConversation: {conversation.get('url', '')}"},
        "priority": PRIORITY_BY_REASON.get(reason, "normal"),
        "external_id": conversation.get("id"),
        "tags": [tag for tag in (_tag(brand.get("slug")), _tag(reason),
                                 _tag(_name(workflow))) if tag],
    }
    if customer.get("email"):
        ticket["requester"] = {"name": customer.get("name") or customer["email"],
                               "email": customer["email"]}
    fields = {"conversation_id": conversation.get("id"),
              "sentiment": sentiment.get("label") if isinstance(sentiment, Mapping) else sentiment,
              "order_id": (workflow.get("slots") or {}).get("order_id")
              if isinstance(workflow, Mapping) else None}
    ids = field_ids or {}
    ticket["custom_fields"] = [{"id": ids.get(name, name), "value": value}
                               for name, value in fields.items() if value is not None]
    return {"ticket": ticket}


def _name(value: Any) -> str:
    """An intent or workflow given as a name or as an object with a `name`."""
    if isinstance(value, Mapping):
        value = value.get("name")
    return str(value) if value else ""


def _tag(value: Any) -> str:
    """Zendesk tags are single lowercase words."""
    return _TAG_UNSAFE.sub("_", str(value or "").lower()).strip("_")
