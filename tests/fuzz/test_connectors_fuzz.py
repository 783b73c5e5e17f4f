"""Every knowledge connector fed malformed files (Hypothesis): random bytes, a good file cut
short, a good file with bytes spliced in. Beside one good file in the same source, each read
runs to its end: the bad file is a document or a DocumentError that names it with a message,
the good file is still read, and nothing raises. Derandomized, with no example database."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import hypothesis
import pytest
from fpdf import FPDF
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from appliance.knowledge.base import DocumentError, RawDocument
from appliance.knowledge.connectors import CONNECTORS, KINDS

GOOD_TEXT = "Staff only."
SETTINGS = hypothesis.settings(max_examples=60, derandomize=True, database=None, deadline=None,
                               suppress_health_check=list(HealthCheck))


def _pdf() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text=GOOD_TEXT)
    return bytes(pdf.output())


def _slack_day(text: str, ts: str) -> bytes:
    return json.dumps([{"type": "message", "user": "U1", "text": text, "ts": ts}]).encode()


@dataclass(frozen=True)
class Layout:
    """A source of one kind: the files around the two under test, the good file's path and
    bytes, and where the malformed one goes (paths relative to the source root)."""

    good: tuple[str, bytes]
    bad: str
    around: tuple[tuple[str, bytes], ...] = ()
    #: What the malformed file is made from, when not the good file: a Slack message in
    #: another day's file with the good one's ts would rightly stand for it.
    seed: bytes | None = None

    @property
    def bad_seed(self) -> bytes:
        return self.good[1] if self.seed is None else self.seed


LAYOUTS: dict[str, Layout] = {
    "faq_html": Layout(("good.html", f"<html><body><h1>Secret</h1><p>{GOOD_TEXT}</p>"
                        "</body></html>".encode()), "bad.html"),
    "markdown": Layout(("good.md", f"# Secret\n\n{GOOD_TEXT}\n".encode()), "bad.md"),
    "jsonl": Layout(("good.jsonl", json.dumps({"id": "1", "title": "Secret",
                                               "content": GOOD_TEXT}).encode() + b"\n"),
                    "bad.jsonl"),
    "zendesk_macros": Layout(("good.json", json.dumps({"macros": [{
        "id": 1, "title": "Secret", "actions": [
            {"field": "comment_value", "value": GOOD_TEXT}]}]}).encode()), "bad.json"),
    "confluence": Layout(("Secret_42.html", f'<html><body><div id="main-content"><p>{GOOD_TEXT}'
                          "</p></div></body></html>".encode()), "Broken_43.html"),
    "slack": Layout(("general/2024-03-12.json", _slack_day(GOOD_TEXT, "1710238500.000200")),
                    "general/2024-03-13.json", seed=_slack_day("Other", "1710324900.000300"),
                    around=(
        ("channels.json", json.dumps([{"id": "C1", "name": "general"}]).encode()),
        ("users.json", json.dumps([{"id": "U1", "name": "ann", "real_name": "Ann"}]).encode()),
    )),
    "pdf": Layout(("good.pdf", _pdf()), "bad.pdf"),
}


def malformed(good: bytes) -> st.SearchStrategy[bytes]:
    """Bytes like a file of the kind gone wrong: anything, the good file cut short, or the
    good file with bytes spliced in."""
    cut = st.integers(0, len(good) - 1).map(lambda at: good[:at])
    spliced = st.tuples(st.integers(0, len(good)), st.binary(min_size=1, max_size=64)).map(
        lambda pair: good[:pair[0]] + pair[1] + good[pair[0]:])
    return st.one_of(st.binary(max_size=2048), cut, spliced)


def _source(root: Path, layout: Layout) -> Callable[[bytes], Path]:
    def write(bad: bytes) -> Path:
        shutil.rmtree(root, ignore_errors=True)
        for name, content in (*layout.around, layout.good, (layout.bad, bad)):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(content)
        return root

    return write


def test_every_kind_has_a_layout() -> None:
    assert set(LAYOUTS) == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_a_malformed_file_is_its_own_error_and_the_rest_is_read(
        kind: str, tmp_path: Path) -> None:
    layout = LAYOUTS[kind]
    write = _source(tmp_path / "source", layout)

    @SETTINGS
    @given(bad=malformed(layout.bad_seed))
    def reads(bad: bytes) -> None:
        results = list(CONNECTORS[kind](write(bad), {}))

        documents = [r for r in results if isinstance(r, RawDocument)]
        errors = [r for r in results if isinstance(r, DocumentError)]
        assert any(GOOD_TEXT in doc.text for doc in documents), results
        for error in errors:
            assert error.message.strip(), error
            assert Path(layout.bad).stem in error.external_id or (
                Path(layout.bad).parent.name in error.external_id), error

    reads()
