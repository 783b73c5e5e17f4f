"""The supervisor's rules: same facts, same decision, with the evidence on the decision."""

from __future__ import annotations

from dataclasses import replace

import pytest

from appliance.agent.conversations import is_small_talk
from appliance.agent.supervisor import (
    ANSWER,
    CLARIFY,
    ESCALATE,
    NO_ANSWER,
    OUT_OF_SCOPE,
    REPLY,
    Decision,
    PastTurn,
    TurnFacts,
    decide,
    escalation,
    review,
)
from appliance.brands import Supervision
from appliance.signals.service import Signals

POLICY = Supervision()
MODELS = {"intent": "intent@abc", "sentiment": "sentiment@def", "human_request": "human@123"}


def signals(**values: object) -> Signals:
    base: dict[str, object] = {"intent": "track_order", "intent_confidence": 0.9,
                               "sentiment": "neutral", "models": MODELS}
    base.update(values)
    return Signals(**base)  # type: ignore[arg-type]


def facts(text: str = "where is my order?", *, past: tuple[PastTurn, ...] = (),
          grounding: str = "no_answer", small_talk: bool = False, **values: object) -> TurnFacts:
    return TurnFacts(text=text, signals=signals(**values), small_talk=small_talk,
                     grounding=grounding, grounding_rule="knowledge_below_threshold",
                     past=past, context_chars=len(text))


def turn(action: str = REPLY, frustration: float = 0.0) -> PastTurn:
    return PastTurn(signals(frustration=frustration), action)


def test_an_explicit_human_request_escalates_with_its_score_and_threshold() -> None:
    decision = decide(facts("let me talk to a person", human_request=0.97), POLICY)

    assert (decision.action, decision.rule) == (ESCALATE, "human_request")
    assert decision.evidence == {"human_request": 0.97, "threshold": 0.5, "answering": False}


def test_an_answer_to_the_workflows_question_is_held_to_the_answering_thresholds() -> None:
    # "88 Bay Street, Tampa, FL 33602" or "ordered by mistake": cooperation, not a request.
    answer = replace(facts("88 Bay Street, Tampa, FL 33602", human_request=0.7,
                           frustration=0.8, sentiment="angry"), answering=True)
    assert escalation(answer, POLICY) is None
    shouting = replace(answer, signals=replace(answer.signals, human_request=0.99))
    assert escalation(shouting, POLICY).rule == "human_request"  # type: ignore[union-attr]


def test_a_message_of_identifiers_alone_is_not_read_for_a_request_or_a_mood() -> None:
    decision = escalation(facts("olivia.ito5204@example.com #W5442520", human_request=0.8,
                                frustration=0.9, sentiment="angry"), POLICY)
    assert decision is None


def test_a_human_request_outranks_knowledge_and_small_talk() -> None:
    decision = decide(facts("hi, agent please", human_request=0.8, grounding="grounded",
                            small_talk=True), POLICY)

    assert decision.rule == "human_request"


def test_high_frustration_escalates() -> None:
    decision = decide(facts("THIS IS RIDICULOUS", frustration=0.9, sentiment="angry"), POLICY)

    assert (decision.action, decision.rule) == (ESCALATE, "frustration_high")
    assert decision.evidence["threshold"] == POLICY.frustration_threshold


def test_frustration_rising_over_the_window_escalates_below_the_high_threshold() -> None:
    past = (turn(frustration=0.1), turn(frustration=0.3))

    decision = decide(facts("still nothing?", past=past, frustration=0.5), POLICY)

    assert decision.rule == "frustration_rising"
    assert decision.evidence["trend"] == [0.1, 0.3, 0.5]


def test_a_closing_thanks_is_not_handed_off_for_earlier_frustration() -> None:
    """The customer was angry at the start and says "No, that's all. Thank you!": closing,
    not escalating (a trend the simulated angry customer showed)."""
    past = (turn(frustration=0.0), turn(frustration=0.48))
    closing = facts("No, that's all. Thank you!", past=past, frustration=0.49, small_talk=True)
    assert escalation(closing, POLICY) is None
    assert decide(closing, POLICY).rule == "small_talk"


@pytest.mark.parametrize("trend", [(0.1, 0.3, 0.3), (0.3, 0.1, 0.5), (0.1, 0.2, 0.3)])
def test_frustration_that_is_flat_falling_or_low_does_not_escalate(
    trend: tuple[float, float, float],
) -> None:
    past = (turn(frustration=trend[0]), turn(frustration=trend[1]))

    decision = decide(facts(past=past, frustration=trend[2], grounding="grounded"), POLICY)

    assert decision.action == ANSWER


def test_relevant_knowledge_is_answered_from() -> None:
    assert decide(facts(grounding="grounded"), POLICY).action == ANSWER


def test_out_of_scope_says_so_then_clarifies_then_escalates() -> None:
    rejected = {"out_of_scope": True, "intent_confidence": 0.05}
    first = decide(facts("book me a flight", **rejected), POLICY)
    second = decide(facts("???", past=(turn(first.action),), **rejected), POLICY)
    third = decide(facts("the thing", past=(turn(first.action), turn(second.action)),
                         **rejected), POLICY)

    assert [first.action, second.action, third.action] == [OUT_OF_SCOPE, CLARIFY, ESCALATE]
    assert third.rule == "unclear_repeated"
    assert third.evidence["streak"] == 3


def test_a_confident_intent_overrules_the_scope_check() -> None:
    confident = decide(facts("where is order #W3391024?", out_of_scope=True,
                             intent_confidence=0.73), POLICY)
    unsure = decide(facts("where is order #W3391024?", out_of_scope=True,
                          intent_confidence=0.5), POLICY)

    assert (confident.action, confident.rule) == (NO_ANSWER, "knowledge_below_threshold")
    assert (unsure.action, unsure.rule) == (OUT_OF_SCOPE, "out_of_scope")
    assert unsure.evidence["scope_override"] == POLICY.scope_override_confidence


def test_low_confidence_alone_offers_a_human_without_escalating() -> None:
    decision = decide(facts("hmm", intent_confidence=0.2), POLICY)

    assert (decision.action, decision.rule) == (NO_ANSWER, "low_confidence")
    assert decision.evidence["threshold"] == POLICY.intent_min_confidence


def test_an_understood_turn_breaks_the_streak() -> None:
    past = (turn(OUT_OF_SCOPE), turn(REPLY))

    assert decide(facts("??", intent_confidence=0.1, past=past), POLICY).rule == "low_confidence"


@pytest.mark.parametrize("text", [
    "yes please", "Sure", "yeah, connect me", "go ahead", "oh ok. yes please",
    "oh you can't? ok yes please, connect me to someone who can help with the flight",
    "sure, connect me to whoever can help with the claim"])
def test_accepting_an_offered_human_escalates(text: str) -> None:
    decision = decide(facts(text, past=(turn(OUT_OF_SCOPE),), intent_confidence=0.05,
                            out_of_scope=True), POLICY)

    assert (decision.action, decision.rule) == (ESCALATE, "accepted_human_offer")


@pytest.mark.parametrize("text", ["no thanks", "yes, and also where is my order #W123?",
                                  "ok thanks"])
def test_other_answers_to_an_offer_do_not_escalate(text: str) -> None:
    decision = decide(facts(text, past=(turn(OUT_OF_SCOPE),), grounding="grounded"), POLICY)

    assert decision.action == ANSWER


def test_without_an_offer_a_yes_is_just_a_message() -> None:
    assert decide(facts("yes please", past=(turn(REPLY),), grounding="grounded"),
                  POLICY).action == ANSWER


def test_rules_need_their_signals_models() -> None:
    bare = Signals(human_request=0.99, frustration=0.99)  # no models read them

    decision = decide(TurnFacts("hello", bare, False, "chat", "no_knowledge"), POLICY)

    assert (decision.action, decision.rule) == (REPLY, "no_knowledge")


def test_thresholds_are_per_brand() -> None:
    strict = Supervision(human_request_threshold=0.99, frustration_threshold=0.95)

    decision = decide(facts(human_request=0.9, frustration=0.9, grounding="grounded"), strict)

    assert decision.action == ANSWER


def test_complex_intents_and_long_conversations_go_to_the_large_model() -> None:
    policy = Supervision(large_model_intents=("track_order",), large_model_context_chars=100)

    assert decide(facts(grounding="grounded"), policy).task == "reply_large"
    assert decide(facts(grounding="grounded", intent="cancel_order"), policy).task == "reply"
    long = TurnFacts("x", signals(intent="cancel_order"), False, "grounded", "knowledge",
                     context_chars=101)
    assert decide(long, policy).task == "reply_large"


def test_review_escalates_when_no_model_answered() -> None:
    decision = review(Decision(ANSWER, "knowledge"), fallback=True, canned=True,
                      ungrounded=False, policy=POLICY)

    assert (decision.action, decision.rule) == (ESCALATE, "no_model_answered")
    assert decision.evidence["before"] == "knowledge"


def test_review_flags_a_degraded_answer_and_escalates_only_if_the_brand_says_so() -> None:
    answered = Decision(ANSWER, "knowledge")
    kept = review(answered, fallback=True, canned=False, ungrounded=False, policy=POLICY)
    escalated = review(answered, fallback=True, canned=False, ungrounded=False,
                       policy=Supervision(escalate_on_degraded=True))
    chat = review(Decision(REPLY, "small_talk"), fallback=True, canned=False, ungrounded=False,
                  policy=Supervision(escalate_on_degraded=True))

    assert kept is answered
    assert (escalated.action, escalated.rule) == (ESCALATE, "degraded_answer")
    assert chat.action == REPLY


def test_review_rewrites_an_ungrounded_draft() -> None:
    decision = review(Decision(ANSWER, "knowledge"), fallback=False, canned=False,
                      ungrounded=True, policy=POLICY)

    assert (decision.action, decision.rule) == ("extractive_answer", "ungrounded_draft")


def test_signals_survive_the_trace_round_trip() -> None:
    read = signals(intent_top=(("track_order", 0.9), ("cancel_order", 0.05)), frustration=0.25)

    assert Signals.from_trace(read.trace()) == read
    assert Signals.from_trace(None) == Signals()


def test_a_brand_may_let_the_agent_try_first_and_hand_off_when_asked_again() -> None:
    tries_first = POLICY.model_copy(update={"human_on_request": False})
    first = decide(facts("let me talk to a person", human_request=0.97), tries_first)
    assert (first.action, first.rule) == ("offer_self_help", "human_request_deferred")
    again = decide(facts("I said a person!", human_request=0.97,
                         past=(turn(first.action),)), tries_first)
    assert (again.action, again.rule) == (ESCALATE, "human_request")
    accepted = decide(facts("yes", past=(turn(first.action),)), tries_first)
    assert (accepted.action, accepted.rule) == (ESCALATE, "accepted_human_offer")


def answered(passage: int, intent: str = "track_order", action: str = ANSWER) -> PastTurn:
    return PastTurn(signals(intent=intent), action, passage)


def asked(*past: PastTurn, passage: int = 7, **values: object) -> TurnFacts:
    return replace(facts(grounding="grounded", past=past, **values), passage=passage)


def test_the_same_question_answered_twice_hands_off_the_third_time() -> None:
    second = decide(asked(answered(7)), POLICY)
    third = decide(asked(answered(7), answered(7, action="extractive_answer")), POLICY)

    assert second.action == ANSWER
    assert (third.action, third.rule) == (ESCALATE, "repeated_question")
    assert third.evidence == {"intent": "track_order", "passage": 7, "times": 3, "limit": 3}


@pytest.mark.parametrize("past", [
    (answered(7), answered(8)),                            # the last answer was another passage
    (answered(7), answered(7, intent="cancel_order")),     # ...or another intent
    (answered(7), turn(NO_ANSWER)),                        # ...or not an answer
    (answered(7, action=REPLY), answered(7)),              # only one answer from the knowledge
])
def test_another_question_in_between_is_not_a_repeat(past: tuple[PastTurn, ...]) -> None:
    assert decide(asked(*past), POLICY).action == ANSWER


def test_how_often_is_per_brand_and_zero_never_hands_off() -> None:
    strict = POLICY.model_copy(update={"repeated_question_turns": 2})
    never = POLICY.model_copy(update={"repeated_question_turns": 0})
    many = (answered(7),) * 5

    assert decide(asked(answered(7)), strict).rule == "repeated_question"
    assert decide(asked(*many), never).action == ANSWER
    assert decide(replace(asked(*many), grounding="no_answer"), POLICY).rule != (
        "repeated_question")
    with pytest.raises(ValueError, match="at least 2"):
        Supervision(repeated_question_turns=1)


@pytest.mark.parametrize("text", [
    "just get me someone from your team who can look into the missing package",
    "connect me with someone about my mortgage", "I need to speak to a manager",
    "is there a human I can talk to about this?"])
def test_asking_for_a_person_in_so_many_words_escalates_whatever_the_classifier_read(
        text: str) -> None:
    decision = decide(facts(text, human_request=0.02), POLICY)

    assert (decision.action, decision.rule) == (ESCALATE, "human_request")
    assert decision.evidence["human_request"] == 0.02
    assert decision.evidence["phrase"].lower() in text.lower()


@pytest.mark.parametrize("text", ["I need a new card", "can you connect me to the wifi",
                                  "talk to you later", "someone stole my card"])
def test_words_about_people_or_connecting_are_not_a_request_for_one(text: str) -> None:
    assert decide(facts(text, human_request=0.02), POLICY).action != ESCALATE


@pytest.mark.parametrize(("text", "closing"), [
    ("No, that's all. Thank you!", True), ("That's everything, thanks.", True),
    ("nothing else, bye", True), ("no thanks", True), ("I'm all set", True),
    ("No, I want to return it", False),
    ("That's all I needed to know about the fee schedule for wires today", False),
])
def test_closing_words_are_small_talk(text: str, closing: bool) -> None:
    """The answer to "anything else?" gets the small-talk reply, not a search of the
    knowledge or an out-of-scope answer."""
    assert is_small_talk(text) is closing
