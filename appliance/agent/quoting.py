"""The parts of retrieved passages that bear on a question: whole sentences and list items.

A passage is split into units a person would quote: the sentences of its paragraphs (pysbd
finds the boundaries, so "e.g." or "$1.50" does not end one) and the items of its lists, each
list kept with the sentence that leads into it ("Tell us:" then the items). Headings are not
units, and neither are a FAQ's questions (a short line ending in "?" with its answer below):
each unit remembers the heading or question it sits under. A unit's relevance is the cosine
between the question's embedding and its own (the same embedder the retrieval uses); under a
heading that is a question (a FAQ's), the mean of that and the heading's cosine when the mean
is higher: "Standard shipping takes 3 to 5 business days" answers "how long does delivery
take?" because the FAQ's question above it asks just that, though its own words share little
with the customer's. A heading that only names a topic ("Starting a return") lends nothing: a
whole section would rank with it. Units below the brand's `knowledge_min_relevance` are never
chosen.

The same choice serves twice: the few units that go into a grounded prompt, within a token
budget, and the quote that replaces a draft the checks rejected. Only passages of `customer`
sources are quoted; `internal` ones may only ground a draft.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pysbd

from appliance.knowledge.service import Hit
from appliance.signals.base import Embedder, Vectors

_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)])\s+(?P<text>\S.*)$")
#: A Markdown link to a page of the source itself ("[Cancelling](cancellations.md)") means
#: nothing in a chat: its words are kept, the target is not. Web links stay.
_RELATIVE_LINK = re.compile(r"\[([^\]]+)\]\((?!https?://)[^)]*\)")
_HEADING_MARK = re.compile(r"^#{1,6}\s+")
_PLACEHOLDER = re.compile(r"\{\{[^}]*\}\}|\{%.*?%\}")
#: A line this short that starts a paragraph without closing punctuation is a heading.
_HEADING_MAX_WORDS = 10
#: Units cached per chunk (text and embeddings); chunks are immutable, so entries never go stale.
_CACHE_CHUNKS = 2048


@dataclass(frozen=True)
class Unit:
    """A sentence or list item of a passage."""

    text: str
    #: Units of one paragraph, or one list and its lead-in, share a group.
    group: int
    item: bool = False
    #: The sentence ends with ":" and the list after it is its continuation.
    leads: bool = False
    #: The heading, or the FAQ question, the unit sits under ("" for none).
    heading: str = ""


@dataclass(frozen=True)
class Chosen:
    """A unit picked for a question, with where it came from."""

    unit: Unit
    hit: Hit
    relevance: float
    #: Position among all units of the hits (passage order, then unit order).
    order: int


def passage_units(text: str, heading: str = "") -> list[Unit]:
    """The quotable units of a passage, in order; `heading` is the one the passage starts
    under (its chunk's)."""
    segmenter = pysbd.Segmenter(language="en", clean=False)
    lines = [line.strip() for line in text.splitlines()]
    units: list[Unit] = []
    group = 0
    paragraph: list[str] = []

    def close_paragraph() -> None:
        nonlocal group
        if paragraph:
            for sentence in segmenter.segment(" ".join(paragraph)):
                sentence = _tidy(sentence)
                if sentence:
                    units.append(Unit(sentence, group, leads=sentence.endswith(":"),
                                      heading=heading))
            paragraph.clear()
            group += 1

    for index, line in enumerate(lines):
        item = _LIST_ITEM.match(line)
        if not line:
            close_paragraph()
        elif item:
            close_paragraph()
            starts_list = not units or not units[-1].item or units[-1].group != group
            if starts_list and units and units[-1].leads:
                group = units[-1].group  # the list continues its lead-in sentence
            text_of_item = _tidy(item.group("text"))
            if text_of_item:
                units.append(Unit(text_of_item, group, item=True, heading=heading))
            if index + 1 >= len(lines) or not _LIST_ITEM.match(lines[index + 1]):
                group = max(group, units[-1].group if units else group) + 1
        elif not paragraph and _is_heading(line, any(lines[index + 1:])):
            heading = _HEADING_MARK.sub("", line)
        else:
            paragraph.append(line)
    close_paragraph()
    return units


def _is_heading(line: str, more_follows: bool) -> bool:
    """A Markdown heading, or a short line that starts a paragraph, ends without punctuation
    (or with a question mark: a FAQ's question) and has text after it."""
    if _HEADING_MARK.match(line):
        return True
    return (more_follows and len(line.split()) <= _HEADING_MAX_WORDS
            and not line.endswith((".", "!", ":", ",", ";")))


def _tidy(text: str) -> str:
    """The unit as a customer may read it; empty when it holds a helpdesk placeholder
    ("Hi {{ticket.requester.first_name}},"), which only the helpdesk fills in."""
    if _PLACEHOLDER.search(text):
        return ""
    return _RELATIVE_LINK.sub(r"\1", text).strip()


class Quoter:
    """Ranks the units of retrieved passages by relevance to a question."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self._cache: OrderedDict[int, tuple[list[Unit], Vectors, Vectors]] = OrderedDict()
        self._lock = threading.Lock()

    def _units(self, hit: Hit) -> tuple[list[Unit], Vectors, Vectors]:
        """The units of the hit's passage, their embeddings, and row by row the embeddings
        of the FAQ questions they answer (zeros for a unit under none)."""
        with self._lock:
            cached = self._cache.get(hit.chunk_id)
            if cached is not None:
                self._cache.move_to_end(hit.chunk_id)
                return cached
        units = passage_units(hit.text, hit.heading)
        headings = sorted({u.heading for u in units if u.heading.endswith("?")})
        if units:
            # One batch: the units, then each heading once.
            embedded = self._embedder.embed([u.text for u in units] + headings)
            vectors, heading_vectors = embedded[:len(units)], embedded[len(units):]
            of_heading = dict(zip(headings, heading_vectors, strict=True))
            none = np.zeros(vectors.shape[1], dtype=vectors.dtype)
            over = np.stack([of_heading.get(u.heading, none) for u in units])
        else:
            vectors = over = np.zeros((0, 1), dtype=np.float32)
        with self._lock:
            self._cache[hit.chunk_id] = (units, vectors, over)
            while len(self._cache) > _CACHE_CHUNKS:
                self._cache.popitem(last=False)
        return units, vectors, over

    def rank(self, question: Vectors, hits: Sequence[Hit], min_relevance: float
             ) -> list[Chosen]:
        """Every unit of `hits` whose relevance to the question (cosine to its embedding, or
        the mean of that and its FAQ question's when higher) is at least `min_relevance`,
        most relevant first."""
        ranked: list[Chosen] = []
        order = 0
        for hit in hits:
            units, vectors, headings = self._units(hit)
            if not units:
                continue
            own = vectors @ question
            relevance = np.maximum(own, (own + headings @ question) / 2)
            for unit, score in zip(units, relevance.tolist(), strict=True):
                # A question answers nothing, however close its words are to the customer's
                # ("Is our return window 14 or 30 days?" asked in a chat export).
                if score >= min_relevance and not unit.text.endswith("?"):
                    ranked.append(Chosen(unit, hit, float(score), order))
                order += 1
        ranked.sort(key=lambda chosen: (-chosen.relevance, -chosen.hit.score))
        return ranked

    def quote(self, ranked: Sequence[Chosen], *, max_units: int = 3, max_items: int = 8
              ) -> tuple[Hit, str] | None:
        """From units `rank` chose: the best customer-facing passage's most relevant
        sentences, or a list with its lead-in, as Markdown in passage order; None when no
        customer-facing unit was relevant enough. Internal passages are never quoted."""
        facing = [c for c in ranked if c.hit.customer_facing]
        if not facing:
            return None
        top = facing[0]
        best = top.hit
        units, _, _ = self._units(best)
        mine = [c for c in ranked if c.hit.chunk_id == best.chunk_id
                and _same_answer(c.unit, top.unit)][:max_units]
        keep: set[int] = set()
        for chosen in mine:
            index = units.index(chosen.unit)
            keep.add(index)
            group = [i for i, u in enumerate(units) if u.group == chosen.unit.group]
            following = units[index + 1] if index + 1 < len(units) else None
            # "We confirm who you are." goes on into "We need either:" and its list.
            leads_on = following is not None and following.leads and following.group == (
                chosen.unit.group)
            if chosen.unit.item or chosen.unit.leads or leads_on:
                # A list is quoted whole, with its lead-in: never from its middle.
                keep.update(i for i in group if units[i].leads)
                keep.update([i for i in group if units[i].item][:max_items])
        return best, _render([units[i] for i in sorted(keep)])


def _same_answer(unit: Unit, best: Unit) -> bool:
    """Whether `unit` may be quoted with `best`: a FAQ's passage answers several questions,
    and a sentence from another question's answer reads as a non sequitur; sections under
    topic headings are one page's continuation."""
    return unit.heading == best.heading or not (
        unit.heading.endswith("?") or best.heading.endswith("?"))


def facts(ranked: Sequence[Chosen], budget: int, count: Callable[[str], int]
          ) -> list[tuple[Hit, list[str]]]:
    """The most relevant of the `ranked` units that fit `budget` tokens (`count` counts
    them), grouped by passage and in passage order: the knowledge a grounded prompt carries.
    Customer-facing passages are preferred: where they hold a relevant unit, internal ones
    (an internal wiki's stale figure, a chat thread's guesses) are left out, so the draft
    says what the customer-facing pages say; otherwise internal units ground the draft, which
    may not copy them (`grounding.quotes_internal`)."""
    facing = [chosen for chosen in ranked if chosen.hit.customer_facing]
    kept: list[Chosen] = []
    spent = 0
    for chosen in facing or ranked:
        cost = count(chosen.unit.text) + 2
        if spent + cost <= budget:
            kept.append(chosen)
            spent += cost
    by_hit: dict[int, list[Chosen]] = {}
    for chosen in sorted(kept, key=lambda c: c.order):
        by_hit.setdefault(chosen.hit.chunk_id, []).append(chosen)
    return [(group[0].hit, [c.unit.text for c in group]) for group in by_hit.values()]


def _render(units: Sequence[Unit]) -> str:
    """Sentences joined into paragraphs, list items as a Markdown list."""
    out: list[str] = []
    previous: Unit | None = None
    for unit in units:
        if previous is None:
            gap = ""
        elif unit.item and previous.item:
            gap = "\n"
        elif previous.item or unit.item or previous.group != unit.group:
            gap = "\n\n"
        else:
            gap = " "
        out.append(gap + (f"- {unit.text}" if unit.item else unit.text))
        previous = unit
    return "".join(out)
