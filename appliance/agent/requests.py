"""Telling a question about how things work from a request to act.

"What is your return policy?", "how long do refunds take?" and "can I exchange for a different
product?" ask for the brand's knowledge; "I want to return my headphones" and "can you cancel my
order?" ask the agent to act, which a workflow does. The difference is in the form: a question
with nothing of the customer's own in it (no "my", no order number or email) is about the policy.
"""

from __future__ import annotations

import re

_GREETING = re.compile(r"^((hi|hello|hey|hiya|good (morning|afternoon|evening))\b[\s,.!]*)+",
                       re.IGNORECASE)
_QUESTION = re.compile(
    r"^(how|what|what's|whats|when|why|which|where|who|is|are|do|does|did|can|could|may|will|"
    r"would|should|am|if)\b", re.IGNORECASE)
#: Something that names one of the customer's own records (an order or account number, an
#: email): then the question is a request about that record.
_RECORD = re.compile(r"[#]?\b[a-z]\d{5,}\b|\S+@\S+\.\w+|\b\d{4,}\b", re.IGNORECASE)
#: "my", "our": a request about the customer's own thing ("can you cancel my order?"), unless
#: the question asks how a rule applies to it (_APPLIES).
_MINE = re.compile(r"\b(my|mine|our|ours)\b", re.IGNORECASE)
#: A question about how a rule applies to the customer's own account or card, which the
#: knowledge answers: "why is there a hold on my card?", "do I lose my rewards if I close my
#: card?", "am I going to get charged?", "how much do I need to keep in my checking?".
_APPLIES = re.compile(
    r"\b(why|what happens|how much|how many|what'?s going on|is there|are there|"
    r"do i (lose|have to|need to|keep|get to keep)|will i (lose|be charged|get charged|still)|"
    r"am i (going to|gonna)|is (that|this|it) (money )?(mine|normal|ok|okay|safe))\b",
    re.IGNORECASE)
#: The customer's own figures ("how much do I owe on my card?", "how much is left on my
#: credit card?"): their account's data, which a workflow reads, not a rule.
_OWN_FIGURES = re.compile(
    r"\b(how much|what) (do i owe|i owe|is left|have i spent|did i spend|is my (balance|"
    r"available credit|credit limit))\b", re.IGNORECASE)
_ASKS_TO_ACT = re.compile(r"\b(can|could|would|will) (you|u)\b", re.IGNORECASE)
#: Something the customer did ("an order I placed"): a request about it, unless the question
#: is about things of a kind ("can a refund go to another card than the one I paid with?").
_DONE = re.compile(r"\bi (placed|made|ordered|bought|received|got|paid|sent)\b", re.IGNORECASE)
_OF_A_KIND = re.compile(
    r"^(can|could|does|do|is|are|will|would|may|should|how (long|soon) (does|do|will|would))"
    r"\s+(a|an|any)\b", re.IGNORECASE)
#: Asking for something ("I need to change…"), not asking whether one must ("do I need to…?").
_WANTS = re.compile(r"(?<!\bdo )\b(i (want|need|wish)|i'd like|i would like|please|help me)\b",
                    re.IGNORECASE)
#: Saying what the customer wants done ("I want to dispute a charge", "I'd like to get the
#: fee waived"): a request even when it names a fee or a charge, unless what they want is to
#: know ("I want to check the fees", "I'd like to see the charges"), or they don't know what
#: they need to do.
_WANTS_DONE = re.compile(
    r"(?<!\bwhat )\b(i (want|need|wish)|i'd like|i would like)\s+to\s+(?!(know|check|"
    r"understand|learn|ask|find out|see|view|list|look|review|hear|read|compare|do|"
    r"get (some |more |a )?(info|information|details|list|quote))\b)\w+",
    re.IGNORECASE)
#: Asking about a rule or a fact, whatever the sentence's form ("I want to check the fees").
_LEARN = re.compile(
    r"\b(polic(y|ies)|options?|fees?|charges?|penalt(y|ies)|methods?|how long|how much|"
    r"how many|how soon|information|info|allowed|possible|rules?)\b", re.IGNORECASE)


def asks_about_policy(text: str) -> bool:
    """True for a question about how something works, not a request to act on the customer's
    own order or account."""
    bare = _GREETING.sub("", text.strip())
    if _RECORD.search(bare) or (_DONE.search(bare) and not _OF_A_KIND.match(bare)):
        return False
    if _MINE.search(bare):
        return bool(_APPLIES.search(bare)) and not (
            _WANTS.search(bare) or _ASKS_TO_ACT.search(bare) or _OWN_FIGURES.search(bare))
    if _WANTS_DONE.search(bare) and not _QUESTION.match(bare) and (
            "?" not in bare or _ASKS_TO_ACT.search(bare)):
        return False  # what they want done, with no question of how things work after it
    learns = bool(_LEARN.search(bare))
    return learns or (bool(_QUESTION.match(bare)) and not _WANTS.search(bare))
