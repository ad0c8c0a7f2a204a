"""Structure-aware chunking with exact character spans.

The text is read as lines, grouped into blocks (headings, fenced or literal code,
paragraphs, top-level code definitions) that tile the document with no gap, and the
blocks are packed into chunks of at most ``size_chars``. Because blocks tile the text and
a chunk is always a run of consecutive text, ``document_text[chunk.start:chunk.end] ==
chunk.text`` holds exactly. Everything is a generator, so a huge file is chunked in
bounded memory: only the current block and the current chunk are held.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from engine.ingest.concepts import extract_concepts
from engine.models import Chunk
from engine.settings import ChunkingSettings

STYLES = ("markdown", "rst", "text", "code")

# Bounds on what is held in memory at once, whatever the file looks like.
MAX_LINE_CHARS = 65_536
MAX_BLOCK_CHARS = 262_144

_ATX = re.compile(r"^\s{0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")
_RST_CODE_DIRECTIVE = re.compile(r"^\s*\.\.\s+(?:code-block|code|sourcecode|literalinclude)::")
_CODE_NAME = re.compile(
    r"^\s*(?:export\s+|pub\s+|public\s+|private\s+|protected\s+|static\s+|async\s+|final\s+|abstract\s+)*"
    r"(?:class|def|func|fn|function|interface|struct|trait|enum|type|impl|module)\s+"
    r"(?:\([^)]*\)\s*)?([A-Za-z_]\w*)",
    re.M,
)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s")
_RST_DIRECTIVE = re.compile(r"^\s*\.\.\s+(?:\|[^|]+\|\s+)?([A-Za-z][\w:+-]*?)::(?:\s|$)")
_RST_TARGET = re.compile(r"^\s*\.\.\s+_[^:]*:(?:\s|$)")
_RST_OPTION = re.compile(r"^\s+:[\w][\w -]*:(?:\s|$)")
# Directives whose body is a list of names (documents, index terms), not prose.
_RST_NAME_LIST_DIRECTIVES = frozenset({"toctree", "index", "autosummary"})

# A heading taken from outside the text (a PDF outline): where it starts and its path.
HeadingMark = tuple[int, tuple[str, ...]]


@dataclass
class Block:
    """A run of lines with one role; ``text`` is exactly ``document_text[start:start+len(text)]``."""

    start: int
    text: str
    kind: str  # heading | code | para
    heading_path: tuple[str, ...]


def iter_lines(segments: Iterable[str]) -> Iterator[tuple[int, str]]:
    """Yield (offset, line with its newline) from text pieces; very long lines are cut."""
    offset = 0
    pending = ""
    for segment in segments:
        buffer = pending + segment
        pos = 0
        while (newline := buffer.find("\n", pos)) >= 0:
            line = buffer[pos : newline + 1]
            yield offset, line
            offset += len(line)
            pos = newline + 1
        pending = buffer[pos:]
        while len(pending) > MAX_LINE_CHARS:
            yield offset, pending[:MAX_LINE_CHARS]
            offset += MAX_LINE_CHARS
            pending = pending[MAX_LINE_CHARS:]
    if pending:
        yield offset, pending


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


@dataclass
class _BlockScanner:
    """Groups lines into blocks for one style; feed lines, collect finished blocks."""

    style: str
    path: list[tuple[int, str]] = field(default_factory=list)
    rst_levels: list[tuple[str, bool]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    start: int = 0
    length: int = 0
    kind: str = "para"
    block_path: tuple[str, ...] = ()
    ended: bool = False  # the current block's content is over (blank line, closed fence, heading)
    fence: str | None = None
    literal_indent: int | None = None

    def _flush(self, out: list[Block]) -> None:
        if self.lines:
            text = "".join(self.lines)
            path = self.block_path
            if self.style == "code" and (match := _CODE_NAME.search(text[:400])):
                path = (match.group(1),)
            out.append(Block(self.start, text, self.kind, path))
        self.lines = []
        self.length = 0
        self.kind = "para"
        self.ended = False

    def _begin(self, offset: int, kind: str) -> None:
        self.start = offset
        self.kind = kind
        self.block_path = tuple(title for _, title in self.path)

    def _append(self, offset: int, line: str, out: list[Block]) -> None:
        if not self.lines:
            self._begin(offset, self.kind)
        self.lines.append(line)
        self.length += len(line)
        if self.length > MAX_BLOCK_CHARS:
            # A huge block (no blank lines, an unclosed fence) is passed on in parts.
            kind = self.kind
            self._flush(out)
            self.kind = kind

    def _push_heading(self, level: int, title: str) -> None:
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        self.path.append((level, title.strip() or "(untitled)"))
        self.block_path = tuple(t for _, t in self.path)
        self.kind = "heading"
        self.ended = True

    def _content_lines(self) -> list[str]:
        return [line for line in self.lines if line.strip()]

    def feed(self, offset: int, line: str) -> list[Block]:
        """Take one line; returns the blocks it completed."""
        out: list[Block] = []
        blank = not line.strip()
        if self.style == "markdown" and self.fence is not None:
            self._append(offset, line, out)
            stripped = line.strip()
            if stripped.startswith(self.fence) and not stripped.strip(self.fence[0]):
                self.fence = None
                self.ended = True
            return out
        if self.style == "rst" and self.literal_indent is not None:
            if blank or _indent(line) > self.literal_indent:
                self._append(offset, line, out)
                return out
            self.literal_indent = None
            self.ended = True
        if blank:
            if not self.lines:
                self.kind = "para"
            self._append(offset, line, out)
            if self.lines:
                self.ended = True
            return out
        if self.style == "markdown" and self._markdown_line(offset, line, out):
            return out
        if self.style == "rst" and self._rst_line(offset, line, out):
            return out
        # In code, an indented line or a closing bracket continues the definition above.
        continues_code = self.style == "code" and line[:1] in (" ", "\t", "}", ")", "]")
        if (self.ended or self.kind in ("heading", "code")) and not continues_code:
            self._flush(out)
        if not self.lines:
            self.kind = "para"
        self._append(offset, line, out)
        return out

    def _markdown_line(self, offset: int, line: str, out: list[Block]) -> bool:
        if match := _ATX.match(line):
            self._flush(out)
            self._push_heading(len(match.group(1)), match.group(2) or "")
            self._begin(offset, "heading")
            self.block_path = tuple(t for _, t in self.path)
            self._append(offset, line, out)
            return True
        if match := _FENCE.match(line):
            self._flush(out)
            self.fence = match.group(1)
            self._begin(offset, "code")
            self._append(offset, line, out)
            return True
        if (
            (match := _SETEXT.match(line))
            and self.kind == "para"
            and not self.ended
            and len(self._content_lines()) == 1
        ):
            title = self._content_lines()[0]
            self._push_heading(1 if match.group(1).startswith("=") else 2, title)
            self._append(offset, line, out)
            return True
        return False

    def _rst_line(self, offset: int, line: str, out: list[Block]) -> bool:
        if (match := _RST_ADORNMENT.match(line)) and self.kind == "para" and not self.ended:
            content = self._content_lines()
            char = match.group(1)
            title: str | None = None
            overline = False
            if len(content) == 1 and not _RST_ADORNMENT.match(content[0]):
                title = content[0].strip()
            elif len(content) == 2 and content[0].strip()[:1] == char and _RST_ADORNMENT.match(content[0]):
                title, overline = content[1].strip(), True
            if title and len(line.strip()) >= len(title):
                style = (char, overline)
                if style not in self.rst_levels:
                    self.rst_levels.append(style)
                self._push_heading(self.rst_levels.index(style) + 1, title)
                self._append(offset, line, out)
                return True
        if line.rstrip().endswith("::") or _RST_CODE_DIRECTIVE.match(line):
            # The introducing paragraph stays with its literal block.
            if self.ended or self.kind != "para":
                self._flush(out)
            self.kind = "code"
            self._append(offset, line, out)
            self.kind = "code"
            self.literal_indent = _indent(line)
            return True
        return False

    def cut(self) -> list[Block]:
        """End the current block here: a line left out of chunks sits between this block and the next."""
        out: list[Block] = []
        kind = self.kind if (self.fence is not None or self.literal_indent is not None) else "para"
        self._flush(out)
        self.kind = kind
        return out

    def outline_heading(self, offset: int, line: str, path: tuple[str, ...]) -> list[Block]:
        """Start a heading block at ``line`` with a heading path given from outside the text."""
        out: list[Block] = []
        self._flush(out)
        self.path = [(level + 1, title) for level, title in enumerate(path)]
        self.kind = "heading"
        self._append(offset, line, out)
        self.ended = True
        return out

    def finish(self) -> list[Block]:
        """Flush what is left at the end of the text."""
        out: list[Block] = []
        self._flush(out)
        return out


@dataclass
class _RstMarkup:
    """Recognises reST markup lines: directives (``.. toctree::``), their options, link targets.

    Prose inside a directive (a ``.. note::`` body) stays; the body of a directive that
    only lists names (``toctree``) is markup too. Code directives are left to the scanner,
    which keeps them as code blocks.
    """

    indent: int | None = None
    in_options: bool = False
    name_list: bool = False

    def is_markup(self, line: str) -> bool:
        """True when ``line`` is markup to leave out of chunk text."""
        if self.indent is not None:
            if not line.strip():
                self.in_options = False
                return self.name_list
            if _indent(line) > self.indent:
                if self.in_options and _RST_OPTION.match(line):
                    return True
                self.in_options = False
                if self.name_list:
                    return True
                self.indent = None
                return False
            self.indent = None
        if _RST_CODE_DIRECTIVE.match(line):
            return False
        if match := _RST_DIRECTIVE.match(line):
            self.indent = _indent(line)
            self.in_options = True
            self.name_list = match.group(1).lower() in _RST_NAME_LIST_DIRECTIVES
            return True
        return bool(_RST_TARGET.match(line))


def iter_blocks(
    segments: Iterable[str],
    style: str,
    *,
    skip_lines: Collection[int] = frozenset(),
    headings: Sequence[HeadingMark] = (),
) -> Iterator[Block]:
    """Blocks of the text in ``segments`` for a style (markdown, rst, text, code).

    Lines starting at an offset in ``skip_lines`` (boilerplate), and reST markup lines,
    belong to no block: the blocks around them end and start there. ``headings`` (offset,
    path) sorted by offset, each at a line start, set the heading path from that line on.
    """
    if style not in STYLES:
        raise ValueError(f"unknown chunking style {style!r}")
    scanner = _BlockScanner(style)
    markup = _RstMarkup() if style == "rst" else None
    marks = iter(sorted(headings, key=lambda mark: mark[0]))
    mark = next(marks, None)
    for offset, line in iter_lines(segments):
        if offset in skip_lines:
            yield from scanner.cut()
            continue
        # A directive shown inside a literal block is an example, not markup.
        in_literal = scanner.literal_indent is not None and (
            not line.strip() or _indent(line) > scanner.literal_indent
        )
        if markup is not None and not in_literal and markup.is_markup(line):
            yield from scanner.cut()
            continue
        path: tuple[str, ...] | None = None
        while mark is not None and mark[0] <= offset:
            path = mark[1]
            mark = next(marks, None)
        if path is not None:
            yield from scanner.outline_heading(offset, line, path)
            continue
        yield from scanner.feed(offset, line)
    yield from scanner.finish()


def find_title(head: str, style: str) -> str | None:
    """The first heading in ``head`` (the start of a document), or None."""
    if style not in ("markdown", "rst"):
        return None
    for block in iter_blocks([head], style):
        if block.kind == "heading" and block.heading_path:
            return block.heading_path[-1]
    return None


def split_oversize(start: int, text: str, limit: int) -> Iterator[tuple[int, str]]:
    """Cut ``text`` into consecutive pieces of at most ``limit`` chars at line, then sentence, then word ends."""
    limit = max(limit, 1)
    pos = 0
    while len(text) - pos > limit:
        window = text[pos : pos + limit]
        floor = limit // 4
        cut = window.rfind("\n", limit // 2) + 1
        if cut <= 0:
            ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() > floor]
            cut = ends[-1] if ends else 0
        if cut <= 0:
            space = window.rfind(" ", floor)
            cut = space + 1 if space >= 0 else limit
        yield start + pos, text[pos : pos + cut]
        pos += cut
    if pos < len(text):
        yield start + pos, text[pos:]


@dataclass
class _RawChunk:
    start: int
    text: str
    heading_path: tuple[str, ...]


class _Packer:
    """Packs consecutive blocks into raw chunks of at most ``size`` characters."""

    def __init__(self, settings: ChunkingSettings) -> None:
        self.size = settings.size_chars
        self.overlap = min(settings.overlap_chars, self.size // 2)
        self.min_chars = settings.min_chars
        self.pieces: list[str] = []
        self.start = 0
        self.length = 0
        self.has_content = False
        self.path: tuple[str, ...] = ()
        self.last_path: tuple[str, ...] = ()

    def _take(self, start: int, text: str, path: tuple[str, ...]) -> None:
        if not self.pieces:
            self.start = start
        # Blank lines left after a skipped line are not content: the path comes from what follows.
        if not self.has_content and text.strip():
            self.path = path
            self.has_content = True
        self.pieces.append(text)
        self.length += len(text)
        self.last_path = path

    def _flush(self, *, overlap: bool) -> Iterator[_RawChunk]:
        if not self.has_content:
            return
        raw = "".join(self.pieces)
        yield _RawChunk(self.start, raw, self.path)
        end = self.start + len(raw)
        self.pieces, self.length, self.has_content = [], 0, False
        if overlap and self.overlap:
            tail = raw[-self.overlap :]
            # Start the overlap at a word so a chunk never opens mid-word.
            space = tail.find(" ")
            newline = tail.find("\n")
            cuts = [i for i in (space, newline) if 0 <= i < len(tail) - 1]
            if cuts:
                tail = tail[min(cuts) + 1 :]
            if tail.strip():
                self.pieces = [tail]
                self.length = len(tail)
                self.start = end - len(tail)

    def add(self, block: Block) -> Iterator[_RawChunk]:
        """Take one block; yields the chunks it completed."""
        path = block.heading_path
        if self.pieces and block.start != self.start + self.length:
            # Left-out lines sit before this block: the chunk ends so its text stays one exact span.
            yield from self._flush(overlap=False)
            self.pieces, self.length = [], 0
        if block.kind == "heading" and self.has_content and self.length >= self.min_chars:
            yield from self._flush(overlap=False)
        if self.length + len(block.text) <= self.size:
            self._take(block.start, block.text, path)
            return
        yield from self._flush(overlap=True)
        if self.length + len(block.text) <= self.size:
            self._take(block.start, block.text, path)
            return
        for start, piece in split_oversize(block.start, block.text, self.size - self.overlap):
            if self.length + len(piece) > self.size:
                yield from self._flush(overlap=True)
            self._take(start, piece, path)

    def finish(self) -> Iterator[_RawChunk]:
        """The last chunk, if any."""
        yield from self._flush(overlap=False)


def _trimmed(raw: _RawChunk) -> tuple[int, str]:
    lead = len(raw.text) - len(raw.text.lstrip())
    text = raw.text.strip()
    return raw.start + lead, text


def _merge(first: _RawChunk, second: _RawChunk) -> _RawChunk:
    end = first.start + len(first.text)
    return _RawChunk(first.start, first.text + second.text[end - second.start :], first.heading_path)


def chunk_text(
    text: str | Iterable[str],
    *,
    style: str,
    settings: ChunkingSettings | None = None,
    skip_lines: Collection[int] = frozenset(),
    headings: Sequence[HeadingMark] = (),
) -> Iterator[Chunk]:
    """Chunk a document's text (a string or its pieces in order); yields chunks with exact spans.

    ``style`` is markdown, rst, text or code. Chunk offsets are relative to the whole
    text, and a short trailing chunk merges into the one before it when no left-out
    line sits between them. ``skip_lines`` and ``headings`` are as for :func:`iter_blocks`.
    """
    settings = settings or ChunkingSettings()
    segments = [text] if isinstance(text, str) else text
    packer = _Packer(settings)
    ordinal = 0

    def emit(raw: _RawChunk) -> Chunk | None:
        nonlocal ordinal
        start, body = _trimmed(raw)
        if not body:
            return None
        chunk = Chunk(
            ordinal=ordinal, text=body, start=start, end=start + len(body),
            heading_path=list(raw.heading_path),
            concepts=extract_concepts(body, raw.heading_path, code=style == "code"),
        )
        ordinal += 1
        return chunk

    def produced() -> Iterator[_RawChunk]:
        for block in iter_blocks(segments, style, skip_lines=skip_lines, headings=headings):
            yield from packer.add(block)
        yield from packer.finish()

    # Two chunks are held back so a short last chunk can merge into the one before it.
    window: list[_RawChunk] = []
    for raw in produced():
        window.append(raw)
        if len(window) > 2 and (chunk := emit(window.pop(0))) is not None:
            yield chunk
    if len(window) == 2 and window[1].start <= window[0].start + len(window[0].text):
        _, tail = _trimmed(window[1])
        if len(tail) < settings.min_chars:
            window = [_merge(window[0], window[1])]
    for raw in window:
        if (chunk := emit(raw)) is not None:
            yield chunk


__all__ = ["STYLES", "Block", "HeadingMark", "chunk_text", "find_title", "iter_blocks", "iter_lines", "split_oversize"]
