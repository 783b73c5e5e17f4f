"""Keeping replies honest: facts in a draft must be in the retrieved knowledge, and a draft that
states one that is not, or that says little the knowledge supports, is replaced by a quote of
the passages' relevant sentences (appliance/agent/quoting.py).

A "fact" here is what a small model most often invents: a number with its unit (a duration, an
amount, a percentage, a count) or a bare number. Each must appear in the retrieved text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from appliance.knowledge.consolidate import quantities

_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w.]*\d)")
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset({
    "a", "an", "the", "is", "are", "was", "were", "be", "to", "of", "in", "on", "for", "and",
    "or", "my", "your", "i", "you", "we", "it", "do", "does", "can", "how", "what", "when",
    "where", "why", "which", "with", "at", "by", "from", "this", "that", "there", "have", "has",
    "me", "our", "us", "i'm", "im", "will", "would", "could", "should", "please", "if", "so",
    "any", "all", "just", "let", "know", "here", "help", "happy", "glad", "sorry", "am",
})


def _numbers(text: str) -> set[str]:
    return {match.group(0).replace(",", "") for match in _NUMBER.finditer(text)}


def ungrounded_facts(draft: str, knowledge: Sequence[str]) -> list[str]:
    """The facts stated in `draft` that none of the `knowledge` passages states."""
    source = "\n".join(knowledge)
    known_quantities = {(q.unit, q.value) for q in quantities(source)}
    known_numbers = _numbers(source)
    missing = [
        q.text for q in quantities(draft) if (q.unit, q.value) not in known_quantities
    ]
    stated_in_quantities = {q.text for q in quantities(draft)}
    for number in sorted(_numbers(draft)):
        if number not in known_numbers and not any(number in s for s in stated_in_quantities):
            missing.append(number)
    return missing


#: Share of a sentence's content words that the knowledge must contain for the sentence to
#: count as drawn from it. Small models often answer a question with pleasantries that say
#: nothing ("I'm here to help with any questions"); those fail this and the customer gets the
#: passage itself.
MIN_SUPPORT = 0.5


def unsupported(sentence: str, knowledge: Sequence[str]) -> bool:
    """True when too few of the sentence's content words appear in the knowledge."""
    words = _content_words(sentence)
    if len(words) < 3:
        return False
    known = _content_words("\n".join(knowledge))
    return len(words & known) / len(words) < MIN_SUPPORT


#: Words of courtesy and of asking, which say nothing of what the knowledge holds.
_COURTESY = frozenset({
    "absolutely", "certainly", "sure", "course", "definitely", "great", "assist", "question",
    "questions", "thank", "thanks", "need", "want", "like", "welcome", "hope", "feel", "free",
})


def says_something(sentence: str, knowledge: Sequence[str], question: str) -> bool:
    """True when the sentence states something of the knowledge that the customer's
    `question` did not already say: at least two of its content words are in the knowledge
    and not in the question, and it is not itself a question. "Absolutely, I'd be happy to
    help." and "Could you tell me what payment methods are available?" say nothing."""
    if sentence.rstrip().endswith("?"):
        return False
    asked = _content_words(question)
    known = _content_words("\n".join(knowledge))
    new = {w for w in _content_words(sentence) - asked - _COURTESY if len(w) > 1}
    return len(new & known) >= 2


#: Words in a row a reply sentence may share with an internal passage before it counts as
#: quoting it: a paraphrase of an agent-only procedure shares a few words, a copy a run.
QUOTE_RUN = 6


def quotes_internal(sentence: str, internal: Sequence[str], customer: Sequence[str]) -> bool:
    """True when the sentence repeats a run of `QUOTE_RUN` words of an `internal` passage
    that no `customer`-facing passage also says: the model copying an agent-only procedure,
    which may ground an answer but is never quoted to a customer."""
    runs = _runs(sentence)
    if not runs:
        return False
    inside = set().union(*(_runs(text) for text in internal)) if internal else set()
    public = set().union(*(_runs(text) for text in customer)) if customer else set()
    return bool(runs & inside - public)


def _runs(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.casefold())
    return {tuple(words[i:i + QUOTE_RUN]) for i in range(len(words) - QUOTE_RUN + 1)}


def _content_words(text: str) -> set[str]:
    """Content words, crudely stemmed ("refunds" and "refund" match)."""
    return {w.rstrip("s") for w in _WORD.findall(text.casefold()) if w not in _STOPWORDS}
