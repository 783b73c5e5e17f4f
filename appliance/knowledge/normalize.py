"""Text normalisation, content hashes and heading-aware, token-bounded chunking."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.knowledge.base import Section

_SPACE = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
#: Chunk size in tokens of the embedder (MiniLM reads 256), and the overlap between chunks.
MAX_CHUNK_TOKENS = 200
OVERLAP_TOKENS = 40
TokenCounter = Callable[[str], int]


def normalize_text(text: str) -> str:
    """NFKC, one space between words, at most one blank line between paragraphs."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [_SPACE.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def content_hash(*parts: str) -> str:
    """Hash of the normalised, case-folded text: equal for exact duplicates."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(" ".join(normalize_text(part).casefold().split()).encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def approx_tokens(text: str) -> int:
    """Word-piece tokens, estimated: English runs about 1.3 per word in MiniLM's vocabulary."""
    return int(len(text.split()) * 1.3) + 1


@dataclass(frozen=True)
class ChunkDraft:
    heading: str
    text: str


def _pieces(text: str, count: TokenCounter, limit: int) -> list[tuple[int, str]]:
    """(paragraph number, text): paragraphs, any over `limit` split into sentences (and words
    if need be)."""
    pieces: list[tuple[int, str]] = []
    paragraphs = (p.strip() for p in text.split("\n\n"))
    for number, paragraph in enumerate(p for p in paragraphs if p):
        if count(paragraph) <= limit:
            pieces.append((number, paragraph))
            continue
        for sentence in _SENTENCE.split(paragraph):
            if count(sentence) <= limit:
                pieces.append((number, sentence))
                continue
            words = sentence.split()
            step = max(1, int(limit / 1.3))
            pieces.extend((number, " ".join(words[i:i + step]))
                          for i in range(0, len(words), step))
    return pieces


def _join(pieces: Sequence[tuple[int, str]]) -> str:
    """Sentences of one paragraph join with a space, paragraphs with a blank line."""
    out = ""
    for index, (number, text) in enumerate(pieces):
        if index:
            out += " " if pieces[index - 1][0] == number else "\n\n"
        out += text
    return out


def chunk_sections(
    sections: Sequence[Section], *, count: TokenCounter = approx_tokens,
    max_tokens: int = MAX_CHUNK_TOKENS, overlap: int = OVERLAP_TOKENS,
) -> list[ChunkDraft]:
    """Chunks of at most `max_tokens`. A long section is split into chunks that share up to
    `overlap` tokens of trailing text; short whole sections that follow each other are packed
    into one chunk, each keeping its heading line (fewer, fuller chunks embed faster and
    retrieve with their context)."""
    return _pack(_split_sections(sections, count, max_tokens, overlap), count, max_tokens)


def _pack(chunks: list[ChunkDraft], count: TokenCounter, max_tokens: int) -> list[ChunkDraft]:
    packed: list[ChunkDraft] = []
    size = 0
    for chunk in chunks:
        cost = count(chunk.text) + (count(chunk.heading) if chunk.heading else 0)
        if packed and size + cost <= max_tokens:
            body = f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text
            packed[-1] = ChunkDraft(packed[-1].heading, f"{packed[-1].text}\n\n{body}")
            size += cost
        else:
            packed.append(chunk)
            size = cost
    return packed


def _split_sections(
    sections: Sequence[Section], count: TokenCounter, max_tokens: int, overlap: int,
) -> list[ChunkDraft]:
    chunks: list[ChunkDraft] = []
    for section in sections:
        heading = normalize_text(section.heading)
        budget = max_tokens - (count(heading) if heading else 0)
        current: list[tuple[int, str]] = []
        size = 0
        for piece in _pieces(normalize_text(section.text), count, budget):
            cost = count(piece[1])
            if current and size + cost > budget:
                chunks.append(ChunkDraft(heading, _join(current)))
                tail: list[tuple[int, str]] = []
                tail_size = 0
                for previous in reversed(current):
                    previous_cost = count(previous[1])
                    if tail_size + previous_cost > overlap:
                        break
                    tail.insert(0, previous)
                    tail_size += previous_cost
                # The overlap must leave room for the piece that starts the next chunk.
                while tail and tail_size + cost > budget:
                    tail_size -= count(tail.pop(0)[1])
                current, size = tail, tail_size
            current.append(piece)
            size += cost
        if current:
            chunks.append(ChunkDraft(heading, _join(current)))
    return chunks
