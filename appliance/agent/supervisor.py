"""The supervisor: deterministic rules over the turn's signals that decide who acts next.

It runs twice per turn. `decide` runs before generation, on the message's signals, what the
brand's knowledge offers and the recent turns; `review` runs on the drafted reply. Both return
a `Decision` naming the rule that fired, with the signals, scores and thresholds behind it, so
every transfer of control (to a human, to the large model, to a clarifying question) can be
explained from the turn trace alone. There is no model in the loop: the same inputs always
give the same decision.

Rules, in order (the first that fires wins):
1. accepted_human_offer   the last reply offered a human; they say yes   -> escalate
2. human_request          the customer asks for a human (the classifier,
                          or "connect me to someone" in so many words)   -> escalate
3. frustration_high       frustration at or above the brand's threshold  -> escalate
4. frustration_rising     frustration rose on each of the last N turns   -> escalate
5. small_talk             a greeting or thanks                           -> reply
6. repeated_question      the same question (intent and best passage) as
                          the answers just given, for the Nth time       -> escalate
7. knowledge              the brand's knowledge has a relevant passage   -> answer_from_knowledge
Not understood (out of scope or unsure of the intent, nothing relevant in the knowledge):
8. unclear_repeated       the third such message in a row                -> escalate
9. unclear_again          the second in a row                            -> clarify
10. out_of_scope          outside the brand's intents                    -> say so, offer a human
11. low_confidence        unsure of the intent                           -> no_answer, offer one
Otherwise: no_answer when the knowledge has nothing relevant, else reply.
Between rules 4 and 5 the turn pipeline lets a running (or newly matched) workflow take the
turn (appliance/workflows); `escalation` is rules 1-4 alone.
Routing: a turn goes to the large model (task `reply_large`) when its intent is one the brand
marks complex, or when the conversation has grown past the brand's context threshold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from appliance.brands import Supervision
from appliance.signals.service import Signals
from appliance.workflows.extract import without_identifiers

#: Decision actions.
REPLY, ANSWER, CLARIFY, OUT_OF_SCOPE, NO_ANSWER, ESCALATE, SELF_HELP = (
    "reply", "answer_from_knowledge", "clarify", "out_of_scope", "no_answer", "escalate",
    "offer_self_help")
#: After review: the draft was not supported by the knowledge and a quote replaced it.
EXTRACTIVE = "extractive_answer"
#: Actions whose reply offered the customer a human; a "yes" next turn accepts.
OFFERS_HUMAN = frozenset({OUT_OF_SCOPE, NO_ANSWER, CLARIFY, SELF_HELP})
#: Replies that mean "not understood"; three in a row hand off.
NOT_UNDERSTOOD = frozenset({OUT_OF_SCOPE, NO_ANSWER, CLARIFY})
#: Replies that answered from the brand's knowledge (the draft, or a quote replacing it).
ANSWERED = frozenset({ANSWER, EXTRACTIVE})
_AFFIRMATIVE = re.compile(
    r"^((oh|ok|okay|alright|well|ah|right|fine)\b[\s,.!?]*)*"
    r"(yes|yeah|yep|yup|sure|please do|go ahead|do it|connect me|"
    r"that would be (great|good)|i would like that|i'd like that)\b", re.IGNORECASE)
#: An acceptance is short; a longer message starting with "yes" is a new request.
_AFFIRMATIVE_MAX_WORDS = 6
_PERSON = (r"(someone|somebody|whoever|anyone|an? (real |live )?(person|human|agent|operator|"
           r"colleague|representative|rep)|(one of )?your (team|staff|colleagues|agents)|"
           r"the team|a manager|a supervisor)")
#: Asking for a person in so many words: a backstop for the human-request classifier, which
#: reads "connect me with someone about the mortgage" as a question about mortgages.
_ASKS_FOR_PERSON = re.compile(
    rf"\b((connect|transfer|put|pass) me (through |over )?(to|with) {_PERSON}|"
    rf"get me {_PERSON}|(talk|speak|chat) (to|with) {_PERSON}|"
    r"(is there|can i (get|have)|i (want|need)|i'd like) (a|an|any) (real |live )?"
    r"(human|person|agent))\b", re.IGNORECASE)


def _reads_as_text(text: str) -> bool:
    """Whether the message has words besides identifiers (a bare email address does not):
    the text classifiers were never trained on those and must not read them as a request or
    a mood."""
    return bool(re.search(r"[A-Za-z]{2,}", without_identifiers(text)))


@dataclass(frozen=True)
class Decision:
    """What the supervisor decided and why; recorded on the turn trace."""

    action: str
    rule: str
    #: The router task that generates the reply: reply (small first) or reply_large.
    task: str = "reply"
    #: The signal values and thresholds the rule compared.
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def escalates(self) -> bool:
        return self.action == ESCALATE

    def trace(self) -> dict[str, Any]:
        return {"action": self.action, "rule": self.rule, "task": self.task,
                "evidence": self.evidence}


@dataclass(frozen=True)
class PastTurn:
    """What the supervisor remembers of an earlier turn of the conversation."""

    signals: Signals
    action: str
    #: The best passage (chunk id) the turn's answer was grounded in, if it answered.
    passage: int | None = None


@dataclass(frozen=True)
class TurnFacts:
    """Everything `decide` looks at for one turn."""

    text: str
    signals: Signals
    small_talk: bool
    #: chat (no knowledge to consult) | grounded | no_answer
    grounding: str
    grounding_rule: str
    #: Earlier turns, oldest first.
    past: Sequence[PastTurn] = ()
    #: Characters of the conversation so far, this message included.
    context_chars: int = 0
    #: The message answers the running workflow's question ("ordered by mistake"): the
    #: customer is cooperating, and a curt answer is not read as rising frustration.
    answering: bool = False
    #: The best passage (chunk id) the knowledge offers for this message, if grounded.
    passage: int | None = None


def decide(facts: TurnFacts, policy: Supervision) -> Decision:
    """The pre-generation decision for one turn. Pure: same facts, same decision."""
    signals = facts.signals
    handoff = escalation(facts, policy)
    if handoff is not None:
        return handoff
    task = _task(facts, policy)
    if facts.small_talk:
        return Decision(REPLY, "small_talk", task)
    repeated = _repeated_question(facts, policy)
    if repeated is not None:
        return repeated
    if facts.grounding == "grounded":
        return Decision(ANSWER, "knowledge", task)
    # Out of scope or unsure, and nothing in the brand's knowledge: not understood.
    if signals.intent is not None and not understood(signals, policy):
        streak = _not_understood_streak(facts.past)
        # The best guess stays unnamed: below the threshold it is not what the customer wants.
        evidence = {"intent": "unclear", "confidence": round(signals.intent_confidence, 4),
                    "out_of_scope": signals.out_of_scope,
                    "threshold": policy.intent_min_confidence,
                    "scope_override": policy.scope_override_confidence, "streak": streak + 1}
        if streak >= 2:
            return Decision(ESCALATE, "unclear_repeated", task, evidence)
        if streak == 1:
            return Decision(CLARIFY, "unclear_again", task, evidence)
        if signals.out_of_scope:
            return Decision(OUT_OF_SCOPE, "out_of_scope", task, evidence)
        return Decision(NO_ANSWER, "low_confidence", task, evidence)
    if facts.grounding == "no_answer":
        return Decision(NO_ANSWER, facts.grounding_rule, task)
    if signals.intent is not None:
        return Decision(REPLY, "intent", task, {
            "intent": signals.intent, "confidence": round(signals.intent_confidence, 4)})
    return Decision(REPLY, facts.grounding_rule, task)


def understood(signals: Signals, policy: Supervision) -> bool:
    """Whether the brand's intent model understood the message: a confident enough intent,
    not rejected by the scope check unless the intent is confident enough to overrule it."""
    if signals.intent is None or signals.intent_confidence < policy.intent_min_confidence:
        return False
    return (not signals.out_of_scope
            or signals.intent_confidence >= policy.scope_override_confidence)


def review(decision: Decision, *, fallback: bool, canned: bool, ungrounded: bool,
           policy: Supervision) -> Decision:
    """The decision after drafting: hand off when no model answered or, if the brand says
    so, when a fallback answered a consequential turn; note a rewritten draft."""
    if canned:
        return Decision(ESCALATE, "no_model_answered", decision.task,
                        {**decision.evidence, "before": decision.rule})
    if ungrounded:
        return Decision(EXTRACTIVE, "ungrounded_draft", decision.task,
                        {**decision.evidence, "before": decision.rule})
    consequential = decision.action == ANSWER or decision.rule == "intent"
    if fallback and consequential and policy.escalate_on_degraded:
        return Decision(ESCALATE, "degraded_answer", decision.task,
                        {**decision.evidence, "before": decision.rule,
                         "escalate_on_degraded": True})
    return decision


def escalation(facts: TurnFacts, policy: Supervision) -> Decision | None:
    """Rules 1-4: the customer wants a human, or is (growing) too frustrated to go on.
    They outrank everything, a running workflow included."""
    signals = facts.signals
    task = "reply"
    asked = _ASKS_FOR_PERSON.search(facts.text)
    if facts.past and facts.past[-1].action in OFFERS_HUMAN and (asked or (
            len(facts.text.split()) <= _AFFIRMATIVE_MAX_WORDS
            and _AFFIRMATIVE.match(facts.text.strip()))):
        return Decision(ESCALATE, "accepted_human_offer", task,
                        {"offered_by": facts.past[-1].action})
    if not _reads_as_text(facts.text):
        return None
    asks_human = (policy.human_request_answering_threshold if facts.answering
                  else policy.human_request_threshold)
    read = "human_request" in signals.models and signals.human_request >= asks_human
    if read or asked:
        evidence: dict[str, Any] = {"human_request": round(signals.human_request, 4),
                                    "threshold": asks_human, "answering": facts.answering}
        if not read and asked is not None:
            evidence["phrase"] = asked.group(0)
        if not policy.human_on_request and not (facts.past and facts.past[-1].action == SELF_HELP):
            # The brand lets the agent try first; asking again (or "yes") hands off.
            return Decision(SELF_HELP, "human_request_deferred", task, evidence)
        return Decision(ESCALATE, "human_request", task, evidence)
    if "sentiment" not in signals.models:
        return None
    threshold = (policy.frustration_answering_threshold if facts.answering
                 else policy.frustration_threshold)
    if signals.frustration >= threshold:
        return Decision(ESCALATE, "frustration_high", task, {
            "frustration": round(signals.frustration, 4), "sentiment": signals.sentiment,
            "threshold": threshold, "answering": facts.answering})
    if facts.answering or facts.small_talk:
        # A thanks or a goodbye ("No, that's all. Thank you!") closes the conversation: a
        # trend of earlier messages is no reason to hand it over now.
        return None
    window = policy.frustration_rising_turns
    recent = [turn.signals.frustration for turn in facts.past[-(window - 1):]]
    trend = [*recent, signals.frustration]
    if (len(trend) == window and all(b > a for a, b in pairwise(trend))
            and signals.frustration >= policy.frustration_rising_min):
        return Decision(ESCALATE, "frustration_rising", task, {
            "trend": [round(value, 4) for value in trend], "turns": window,
            "min": policy.frustration_rising_min})
    return None


def _repeated_question(facts: TurnFacts, policy: Supervision) -> Decision | None:
    """The customer keeps asking what the agent has just answered: the same intent, and the
    knowledge's best passage is the one each of the last answers was built on. Answering it
    once more is a loop; a person is the next step."""
    limit = policy.repeated_question_turns
    if not limit or facts.grounding != "grounded" or facts.passage is None:
        return None
    times = 1
    for turn in reversed(facts.past):
        if (turn.action not in ANSWERED or turn.passage != facts.passage
                or turn.signals.intent != facts.signals.intent):
            break
        times += 1
    if times < limit:
        return None
    return Decision(ESCALATE, "repeated_question", "reply", {
        "intent": facts.signals.intent, "passage": facts.passage, "times": times,
        "limit": limit})


def _not_understood_streak(past: Sequence[PastTurn]) -> int:
    streak = 0
    for turn in reversed(past):
        if turn.action not in NOT_UNDERSTOOD:
            break
        streak += 1
    return streak


def _task(facts: TurnFacts, policy: Supervision) -> str:
    if facts.signals.intent in policy.large_model_intents and understood(facts.signals, policy):
        return "reply_large"
    if policy.large_model_context_chars and facts.context_chars > policy.large_model_context_chars:
        return "reply_large"
    return "reply"
