"""The handoff packet: what a human agent needs to take over without asking again.

A versioned JSON structure built from the conversation's record (its workflow state, turn
traces, tool calls and messages) at the moment of the handoff, and a summary rendered from it
deterministically, so it is correct on the CPU default with no model involved.

Packet, version 1:
    {"version": 1,
     "reason": rule that fired, "reason_text": the same in words, "evidence": its signals,
     "customer": {"id", "verified", "name", "email"},
     "intent": {"name" (null when unclear), "unclear", "confidence"},
     "workflow": {"name", "status", "step", "slots", "asked"} | null,
     "actions": [{"tool", "status", "code", "at"}],      # calls into the brand's systems
     "knowledge": [{"title", "location"}],                # what the agent cited
     "sentiment": {"label", "trajectory": [frustration per customer turn]},
     "suggested_next_step": text,
     "transcript": {"conversation_id", "messages", "customer_turns"},
     "summary": text}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from appliance.db.models import Conversation, Message, ToolCall, TurnTrace
from appliance.reasons import about
from appliance.signals.service import Signals
from appliance.workflows.state import WorkflowState

PACKET_VERSION = 1
def reason_text(reason: str) -> str:
    return about(reason).text


def build_packet(conversation: Conversation, messages: Sequence[Message],
                 traces: Sequence[TurnTrace], calls: Sequence[ToolCall], reason: str,
                 evidence: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The packet for handing `conversation` off now, because of `reason`."""
    state = WorkflowState.from_json(conversation.state)
    verified = state.customer
    customer = {
        "id": verified.id if verified else None,
        "verified": verified is not None,
        "name": verified.name if verified else None,
        "email": verified.email if verified else None,
    }
    signals = [Signals.from_trace(t.signals) for t in traces if t.signals]
    last = signals[-1] if signals else Signals()
    packet: dict[str, Any] = {
        "version": PACKET_VERSION,
        "reason": reason,
        "reason_text": reason_text(reason),
        "evidence": dict(evidence or {}),
        "customer": customer,
        # An unclear reading is never named: a guess at zero confidence is not what they want.
        "intent": {"name": last.intent_read, "unclear": last.unclear,
                   "confidence": round(last.intent_confidence, 4)
                   if "intent" in last.models else None},
        "workflow": _workflow(state),
        "actions": [{"tool": c.tool, "status": c.status, "code": c.code,
                     "at": c.at.isoformat(timespec="seconds")} for c in calls],
        "knowledge": _cited(messages),
        "sentiment": {"label": last.sentiment,
                      "trajectory": [round(s.frustration, 3) for s in signals]},
        "suggested_next_step": about(reason).next_step,
        "transcript": {"conversation_id": conversation.public_id, "messages": len(messages),
                       "customer_turns": sum(m.role == "customer" for m in messages)},
    }
    packet["summary"] = render_summary(packet)
    return packet


def _workflow(state: WorkflowState) -> dict[str, Any] | None:
    if state.run is not None:
        return {"name": state.run.workflow, "status": "in progress",
                "slots": dict(state.run.slots), "asked": state.run.prompt}
    last = state.last
    if last is not None:
        return {"name": last.workflow, "status": last.status, "slots": dict(last.slots),
                "asked": None}
    return None


def _cited(messages: Sequence[Message]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for message in messages:
        for citation in message.citations or ():
            key = str(citation.get("location") or citation.get("title"))
            seen.setdefault(key, {"title": citation.get("title"),
                                  "location": citation.get("location")})
    return list(seen.values())


def render_summary(packet: Mapping[str, Any]) -> str:
    """A few plain sentences a human agent can act on, from the packet's facts alone."""
    customer = packet["customer"]
    who = customer.get("name") or "The customer"
    if customer.get("verified"):
        who += f" (verified{', ' + customer['email'] if customer.get('email') else ''})"
    else:
        who += " (not verified)"
    sentences = []
    workflow = packet.get("workflow")
    if workflow and workflow.get("name"):
        slots = ", ".join(f"{key.replace('_', ' ')}: {_text(value)}"
                          for key, value in workflow.get("slots", {}).items() if value)
        sentences.append(f"{who} wanted help with {workflow['name'].replace('_', ' ')}"
                         f"{' (' + slots + ')' if slots else ''}; the workflow is "
                         f"{workflow.get('status')}.")
        if workflow.get("asked"):
            sentences.append(f"The agent last asked: \"{workflow['asked']}\"")
    elif packet["intent"].get("name"):
        sentences.append(f"{who} asked about {packet['intent']['name'].replace('_', ' ')}.")
    elif packet["intent"].get("unclear"):
        sentences.append(f"{who}'s request was unclear to the agent.")
    else:
        sentences.append(f"{who} has not said clearly what they need.")
    sentences.append(f"Handed off because {packet['reason_text']}.")
    actions = packet.get("actions") or []
    if actions:
        done = "; ".join(f"{a['tool']} {a['status']}" + (f" ({a['code']})" if a["code"] else "")
                         for a in actions[-5:])
        sentences.append(f"Systems used: {done}.")
    if packet.get("knowledge"):
        sentences.append("Knowledge cited: " + "; ".join(
            str(k["title"]) for k in packet["knowledge"][:3]) + ".")
    trajectory = packet["sentiment"].get("trajectory") or []
    if trajectory:
        sentences.append(f"Frustration went {trajectory[0]:.2f} → {trajectory[-1]:.2f} over "
                         f"{len(trajectory)} turn(s); the customer now seems "
                         f"{packet['sentiment'].get('label') or 'neutral'}.")
    sentences.append(f"Next step: {packet['suggested_next_step']}")
    return " ".join(sentences)


def _text(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(str(v) for v in value.values() if v)
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)
