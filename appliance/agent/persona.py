"""The brand's voice: the system prompt, and the checks a drafted reply must pass."""

from __future__ import annotations

import re
from collections.abc import Sequence

from appliance.agent.draft import TURN_MARKERS
from appliance.brands import Persona

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# Small models sometimes prefix a reply with a speaker label or continue as the customer.
_SPEAKER_PREFIX = re.compile(r"^\s*(?:assistant|agent|[A-Z][a-z]+)\s*:\s*", re.IGNORECASE)
# "My name is Emily": small models invent a name; the persona's name replaces it.
_NOT_NAMES = frozenset({"Sorry", "Glad", "Happy", "Here", "Not", "Afraid", "Unable", "Able"})
_SELF_NAME = re.compile(r"\b((?i:my name is|my name's)|I'm|I am)\s+([A-Z][a-z]+)\b(?![ -][A-Z])")


def system_prompt(
    brand_name: str, persona: Persona,
    knowledge: Sequence[tuple[str, Sequence[str]]] | None = None,
) -> str:
    """The system prompt in the brand's voice. With `knowledge` ((title, sentences) per
    passage) the model is told to answer from those sentences alone.

    What is fixed for the brand comes first and the turn's knowledge last, so the model's
    evaluated prefix is reused from one turn to the next."""
    lines = [
        f"You are {persona.agent_name}, the assistant of {brand_name}. Tone: {persona.tone}",
    ]
    if persona.never_say:
        lines.append("Never say: " + "; ".join(persona.never_say) + ".")
    if persona.language != "en":
        lines.append(f"Reply in the language with code {persona.language}.")
    if knowledge:
        lines.append("Answer in one or two sentences, only with these facts. If they do not "
                     "answer, say you don't know and offer a colleague.")
        for title, sentences in knowledge:
            lines.append(f"{title}:")
            lines.extend(f"- {sentence}" for sentence in sentences)
    else:
        lines.append("Reply briefly. Never invent facts, prices, fees or dates; if you do not "
                     "know, say so and offer a colleague.")
    return "\n".join(lines)


def clean_reply(text: str, persona: Persona) -> str:
    """Trim what a small model adds around a reply and drop sentences with banned phrases."""
    for marker in TURN_MARKERS:
        text = text.split(marker, 1)[0]
    speaker = _SPEAKER_PREFIX.match(text)
    if speaker and speaker.group(0).strip(" :").lower() in (
        "assistant", "agent", persona.agent_name.lower()
    ):
        text = text[speaker.end():]
    text = _SELF_NAME.sub(
        lambda m: m.group(0) if m.group(2) in _NOT_NAMES else f"{m.group(1)} {persona.agent_name}",
        text,
    )
    banned = [phrase.lower() for phrase in persona.never_say]
    sentences = [
        s for s in _SENTENCE.split(text.strip())
        if not any(phrase in s.lower() for phrase in banned)
    ]
    return " ".join(sentences).strip()
