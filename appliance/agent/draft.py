"""The draft reply on its way to the customer: released sentence by sentence, each one checked
first, so a customer never sees text that failed a check.

An answer from the knowledge must also say something: a small model often opens with
pleasantries ("Absolutely, I'd be happy to help you with that.") or hands the question back
("Can you please specify what you want to change?") and says nothing the passages say. Such
sentences pass the checks (they state no wrong fact), so the gate holds them until a sentence
with substance follows, and a draft that ends without one fails: the customer gets the passage
itself instead."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

_BOUNDARY = re.compile(r"(?<=[.!?])\s+")
#: The end of a finished sentence: its punctuation, then perhaps a closing quote or bracket.
_FINISHED = re.compile(r"[.!?][\"')\]]*\s*$")
_WORDS = re.compile(r"\w+")
#: Text after which a small model is writing the customer's next turn, not its own.
TURN_MARKERS = ("\nCustomer:", "\nUser:", "\nuser:", "<|im_end|>", "<|im_start|>")

#: check(sentence) -> the sentence to release, or None to stop releasing (the draft failed).
Check = Callable[[str], str | None]
#: substantive(sentence) -> whether the checked sentence says something of what was asked for.
Substantive = Callable[[str], bool]


class SentenceGate:
    """Buffer streamed text; release whole sentences that pass `check`. With `substantive`,
    sentences are held back until one is substantive, and a draft with none fails."""

    def __init__(self, check: Check, substantive: Substantive | None = None) -> None:
        self._check = check
        self._substantive = substantive
        self._said_something = substantive is None
        self._held: list[str] = []
        self._buffer = ""
        self._released: list[str] = []
        self._said: set[str] = set()
        self.failed = False
        self.ended = False

    def feed(self, text: str) -> Iterator[str]:
        """Sentences (with their leading space) now released from `text`."""
        if self.failed or self.ended:
            return
        self._buffer += text
        for marker in TURN_MARKERS:
            if marker in self._buffer:
                self._buffer = self._buffer.split(marker, 1)[0]
                self.ended = True
        parts = _BOUNDARY.split(self._buffer)
        complete, self._buffer = (parts, "") if self.ended else (parts[:-1], parts[-1])
        for sentence in complete:
            yield from self._release(sentence)

    def flush(self, *, cut: bool = False) -> Iterator[str]:
        """Release what is left at the end of generation. When the model was `cut` off (it
        ran out of tokens), a last sentence without its closing punctuation is unfinished
        ("Refunds usually take 5 to") and is dropped."""
        rest, self._buffer = self._buffer, ""
        if rest.strip() and not (cut and not _FINISHED.search(rest)):
            yield from self._release(rest)
        if not self._said_something:
            self.failed = True

    def _release(self, sentence: str) -> Iterator[str]:
        if self.failed or not sentence.strip():
            return
        checked = self._check(sentence.strip())
        if checked is None:
            self.failed = True
            return
        if checked:
            said = " ".join(_WORDS.findall(checked.lower()))
            if said in self._said:
                # A small model that repeats a sentence has started to loop: the reply ends
                # with what it said before.
                self.ended, self._buffer = True, ""
                return
            self._said.add(said)
            self._held.append(checked)
            if not self._said_something and self._substantive is not None:
                self._said_something = self._substantive(checked)
            if self._said_something:
                piece = (" " if self._released else "") + " ".join(self._held)
                self._released += self._held
                self._held.clear()
                yield piece

    @property
    def text(self) -> str:
        return " ".join(self._released)

    @property
    def held(self) -> str:
        """Sentences held back, waiting for one with substance."""
        return " ".join(self._held)
