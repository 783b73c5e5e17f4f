"""What every connector promises (appliance/knowledge/base.py): SourceError only for the location
as a whole, an empty export is no documents, and nothing outside the source root is read."""

from __future__ import annotations

import pytest

from appliance.knowledge.base import DocumentError, SourceError
from appliance.knowledge.connectors import CONNECTORS, KINDS

#: A file each file-reading kind would pick up, with text it would accept.
SAMPLE_FILES = {
    "faq_html": ("page.html", "<html><body><h1>Secret</h1><p>Staff only.</p></body></html>"),
    "markdown": ("notes.md", "# Secret\n\nStaff only.\n"),
    "jsonl": ("kb.jsonl", '{"id": "1", "title": "Secret", "content": "Staff only."}\n'),
    "zendesk_macros": (
        "macros.json",
        '{"macros": [{"id": 1, "title": "Secret", "actions": '
        '[{"field": "comment_value", "value": "Staff only."}]}]}',
    ),
    "confluence": (
        "Secret_42.html",
        '<html><body><div id="main-content"><p>Staff only.</p></div></body></html>',
    ),
}


def test_it_registers_one_reader_per_kind():
    assert KINDS == (
        "faq_html",
        "confluence",
        "slack",
        "zendesk_macros",
        "pdf",
        "markdown",
        "jsonl",
    )
    assert set(CONNECTORS) == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_it_raises_source_error_for_a_missing_path(kind, tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        list(CONNECTORS[kind](tmp_path / "no-such-export", {}))


@pytest.mark.parametrize("kind", KINDS)
def test_it_reads_an_empty_export_as_no_documents(kind, tmp_path):
    assert list(CONNECTORS[kind](tmp_path, {})) == []


@pytest.mark.parametrize("kind", sorted(SAMPLE_FILES))
def test_it_refuses_a_symlink_that_leads_outside_the_source(kind, read, tmp_path):
    name, content = SAMPLE_FILES[kind]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / name).write_text(content)
    source = tmp_path / "source"
    source.mkdir()
    (source / name).symlink_to(outside / name)
    (source / "linked-folder").symlink_to(outside, target_is_directory=True)

    result = read(CONNECTORS[kind], source)

    assert result.documents == []
    assert set(result.errors) == {
        DocumentError("linked-folder", "refused: it leads outside the source root"),
        DocumentError(name, "refused: it leads outside the source root"),
    }


@pytest.mark.parametrize("kind", sorted(SAMPLE_FILES))
def test_it_reads_the_sample_file_when_it_lies_inside(kind, read, tmp_path):
    name, content = SAMPLE_FILES[kind]
    (tmp_path / name).write_text(content)

    result = read(CONNECTORS[kind], tmp_path)

    assert result.errors == []
    assert [doc.text for doc in result.documents] == ["Staff only."]
