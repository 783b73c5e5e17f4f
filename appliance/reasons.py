"""Every rule the supervisor, the turn pipeline and the workflows can give as the reason for a
turn's decision or a handoff: one registry with the words a person reads for each, and the
next step a human agent should take when it hands a conversation off.

The code names reasons by these values (they are stored on turn traces and handoffs, so a value
never changes); tests/test_reasons.py holds that every reason the code raises is here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    # The customer wants a person, or is upset.
    ACCEPTED_HUMAN_OFFER = "accepted_human_offer"
    HUMAN_REQUEST = "human_request"
    HUMAN_REQUEST_DEFERRED = "human_request_deferred"
    FRUSTRATION_HIGH = "frustration_high"
    FRUSTRATION_RISING = "frustration_rising"
    # What the message is.
    SMALL_TALK = "small_talk"
    INTENT = "intent"
    REPEATED_QUESTION = "repeated_question"
    UNCLEAR_REPEATED = "unclear_repeated"
    UNCLEAR_AGAIN = "unclear_again"
    OUT_OF_SCOPE = "out_of_scope"
    LOW_CONFIDENCE = "low_confidence"
    # What the knowledge offers.
    KNOWLEDGE = "knowledge"
    NO_KNOWLEDGE = "no_knowledge"
    KNOWLEDGE_BELOW_THRESHOLD = "knowledge_below_threshold"
    NO_RELEVANT_SENTENCE = "no_relevant_sentence"
    KNOWLEDGE_UNAVAILABLE = "knowledge_unavailable"
    # The draft and the models.
    UNGROUNDED_DRAFT = "ungrounded_draft"
    INTERNAL_KNOWLEDGE_ONLY = "internal_knowledge_only"
    NO_MODEL_ANSWERED = "no_model_answered"
    DEGRADED_ANSWER = "degraded_answer"
    PENDING_HUMAN = "pending_human"
    # Workflows.
    WORKFLOW_WAITING = "workflow_waiting"
    WORKFLOW_DONE = "workflow_done"
    WORKFLOW_STOPPED = "workflow_stopped"
    WORKFLOW_REFUSED = "workflow_refused"
    WORKFLOW_SWITCHED = "workflow_switched"
    WORKFLOW_HANDOFF = "workflow_handoff"
    OTHER_CUSTOMER = "other_customer"
    SLOT_NOT_UNDERSTOOD = "slot_not_understood"
    NO_PROGRESS = "no_progress"
    WORKFLOW_LOOP = "workflow_loop"
    WORKFLOW_TEMPLATE_FAILED = "workflow_template_failed"
    WORKFLOW_NOT_FOUND = "workflow_not_found"
    WRITE_WITHOUT_CONFIRMATION = "write_without_confirmation"
    TOOL_NOT_ALLOWED = "tool_not_allowed"
    TOOL_FAILURE = "tool_failure"
    IDENTITY_REQUIRED = "identity_required"
    IDENTITY_NOT_FOUND = "identity_not_found"
    IDENTITY_INSUFFICIENT = "identity_insufficient"
    IDENTITY_NOT_ASSERTED = "identity_not_asserted"
    IDENTITY_LOCKED = "identity_locked"
    THIRD_PARTY = "third_party"
    POLICY_LIMIT = "policy_limit"


@dataclass(frozen=True)
class About:
    """What a reason means, in words."""

    text: str
    #: For a human agent taking over a conversation handed off for this reason.
    next_step: str = "Read the summary, then pick up the customer's request where it stopped."


_FRUSTRATED = "Acknowledge the frustration first, then resolve the request."
ABOUT: dict[Reason, About] = {
    Reason.ACCEPTED_HUMAN_OFFER: About("the customer accepted the offer of a person"),
    Reason.HUMAN_REQUEST: About("the customer asked for a person"),
    Reason.HUMAN_REQUEST_DEFERRED: About(
        "the customer asked for a person; the brand lets the agent try first"),
    Reason.FRUSTRATION_HIGH: About("the customer is very frustrated", _FRUSTRATED),
    Reason.FRUSTRATION_RISING: About("the customer's frustration kept rising", _FRUSTRATED),
    Reason.SMALL_TALK: About("a greeting, thanks or goodbye"),
    Reason.INTENT: About("a request the agent understood, with nothing to look up"),
    Reason.REPEATED_QUESTION: About(
        "the customer kept asking a question the agent had answered",
        "The answer from the knowledge did not help: find out what is missing."),
    Reason.UNCLEAR_REPEATED: About(
        "the agent could not understand the request after asking twice"),
    Reason.UNCLEAR_AGAIN: About("the request was unclear twice in a row; the agent asked again"),
    Reason.OUT_OF_SCOPE: About("the request is outside what the agent handles"),
    Reason.LOW_CONFIDENCE: About("the request was unclear"),
    Reason.KNOWLEDGE: About("the brand's knowledge has a relevant passage"),
    Reason.NO_KNOWLEDGE: About("the brand has no published knowledge"),
    Reason.KNOWLEDGE_BELOW_THRESHOLD: About("nothing in the knowledge is relevant enough"),
    Reason.NO_RELEVANT_SENTENCE: About(
        "the passages found say nothing that bears on the question"),
    Reason.KNOWLEDGE_UNAVAILABLE: About("the knowledge could not be searched"),
    Reason.UNGROUNDED_DRAFT: About(
        "the drafted reply was not supported by the knowledge; a quote replaced it"),
    Reason.INTERNAL_KNOWLEDGE_ONLY: About(
        "only internal knowledge bore on the question, and it is never quoted to customers; "
        "a colleague was offered",
        "Answer from the brand's internal knowledge (the turn's trace names the passages)."),
    Reason.NO_MODEL_ANSWERED: About("no model could answer"),
    Reason.DEGRADED_ANSWER: About("a fallback model answered a consequential question",
                                  "Check the answer the fallback model gave."),
    Reason.PENDING_HUMAN: About("a person has the conversation"),
    Reason.WORKFLOW_WAITING: About("the workflow asked for what it needs next"),
    Reason.WORKFLOW_DONE: About("the workflow finished"),
    Reason.WORKFLOW_STOPPED: About("the customer stopped the workflow"),
    Reason.WORKFLOW_REFUSED: About("the workflow refused what was asked"),
    Reason.WORKFLOW_SWITCHED: About("the agent moved to the workflow that fits the order"),
    Reason.WORKFLOW_HANDOFF: About("the workflow hands this case to a person"),
    Reason.OTHER_CUSTOMER: About("the customer asked about another customer's account"),
    Reason.SLOT_NOT_UNDERSTOOD: About(
        "the agent asked for the same detail three times without an answer",
        "Ask for the missing detail in other words, or look it up."),
    Reason.NO_PROGRESS: About(
        "the customer's answers did not move the conversation on (stuck at the same question)",
        "Find out what the customer needs: the agent did not understand."),
    Reason.WORKFLOW_LOOP: About("the workflow could not make progress"),
    Reason.WORKFLOW_TEMPLATE_FAILED: About(
        "a template of the workflow could not be evaluated (past its limits, or on these "
        "values)",
        "Finish the request by hand; the turn's trace names the template for its author."),
    Reason.WORKFLOW_NOT_FOUND: About(
        "the workflow to move to (or the one the conversation was in) does not exist"),
    Reason.WRITE_WITHOUT_CONFIRMATION: About(
        "a write was about to happen without the customer's confirmation",
        "Confirm the details with the customer before changing anything."),
    Reason.TOOL_NOT_ALLOWED: About("a step called a tool its workflow does not declare"),
    Reason.TOOL_FAILURE: About(
        "the brand's system failed to answer",
        "Check the order system, then finish the request the workflow started."),
    Reason.IDENTITY_REQUIRED: About("the workflow needs a verified customer"),
    Reason.IDENTITY_NOT_FOUND: About("the customer could not be verified",
                                     "Verify the customer's identity another way."),
    Reason.IDENTITY_INSUFFICIENT: About(
        "the customer could not be verified as strongly as the request needs",
        "Verify the customer to the level the request needs (e.g. a one-time code) before "
        "going on."),
    Reason.IDENTITY_NOT_ASSERTED: About(
        "the customer named an account other than the one the brand's site signed in",
        "Treat the conversation as the signed-in customer's only; verify any other request "
        "separately."),
    Reason.IDENTITY_LOCKED: About(
        "the customer failed verification as many times as the brand's policy allows",
        "Verify the customer by a stronger route (a call back to the number on file) before "
        "discussing the account; the agent told them nothing about which detail was wrong."),
    Reason.THIRD_PARTY: About("the customer asked about someone else's account",
                              "Tell them how the account holder can reach us."),
    Reason.POLICY_LIMIT: About("the request is outside what the policy lets the agent do",
                               "Decide whether an exception to the policy applies."),
}


def about(reason: str) -> About:
    """What `reason` means; a reason recorded by an older release reads as its words."""
    try:
        return ABOUT[Reason(reason)]
    except ValueError:
        return About(reason.replace("_", " "))
