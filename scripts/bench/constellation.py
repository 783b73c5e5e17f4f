"""The constellation against a single-model baseline, on the same scripted conversations.

Runs every conversation of scripts/bench/data/constellation.yaml (written for this project,
both demo brands) twice, in one process, on the demo brands with their knowledge:
- **constellation**: the product's turn pipeline (ONNX signals + supervisor + routing +
  knowledge), through `ConversationService.reply`;
- **single model**: every customer turn goes to one LLM prompt (the same model the
  constellation's router uses) that is told the brand's intents and asked to pick the intent,
  decide whether to hand off to a human, and answer, as JSON.
A conversation stops at its first escalation in both modes. Reports, side by side:
correct-intent rate (per customer turn), correct-escalation rate (per conversation: handed off
at the expected turn, or never when none is expected), escalation recall and false-escalation
counts, turn latency p50/p95, and LLM tokens per conversation.

    .venv/bin/python scripts/bench/constellation.py --out bench-results/constellation.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from appliance.agent.conversations import TurnResult, is_small_talk  # noqa: E402
from appliance.agent.supervisor import understood  # noqa: E402
from appliance.brands import policy_of  # noqa: E402
from appliance.config import load_settings  # noqa: E402
from appliance.db.migrate import migrate  # noqa: E402
from appliance.db.models import TurnTrace  # noqa: E402
from appliance.demo.seed import seed  # noqa: E402
from appliance.llm.base import ChatMessage, ChatModel, GenerationParams  # noqa: E402
from appliance.services import Services, build_services  # noqa: E402
from appliance.signals.service import Signals  # noqa: E402

DATA = REPO / "scripts" / "bench" / "data" / "constellation.yaml"
#: Labels that are not brand intents.
OOS, SMALL_TALK, UNCLEAR = "oos", "small_talk", "unclear"
NOT_UNDERSTOOD = frozenset({"out_of_scope", "no_answer", "clarify"})
BASELINE_PROMPT = """You are {agent}, the customer-service agent of {brand}.
For the customer's latest message, reply with JSON only, exactly these keys:
{{"intent": one of the intents below, or "oos" if none fits, or "small_talk" for greetings \
and thanks,
 "escalate": true if the customer should be handed to a human (they ask for one, are angry, \
or you cannot understand them after trying), else false,
 "reply": your reply to the customer}}
Intents: {intents}"""


@dataclass
class Outcome:
    """One conversation in one mode."""

    id: str
    brand: str
    intents_right: int = 0
    intents_total: int = 0
    escalated_at: int | None = None
    #: The rule that handed off (the supervisor's or a workflow's), or "llm".
    escalation_rule: str | None = None
    expected_at: int | None = None
    turn_ms: list[float] = field(default_factory=list)
    llm_tokens: int = 0

    @property
    def escalation_right(self) -> bool:
        return self.escalated_at == self.expected_at


def intent_right(expected: str, predicted: str | None, *, not_understood: bool,
                 small_talk: bool) -> bool:
    """Whether a turn's intent was read right; `unclear` is right when not understood."""
    if expected == SMALL_TALK:
        return small_talk or predicted == SMALL_TALK
    if expected == UNCLEAR:
        return not_understood or predicted == OOS
    if expected == OOS:
        return predicted == OOS or not_understood
    return predicted == expected


def run_constellation(services: Services, conversation: dict[str, Any]) -> Outcome:
    brand = services.brands.get(conversation["brand"])
    policy = policy_of(brand).supervision
    outcome = Outcome(conversation["id"], brand.slug, expected_at=conversation["escalate_at"])
    started, _greeting = services.conversations.start(brand, {}, "bench")
    for index, turn in enumerate(conversation["turns"]):
        began = time.perf_counter()
        result = list(services.conversations.reply(brand, started.public_id, turn["text"]))[-1]
        outcome.turn_ms.append((time.perf_counter() - began) * 1000)
        assert isinstance(result, TurnResult)
        trace = TurnTrace.get(TurnTrace.agent_message == result.message.id)
        signals = trace.signals or {}
        decision = trace.decision
        read = Signals.from_trace(signals)
        predicted = read.intent if understood(read, policy) else OOS
        outcome.intents_total += 1
        outcome.intents_right += intent_right(
            turn["intent"], predicted, small_talk=is_small_talk(turn["text"]),
            not_understood=decision.get("action") in NOT_UNDERSTOOD
            or decision.get("rule") in ("unclear_repeated", "low_confidence"))
        outcome.llm_tokens += trace.prompt_tokens + trace.completion_tokens
        if decision.get("action") == "escalate":
            outcome.escalated_at, outcome.escalation_rule = index, decision.get("rule")
            break
    return outcome


_JSON = re.compile(r"\{.*\}", re.DOTALL)


def parse_baseline(text: str) -> tuple[str | None, bool]:
    """The intent and escalation the model chose; (None, False) when it wrote no JSON."""
    match = _JSON.search(text)
    if match is None:
        return None, False
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None, False
    if not isinstance(data, dict):
        return None, False
    intent = data.get("intent")
    return (str(intent) if intent is not None else None), data.get("escalate") is True


def run_baseline(services: Services, conversation: dict[str, Any],
                 intents: dict[str, list[str]], max_tokens: int) -> Outcome:
    brand = services.brands.get(conversation["brand"])
    outcome = Outcome(conversation["id"], brand.slug, expected_at=conversation["escalate_at"])
    system = BASELINE_PROMPT.format(agent=brand.persona["agent_name"], brand=brand.name,
                                    intents=", ".join(intents[brand.slug]))
    history: list[ChatMessage] = []
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0,
                              timeout_s=services.settings.llm_timeout_s)
    for index, turn in enumerate(conversation["turns"]):
        history.append(ChatMessage("user", turn["text"]))
        prompt = [ChatMessage("system", system), *history]

        def messages(_model: ChatModel, prompt: list[ChatMessage] = prompt
                     ) -> Sequence[ChatMessage]:
            return prompt
        began = time.perf_counter()
        routed = services.router.complete("reply", messages, params)
        outcome.turn_ms.append((time.perf_counter() - began) * 1000)
        completion = routed.completion
        outcome.llm_tokens += completion.prompt_tokens + completion.completion_tokens
        predicted, escalate = parse_baseline(completion.text)
        outcome.intents_total += 1
        outcome.intents_right += intent_right(turn["intent"], predicted, small_talk=False,
                                              not_understood=False)
        history.append(ChatMessage("assistant", completion.text))
        if escalate:
            outcome.escalated_at, outcome.escalation_rule = index, "llm"
            break
    return outcome


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    turns = [ms for outcome in outcomes for ms in outcome.turn_ms]
    expected = [o for o in outcomes if o.expected_at is not None]
    return {
        "conversations": len(outcomes),
        "turns": len(turns),
        "intent_accuracy": round(sum(o.intents_right for o in outcomes)
                                 / max(1, sum(o.intents_total for o in outcomes)), 3),
        "escalation_accuracy": round(sum(o.escalation_right for o in outcomes)
                                     / max(1, len(outcomes)), 3),
        "escalation_recall": round(sum(o.escalated_at is not None for o in expected)
                                   / max(1, len(expected)), 3),
        "false_escalations": sum(o.expected_at is None and o.escalated_at is not None
                                 for o in outcomes),
        "turn_ms_p50": round(_pct(turns, 50), 1),
        "turn_ms_p95": round(_pct(turns, 95), 1),
        "llm_tokens_per_conversation": round(statistics.fmean(o.llm_tokens for o in outcomes)
                                             if outcomes else 0.0, 1),
    }


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def brand_intents(services: Services) -> dict[str, list[str]]:
    """Each demo brand's intent labels, as its intent model knows them."""
    found: dict[str, list[str]] = {}
    for info in services.signals.classifiers():
        if info.signal == "intent" and info.brand:
            labels = [label for label in info.meta.get("labels", []) if label != OOS]
            found[info.brand] = labels
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=0, help="first N conversations only")
    parser.add_argument("--baseline-tokens", type=int, default=96)
    parser.add_argument("--out", type=Path,
                        default=REPO / "bench-results" / "constellation.json")
    args = parser.parse_args()

    conversations = yaml.safe_load(args.data.read_text())
    if args.limit:
        conversations = conversations[:args.limit]
    data_dir = Path(tempfile.mkdtemp(prefix="bench-constellation-"))
    settings = load_settings(overrides={"data_dir": str(data_dir), "llm_threads": 2},
                             env={"APPLIANCE_CONFIG": str(REPO / "tests" / "empty-config.toml")})
    services = build_services(settings)
    services.db.connect(reuse_if_open=True)
    migrate(services.db)
    seed(services, knowledge=True)
    intents = brand_intents(services)
    # Warm both paths so neither mode pays for loading models.
    warm = {"id": "warm", "brand": conversations[0]["brand"], "escalate_at": None,
            "turns": [{"text": "Hello", "intent": SMALL_TALK}]}
    run_constellation(services, warm)
    run_baseline(services, warm, intents, 8)

    modes: dict[str, list[Outcome]] = {"constellation": [], "single_model": []}
    for conversation in conversations:
        modes["constellation"].append(run_constellation(services, conversation))
        modes["single_model"].append(run_baseline(services, conversation, intents,
                                                  args.baseline_tokens))
    services.close()

    summary = {mode: summarise(outcomes) for mode, outcomes in modes.items()}
    keys = list(summary["constellation"])
    print(f"{'metric':<30}{'constellation':>16}{'single model':>16}")
    for key in keys:
        print(f"{key:<30}{summary['constellation'][key]!s:>16}"
              f"{summary['single_model'][key]!s:>16}")
    result = {
        "benchmark": "constellation",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "python": platform.python_version()},
        "model": services.router.route("reply")[0],
        "data": str(args.data.relative_to(REPO)) if args.data.is_relative_to(REPO)
        else str(args.data),
        "summary": summary,
        "conversations": {mode: [{"id": o.id, "brand": o.brand, "expected_at": o.expected_at,
                                  "escalated_at": o.escalated_at,
                                  "rule": o.escalation_rule,
                                  "intents": [o.intents_right, o.intents_total],
                                  "llm_tokens": o.llm_tokens} for o in outcomes]
                          for mode, outcomes in modes.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
