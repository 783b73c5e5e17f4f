"""Request and response bodies of /v1, as pydantic models (they also feed the OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Customer(Strict):
    id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    signature: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$",
        description="hex HMAC-SHA256 of `id` (or of `email` when there is no id) with one of "
                    "the brand's identity secrets: the brand's site vouches for this customer "
                    "(assurance `asserted`). Required for `id` or `email` on the public widget.")


class CreateConversation(Strict):
    customer: Customer = Field(default_factory=Customer)
    channel: str = Field(default="web", pattern=r"^[a-z][a-z0-9_-]{0,31}$")


class PostMessage(Strict):
    text: str = Field(description="The customer's message.")


#: The `html` field beside every message's `text` (see appliance/web/markup.py).
HTML_DESCRIPTION = (
    "The text as sanitized HTML, ready to insert into a page: Markdown rendered for the "
    "agent, human agents and the system (p, strong, em, ul, ol, li, a, code, pre, "
    "blockquote, headings, br, hr; links absolute, opening in a new tab), the customer's "
    "text escaped with its line breaks kept. Raw HTML in the text is shown, never run.")


class Greeting(BaseModel):
    id: str
    text: str
    html: str = Field(description=HTML_DESCRIPTION)


class ConversationCreated(BaseModel):
    id: str
    brand: str
    status: str
    channel: str
    customer: dict[str, Any]
    created_at: str
    greeting: Greeting
    token: str | None = Field(default=None, description="Widget sessions only: a bearer token "
                              "for this conversation's endpoints.")


class Citation(BaseModel):
    article: str = Field(description="The canonical article's id.")
    title: str
    location: str | None = Field(description="Where the primary source document lives.")
    source_ids: list[str] = Field(description="External ids of every source document merged "
                                  "into the article (e.g. a jsonl source's `id`).")


class MessageOut(BaseModel):
    id: str
    role: Literal["customer", "agent", "human", "system"] = Field(
        description="`human`: written by one of the brand's human agents after a handoff.")
    text: str
    html: str = Field(description=HTML_DESCRIPTION)
    model: str | None = None
    author: str | None = Field(default=None, description="The human agent, for `human`.")
    created_at: str
    citations: list[Citation] = Field(default_factory=list)


class EscalationStats(BaseModel):
    days: int
    conversations: int = Field(description="Conversations opened in the period.")
    handoffs: int
    escalation_rate: float = Field(description="handoffs / conversations")
    by_reason: dict[str, int]
    by_workflow: dict[str, int]
    time_to_human_s: dict[str, float | int | None] = Field(
        description="median and max seconds from handoff to a human taking it; taken: how many")
    waiting: int = Field(description="Handoffs no human has taken yet.")


class Rates(BaseModel):
    """Each rate's numerator and denominator are in docs/reporting.md; null when the
    denominator is 0."""

    involvement: float | None = Field(description="involved / ended")
    resolution: float | None = Field(description="(resolved + saved + upsell) / involved")
    confirmed: float | None
    assumed: float | None
    workflow: float | None
    deflection: float | None = Field(description="(involved - escalated) / involved")
    escalation: float | None = Field(description="escalated / involved")
    abandonment: float | None = Field(description="abandoned / ended")
    automation: float | None = Field(description="involvement x resolution")


class Figures(BaseModel):
    conversations: int = Field(description="Conversations opened in the range.")
    open: int = Field(description="Without an outcome yet (or with a reversed one).")
    ended: int
    involved: int = Field(description="Ended conversations in which the customer wrote.")
    outcomes: dict[str, int] = Field(description="Ended conversations by outcome type.")
    resolutions: dict[str, int] = Field(description="Resolved ones by how: confirmed, "
                                        "assumed, workflow.")
    upsell_value: str = Field(description="The upsells' recorded value, a decimal string.")
    rates: Rates


class Group(Figures):
    key: str = Field(description="The day (YYYY-MM-DD) or the workflow ('none': no workflow).")


class Csat(BaseModel):
    responses: int
    average: float | None
    distribution: dict[str, int] = Field(description="Latest rating per conversation, 1 to 5.")


class HandoffReason(BaseModel):
    reason: str
    count: int


class Funnel(BaseModel):
    workflow: str
    started: int
    identity: int
    confirmed: int
    written: int


class Billing(BaseModel):
    currency: str
    billed: str = Field(description="What the range's outcomes bill, net of reversals (the "
                        "ledger's provisional and reversal lines).")
    period: str = Field(description="The invoice month the range ends in.")
    billable_this_period: str = Field(description="That month's invoice total so far.")
    cost_per_resolution: str | None
    human_cost_per_contact: str = Field(description="From the brand's contract.")
    savings: str | None = Field(description="resolutions x human cost - billed; null while "
                                "the human cost is 0.")


class MetricsSummary(BaseModel):
    brand: str | None
    since: str
    until: str = Field(description="Exclusive.")
    group_by: Literal["day", "workflow"] | None
    totals: Figures
    groups: list[Group]
    csat: Csat
    handoff_reasons: list[HandoffReason] = Field(description="The most frequent first.")
    funnels: list[Funnel]
    billing: Billing | None = Field(description="null for a brand without a contract.")


class UnansweredExample(BaseModel):
    conversation: str
    text: str
    action: Literal["no_answer", "clarify", "out_of_scope"]


class UnansweredQuestion(BaseModel):
    question: str = Field(description="The group's member nearest its centre.")
    count: int
    actions: dict[str, int] = Field(description="Messages per supervisor action.")
    examples: list[UnansweredExample] = Field(description="The newest first, at most 5.")


class Unanswered(BaseModel):
    total: int = Field(description="Unanswered customer messages in the range.")
    clustered: int = Field(description="The newest of them that were grouped (at most "
                           "500).")
    questions: list[UnansweredQuestion] = Field(description="The 10 biggest groups of "
                                                "messages that ask the same thing.")


class AgentMessage(BaseModel):
    id: str
    role: Literal["agent"]
    text: str = Field(description="The reply as written (Markdown); authoritative over the "
                      "streamed `delta` pieces.")
    html: str = Field(description=HTML_DESCRIPTION)
    model: str
    latency_ms: float
    fallback: bool = Field(description="True when a fallback model or the canned reply answered.")
    confidence: Literal["normal", "degraded"] = Field(
        description="`degraded` when the reply did not come from the task's first-choice model "
        "(a fallback model or the canned reply answered: `fallback` is true); `normal` "
        "otherwise. `model` names the model that answered.")
    citations: list[Citation] = Field(
        default_factory=list, description="The knowledge the reply is grounded in.")


class ConversationStatus(BaseModel):
    id: str
    status: str = Field(description="`active`, `pending_human` (handed to a human) or `closed`.")
    status_reason: str | None = Field(
        default=None, description="Why the conversation has its status: the supervisor's rule "
        "that handed it to a human (`pending_human`), or `idle` for one closed after "
        "inactivity.")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class MessageReply(BaseModel):
    message: AgentMessage
    conversation: ConversationStatus
    usage: Usage


class OutcomeOut(BaseModel):
    conversation: str
    type: Literal["resolved", "saved", "upsell", "escalated", "unresolved", "abandoned"]
    how: Literal["confirmed", "workflow", "assumed"] | None = Field(
        description="For a resolution: the customer confirmed it, a workflow completed its "
        "write, or the customer left after an answer (counted after the brand's window).")
    state: Literal["provisional", "settled", "reversed"]
    billable: bool
    amount: str | None = Field(description="What it bills (a decimal string) under the "
                               "brand's contract when it was attributed; null without one.")
    currency: str | None
    evidence: dict[str, Any] = Field(description="The rule that decided, how the conversation "
                                     "ended, and the message, workflow, tool-call and "
                                     "feedback references behind it.")
    transcript_sha256: str
    attributed_at: str
    settles_at: str
    settled_at: str | None
    reversed_at: str | None
    reversal_reason: str | None


class Transcript(BaseModel):
    id: str
    brand: str
    status: str = Field(description="`active`, `pending_human` (handed to a human) or `closed`.")
    status_reason: str | None = Field(
        default=None, description="Why the conversation has its status: the supervisor's rule "
        "that handed it to a human (`pending_human`), or `idle` for one closed after "
        "inactivity.")
    channel: str
    customer: dict[str, Any]
    created_at: str
    updated_at: str
    closed_at: str | None
    messages: list[MessageOut]
    outcome: OutcomeOut | None = Field(
        default=None, description="What the conversation achieved, once it has ended "
        "(docs/outcomes.md).")


class Outcomes(BaseModel):
    outcomes: list[OutcomeOut]


class PostFeedback(Strict):
    resolved: bool | None = Field(default=None, description="Did this solve it?")
    csat: int | None = Field(default=None, ge=1, le=5, description="A 1-5 rating.")
    comment: str | None = Field(default=None, max_length=2000)


class FeedbackOut(BaseModel):
    id: int
    conversation: str
    resolved: bool | None
    csat: int | None


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class ErrorBody(BaseModel):
    error: ErrorDetail
    request_id: str | None
