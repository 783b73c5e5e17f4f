"""What the handoff pages show: who may work a handoff, how long it has waited, and the
handoff packet and the numbers read for a person.

Packets are stored JSON (appliance/handoff/packet.py); `packet_view` reads what is there and
leaves out what a packet lacks, so an older or partial packet still renders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from appliance.db.models import AdminUser, Handoff, Message
from appliance.handoff.packet import reason_text
from appliance.handoff.service import ASSIGNED
from appliance.web import services_of_app

#: Who may take, answer, hand back and resolve handoffs; viewers only read.
WORK_ROLES = ("it_admin", "cx_editor", "human_agent")
#: Frustration moving less than this over the conversation reads as steady.
TREND_STEP = 0.1


def brand_ids_of(user: AdminUser) -> list[int] | None:
    """The brands whose handoffs `user` may see: theirs if scoped to one, else all (None)."""
    return None if user.brand_id is None else [user.brand_id]


def handoff_for(user: AdminUser, public_id: str) -> Handoff:
    """The handoff `public_id` if it belongs to a brand this user may see; NotFound
    otherwise (another brand's handoff looks exactly like a missing one)."""
    return services_of_app().handoffs.get(public_id, brand_ids=brand_ids_of(user))


def may_work(user: AdminUser) -> bool:
    return user.role in WORK_ROLES


def is_mine(handoff: Handoff, user: AdminUser) -> bool:
    return handoff.status == ASSIGNED and handoff.assigned_to_id == user.id


def usernames(handoffs: Iterable[Handoff]) -> dict[int, str]:
    """The usernames of the agents these handoffs are assigned to, in one query."""
    return services_of_app().users.usernames(
        h.assigned_to_id for h in handoffs if h.assigned_to_id is not None)


def duration(seconds: float | None) -> str:
    """A span of time as a person reads it: '45 s', '12 min', '3 h 5 min', '2 d 4 h'."""
    if seconds is None:
        return "—"
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def waited(handoff: Handoff, now: dt.datetime) -> str:
    """How long since the agent handed off (stored times are naive UTC)."""
    return duration((now - handoff.created_at).total_seconds())


@dataclass(frozen=True)
class PacketView:
    """The packet's sections as the console shows them; empty where the packet lacks one."""

    reason_text: str
    customer_name: str | None
    customer_id: str | None
    customer_email: str | None
    verified: bool
    intent: str | None
    intent_confidence: float | None
    #: The intent was below the brand's threshold: shown as unclear, never named.
    intent_unclear: bool
    workflow: str | None
    workflow_status: str | None
    slots: tuple[tuple[str, str], ...]
    asked: str | None
    #: (tool, status, code, at) per call into the brand's systems.
    actions: tuple[tuple[str, str, str | None, str], ...]
    #: (title, location) per article the agent cited.
    knowledge: tuple[tuple[str, str | None], ...]
    sentiment: str | None
    #: Frustration per customer turn, 0..1.
    trajectory: tuple[float, ...]
    next_step: str | None

    @property
    def trend(self) -> str | None:
        """'rising', 'falling' or 'steady' over the conversation; None under two turns."""
        if len(self.trajectory) < 2:
            return None
        change = self.trajectory[-1] - self.trajectory[0]
        if abs(change) < TREND_STEP:
            return "steady"
        return "rising" if change > 0 else "falling"


def _section(packet: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = packet.get(key)
    return cast(Mapping[str, Any], value) if isinstance(value, Mapping) else {}


def _items(packet: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = packet.get(key)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _text(value: Any) -> str:
    """A slot's value: nested values (an address, a list of items) on one line."""
    if isinstance(value, Mapping):
        return ", ".join(f"{_label(str(k))}: {_text(v)}" for k, v in value.items()
                         if v not in (None, ""))
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _label(key: str) -> str:
    return key.replace("_", " ")


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def packet_view(handoff: Handoff) -> PacketView:
    packet: Mapping[str, Any] = handoff.packet if isinstance(handoff.packet, Mapping) else {}
    customer = _section(packet, "customer")
    intent = _section(packet, "intent")
    workflow = _section(packet, "workflow")
    sentiment = _section(packet, "sentiment")
    slots = workflow.get("slots")
    trajectory = sentiment.get("trajectory")
    return PacketView(
        reason_text=str(packet.get("reason_text") or reason_text(handoff.reason)),
        customer_name=_str(customer.get("name")),
        customer_id=_str(customer.get("id")),
        customer_email=_str(customer.get("email")),
        verified=bool(customer.get("verified")),
        intent=_str(intent.get("name")),
        intent_confidence=_float(intent.get("confidence")),
        intent_unclear=bool(intent.get("unclear")),
        workflow=_str(workflow.get("name")) or handoff.workflow,
        workflow_status=_str(workflow.get("status")),
        slots=tuple((_label(str(key)), _text(value))
                    for key, value in (slots.items() if isinstance(slots, Mapping) else ())
                    if value not in (None, "", [], {})),
        asked=_str(workflow.get("asked")),
        actions=tuple((str(a.get("tool") or "?"), str(a.get("status") or "?"),
                       _str(a.get("code")), str(a.get("at") or ""))
                      for a in _items(packet, "actions")),
        knowledge=tuple((str(k.get("title") or k.get("location") or "untitled"),
                         _str(k.get("location"))) for k in _items(packet, "knowledge")),
        sentiment=_str(sentiment.get("label")),
        trajectory=tuple(value for value in (
            _float(point) for point in (trajectory if isinstance(trajectory, list) else ()))
            if value is not None),
        next_step=_str(packet.get("suggested_next_step")),
    )


@dataclass(frozen=True)
class StatsView:
    """`HandoffService.stats` as the review page shows it."""

    days: int
    conversations: int
    handoffs: int
    #: The escalation rate in percent, one decimal.
    rate: str
    #: (reason, reason in words, count), most frequent first.
    by_reason: tuple[tuple[str, str, int], ...]
    by_workflow: tuple[tuple[str, int], ...]
    median: str
    max: str
    taken: int
    waiting: int


def stats_view(stats: Mapping[str, Any]) -> StatsView:
    times = _section(stats, "time_to_human_s")
    reasons = _section(stats, "by_reason")
    workflows = _section(stats, "by_workflow")
    return StatsView(
        days=int(stats.get("days") or 0),
        conversations=int(stats.get("conversations") or 0),
        handoffs=int(stats.get("handoffs") or 0),
        rate=f"{float(stats.get('escalation_rate') or 0.0) * 100:.1f}",
        by_reason=tuple((str(reason), reason_text(str(reason)), int(count))
                        for reason, count in reasons.items()),
        by_workflow=tuple((str(name), int(count)) for name, count in workflows.items()),
        median=duration(_float(times.get("median"))),
        max=duration(_float(times.get("max"))),
        taken=int(times.get("taken") or 0),
        waiting=int(stats.get("waiting") or 0),
    )


def handoff_marker(messages: Sequence[Message], handoff: Handoff) -> int:
    """Where in the transcript the agent handed off: the index of the first message written
    after the handoff (len(messages) when none was)."""
    for index, message in enumerate(messages):
        if message.created_at > handoff.created_at:
            return index
    return len(messages)
