"""Bar charts drawn by the server as SVG (templates/admin/_chart.html): no script and nothing
from the network. Every bar segment links to the conversations it counts.

This module only lays the bars out; the template escapes every label and link.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Fill colours by what a segment counts (the admin stylesheet's palette).
FILLS = {
    "resolved": "#067647", "saved": "#32d583", "upsell": "#2f6fed", "escalated": "#b42318",
    "unresolved": "#dc6803", "abandoned": "#98a2b3", "open": "#d0d5dd", "bar": "#2f6fed",
}
_LABEL_WIDTH = 150
_ROW_HEIGHT = 22
_WIDTH = 640


@dataclass(frozen=True)
class Segment:
    """One part of a bar: how many, what they are (a key of FILLS) and where they are."""

    value: int
    kind: str
    href: str
    title: str


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    fill: str
    href: str
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "start"


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    rects: list[Rect]
    labels: list[Label]


def columns(title: str, bars: Sequence[tuple[str, Sequence[Segment]]],
            height: int = 160) -> Chart:
    """Stacked vertical bars, one per label (e.g. a day), scaled to the tallest; labels under
    about ten of them, evenly spaced."""
    top = max((sum(s.value for s in segments) for _, segments in bars), default=0) or 1
    step = _WIDTH / max(len(bars), 1)
    every = max(1, round(len(bars) / 10))
    rects, labels = [], []
    for n, (label, segments) in enumerate(bars):
        y = float(height)
        for segment in segments:
            if not segment.value:
                continue
            tall = segment.value / top * height
            y -= tall
            rects.append(Rect(n * step + step * 0.1, y, step * 0.8, tall,
                              FILLS[segment.kind], segment.href, segment.title))
        if n % every == 0:
            labels.append(Label(n * step + step / 2, height + 14, label, "middle"))
    labels.append(Label(0, 10, f"{top}"))
    return Chart(title, _WIDTH, height + 20, rects, labels)


def rows(title: str, bars: Sequence[tuple[str, Segment]]) -> Chart:
    """Horizontal bars, one per label, scaled to the longest, each with its value."""
    top = max((segment.value for _, segment in bars), default=0) or 1
    room = _WIDTH - _LABEL_WIDTH - 50
    rects, labels = [], []
    for n, (label, segment) in enumerate(bars):
        y = n * _ROW_HEIGHT
        wide = segment.value / top * room
        if segment.value:
            rects.append(Rect(_LABEL_WIDTH, y + 3, wide, _ROW_HEIGHT - 6,
                              FILLS[segment.kind], segment.href, segment.title))
        labels.append(Label(_LABEL_WIDTH - 8, y + 15, label, "end"))
        labels.append(Label(_LABEL_WIDTH + wide + 6, y + 15, str(segment.value)))
    return Chart(title, _WIDTH, max(len(bars), 1) * _ROW_HEIGHT, rects, labels)
