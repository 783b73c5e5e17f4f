"""What every connector shares: finding files inside a source root, reading them within the size
limit, decoding text, parsing dates, and building heading-path sections (from Markdown too).

Helpers raise `BadDocument` for a problem with one document; the connector catches it and yields a
`DocumentError`. They raise `SourceError` only for the location as a whole.
"""

from __future__ import annotations

import codecs
import datetime as dt
import email.utils
import os
import re
import stat
from collections.abc import Collection, Iterator
from pathlib import Path

import charset_normalizer

from appliance.knowledge import base
from appliance.knowledge.base import DocumentError, Section, SourceError


class BadDocument(Exception):
    """One document cannot be read; its connector yields a DocumentError and goes on."""


# --- where the files are ---------------------------------------------------------------------


def source_root(path: Path) -> Path:
    """`path` resolved; SourceError when it does not exist or cannot be read."""
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise SourceError(f"source path {path} does not exist or cannot be reached") from exc
    if not os.access(resolved, os.R_OK | (os.X_OK if resolved.is_dir() else 0)):
        raise SourceError(f"source path {path} is not readable")
    return resolved


def is_inside(root: Path, path: Path) -> bool:
    """Whether `path`, symlinks followed, stays under `root` (itself resolved)."""
    return path.resolve().is_relative_to(root)


def relative_id(root: Path, path: Path) -> str:
    """The path of a file relative to the source root, with forward slashes: its external id."""
    return path.relative_to(root).as_posix()


def refused(root: Path, path: Path) -> DocumentError:
    return DocumentError(relative_id(root, path), "refused: it leads outside the source root")


def walk_files(root: Path, suffixes: Collection[str]) -> Iterator[Path | DocumentError]:
    """Files under the folder `root` whose suffix is in `suffixes`, in sorted order.

    Hidden names are skipped. A symlink leading outside `root` becomes a DocumentError; symlinked
    folders inside it are not followed (what they point to is walked anyway).
    """
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        kept = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            folder = here / name
            if folder.is_symlink():
                if not is_inside(root, folder):
                    yield refused(root, folder)
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            if name.startswith(".") or Path(name).suffix.lower() not in suffixes:
                continue
            file = here / name
            yield file if is_inside(root, file) else refused(root, file)


def source_files(
    path: Path, suffixes: Collection[str], what: str
) -> tuple[Path, Iterator[Path | DocumentError]]:
    """The root and the files of a source that is either one file or a folder of them."""
    location = source_root(path)
    if location.is_dir():
        return location, walk_files(location, suffixes)
    if location.suffix.lower() not in suffixes:
        raise SourceError(f"{path} is not {what} (expected {', '.join(sorted(suffixes))})")
    return location.parent, iter([location])


def child_file(root: Path, *parts: str) -> Path | None:
    """`root/parts...` if it is a regular file that stays inside `root`, else None.

    Names that come from inside an export (a channel name, say) go through here, so a name like
    "../../etc" can never lead out of the source.
    """
    candidate = root.joinpath(*parts)
    if not candidate.is_file() or not is_inside(root, candidate):
        return None
    return candidate


# --- reading within the limit ----------------------------------------------------------------


def check_size(size: int) -> None:
    limit = base.MAX_FILE_BYTES
    if size > limit:
        raise BadDocument(f"{size} bytes is over the {limit}-byte limit for one document")


def read_bytes(path: Path) -> bytes:
    """The bytes of a regular file, checked against MAX_FILE_BYTES before anything is read."""
    try:
        info = path.stat()
    except OSError as exc:
        raise BadDocument(f"cannot be read: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise BadDocument("not a regular file")
    check_size(info.st_size)
    try:
        with path.open("rb") as handle:
            data = handle.read(base.MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise BadDocument(f"cannot be read: {exc.strerror}") from exc
    check_size(len(data))  # the file may have grown since stat()
    return data


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
#: When several encodings decode a short text without mess, the detector's pick among them is
#: close to arbitrary (cp775 for French, say); Western brands' legacy files are nearly always
#: Windows-1252 or Latin-1, so that reading wins whenever it is among the clean ones.
_WESTERN = {"cp1252", "latin_1", "iso8859_15"}


def decode_text(data: bytes, hint: str | None = None) -> str:
    """Text from bytes: the hinted encoding, a BOM, UTF-8, then charset-normalizer's best guess."""
    if hint:
        try:
            return data.decode(hint)
        except (LookupError, UnicodeDecodeError) as exc:
            raise BadDocument(f"cannot be decoded as {hint}") from exc
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise BadDocument(
                    f"has a {encoding} byte-order mark but is not {encoding}"
                ) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        raise BadDocument("text in an unknown encoding (or not text at all)")
    clean = [match for match in matches if match.chaos == best.chaos]
    try:
        western: str | None = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None and any(m.encoding in _WESTERN or str(m) == western for m in clean):
        return western
    return str(best)


# --- dates -----------------------------------------------------------------------------------

_HUMAN_DATE_FORMATS = ("%b %d, %Y", "%B %d, %Y", "%d %b %Y", "%d %B %Y")


def parse_date(value: object) -> dt.datetime | None:
    """A timezone-aware UTC datetime from the date shapes exports use, or None.

    Takes ISO 8601 (with or without zone, "Z" included), "2012-03-07 17:16:48.158", RFC 2822
    (HTTP Last-Modified), "Dec 27, 2023", and Unix seconds (number or "1700000000.000100").
    A date without a zone is taken as UTC.
    """
    if isinstance(value, dt.datetime):
        found: dt.datetime | None = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        found = _from_epoch(float(value))
    elif isinstance(value, str) and value.strip():
        found = _parse_date_text(value.strip())
    else:
        found = None
    if found is None:
        return None
    if found.tzinfo is None:
        return found.replace(tzinfo=dt.UTC)
    return found.astimezone(dt.UTC)


def _from_epoch(seconds: float) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _parse_date_text(text: str) -> dt.datetime | None:
    if re.fullmatch(r"\d{9,11}(\.\d+)?", text):
        return _from_epoch(float(text))
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        pass
    for fmt in _HUMAN_DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def file_mtime(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)


# --- sections --------------------------------------------------------------------------------


def collapse(text: str) -> str:
    """Runs of whitespace (newlines and no-break spaces included) as one space, trimmed."""
    return " ".join(text.split())


def first_line(text: str, limit: int = 80) -> str:
    """The first non-empty line of `text`, cut at a word boundary to at most `limit` characters."""
    line = next((collapse(part) for part in text.splitlines() if part.strip()), "")
    if len(line) <= limit:
        return line
    cut = line[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


class SectionBuilder:
    """Collects text under heading paths: a level-3 heading under a level-2 one reads
    "Returns > Refunds". The first heading equal to the document title is the title itself and is
    left out of the paths. A question is a heading of its own: text under a heading that asks
    ("Can I return a gift?") and question/answer pairs are headed by the question alone.
    """

    def __init__(self, title: str = "") -> None:
        self._title = collapse(title).casefold()
        self._stack: list[tuple[int, str]] = []
        self._seen_heading = False
        self._paragraphs: list[str] = []
        self._sections: list[Section] = []

    def heading(self, level: int, text: str) -> None:
        text = collapse(text)
        if not text:
            return
        self._flush()
        first, self._seen_heading = not self._seen_heading, True
        if first and self._title and text.casefold() == self._title:
            return
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))

    def text(self, text: str) -> None:
        text = text.strip()
        if text:
            self._paragraphs.append(text)

    def pair(self, question: str, answer: str) -> None:
        question, answer = collapse(question), answer.strip()
        if question and answer:
            self._flush()
            self._sections.append(Section(question, answer))

    def build(self) -> tuple[Section, ...]:
        self._flush()
        return tuple(self._sections)

    def _flush(self) -> None:
        if self._paragraphs:
            heading = " > ".join(text for _, text in self._stack)
            if self._stack and self._stack[-1][1].endswith("?"):
                heading = self._stack[-1][1]
            self._sections.append(Section(heading, "\n".join(self._paragraphs)))
            self._paragraphs = []


_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_NOT_A_SETEXT_TITLE = re.compile(r" {0,3}([-*+>|]|\d+[.)])(\s|$)| {4}")
_INLINE_MARKS = re.compile(r"(\*\*|__|\*|`)(.+?)\1")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def markdown_headings(text: str) -> Iterator[tuple[int, int, int, str]]:
    """(first line, line after, level, text) of each ATX (`## x`) and setext heading, code skipped.

    Line-based rather than a full parser: it is twenty times faster, and headings are all the
    connectors need from Markdown.
    """
    lines = text.split("\n")
    fence: str | None = None
    for index, line in enumerate(lines):
        fence_match = _FENCE.match(line)
        if fence is not None:
            if (
                fence_match
                and fence_match.group(1)[0] == fence[0]
                and len(fence_match.group(1)) >= len(fence)
                and not line.strip().lstrip(fence[0])
            ):
                fence = None
            continue
        if fence_match:
            fence = fence_match.group(1)
            continue
        atx = _ATX.fullmatch(line)
        if atx:
            yield index, index + 1, len(atx.group(1)), _heading_text(atx.group(2) or "")
            continue
        setext = _SETEXT.fullmatch(line)
        if setext and index > 0 and _can_be_setext_title(lines[index - 1]):
            level = 1 if setext.group(1)[0] == "=" else 2
            yield index - 1, index + 1, level, _heading_text(lines[index - 1])


def _can_be_setext_title(line: str) -> bool:
    return bool(line.strip()) and not _NOT_A_SETEXT_TITLE.match(line) and not _ATX.fullmatch(line)


def _heading_text(raw: str) -> str:
    text = _LINK.sub(r"\1", raw)
    text = _INLINE_MARKS.sub(r"\2", text)
    return collapse(text)


def markdown_title(text: str) -> str | None:
    """The text of the first heading when it is a level-1 heading: the document's own title."""
    first = next(markdown_headings(text), None)
    return first[3] if first and first[2] == 1 and first[3] else None


def markdown_sections(text: str, title: str = "") -> tuple[Section, ...]:
    """Markdown split at its headings; each section keeps its body as written (lists, tables)."""
    lines = text.split("\n")
    builder = SectionBuilder(title)
    start = 0
    for first, after, level, heading in markdown_headings(text):
        builder.text(_body(lines[start:first]))
        builder.heading(level, heading)
        start = after
    builder.text(_body(lines[start:]))
    return builder.build()


def _body(lines: list[str]) -> str:
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines).strip("\n")).strip()
