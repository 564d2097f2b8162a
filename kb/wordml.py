"""WordprocessingML text with bounded memory: the body of a .docx as lines, and its title.

The text is what python-docx 1.2 gives (body paragraphs, and table rows with cells joined by " | "; see
`read_docx`), read without python-docx, lxml or a tree:

- only the parts needed are inflated (the package and document relationships, the main document
  part, the styles part), in pieces of `CHUNK` bytes: `ZipExtFile.read(n)` inflates at most n
  bytes per call and stops at the size the member declares, while `read()` with no size asks zlib
  for up to 2 GB in one call whatever the member declares;
- the inflated bytes of a file and the compression ratio of each part are capped (`Limits`), on
  what the archive declares before anything is inflated and again on what is actually inflated,
  and so is the number of tags, which bounds the time;
- expat reads the XML event by event; of the document only the text found is kept, so memory
  follows the text, not the number of elements, and expat's own state is capped too (depth,
  length of one tag, the names it keeps, namespace declarations). No DOCTYPE is accepted, so no entity of
  any kind is declared or expanded.

So one read holds the file, at most about 50 MB of zipfile's, expat's and its own state, and the
text found: at most 64 million characters (`Limits.text`) and a tab, break or separator per tag,
held at most twice while it is joined.
docs/reliability.md ("zip bomb") says how the caps were chosen and lists where the text differs
from python-docx's; docs/performance.md has the measurements; tests/test_wordml.py the proofs.
"""
from __future__ import annotations

import codecs
import io
import itertools
import posixpath
import re
import zipfile
import zlib
from collections.abc import Collection, Generator, Iterator
from dataclasses import dataclass
from xml.parsers import expat

from kb.errors import UnreadableFile

MB = 2**20
CHUNK = 16 * 1024  # bytes inflated, and handed to expat, at a time; also zipfile's read-ahead of packed bytes

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_REL_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
OFFICE_DOCUMENT = _REL_TYPE + "officeDocument"
STYLES = _REL_TYPE + "styles"
_SEP = "}"  # expat reports "uri}local", the form of lxml's "{uri}local" without the brace


@dataclass(frozen=True)
class Limits:
    """What reading one .docx may cost; docs/reliability.md ("zip bomb") says why these numbers.

    The real .docx files (six national laws) have document parts of 57-300 KB with 2,000-13,000
    tags, packed 9-18 times; the caps leave room for documents hundreds of times larger and for
    tables of empty cells (python-docx writes those packed up to 190 times), while a bomb packs
    230-1,000 times. Memory besides the text is bounded by the last eight caps (about 50 MB).
    """

    inflated: int = 256 * MB  # XML bytes inflated per file, all parts read together
    ratio: int = 200  # inflated bytes per packed byte of one part ...
    ratio_from: int = 4 * MB  # ... checked once the part has inflated this much
    tags: int = 4_000_000  # "<" in the XML read per file: about 2 microseconds of expat and Python each
    # characters of text: of w:t, and of merged cells repeated on the rows they span (a 200 MB text
    # file, KB_MAX_FILE_MB's default, holds 67 million Chinese ones); tabs, breaks, " | " add <= 3 a tag
    text: int = 64_000_000
    members: int = 20_000  # archive members: zipfile keeps about 560 bytes for each
    tag: int = 1 * MB  # one tag, comment or processing instruction, which expat holds whole
    depth: int = 256  # nested elements, libxml2's own limit (python-docx refused deeper ones too)
    names: int = 5_000  # different element and attribute names and prefixes, which expat keeps
    name: int = 500  # characters of one (with its namespace and prefix), or of a namespace
    namespaces: int = 1_000  # namespace declarations open at once
    cells: int = 1_000  # cells in one table row (Word allows 63 columns)
    styles: int = 10_000  # styles remembered (Word allows 10,000)


@dataclass(frozen=True)
class WordText:
    """The text of a document's body, one line per paragraph or table row, and its title."""

    text: str
    title: str  # the first non-empty body paragraph in one of the title styles, else ""
    inflated: int  # XML bytes inflated and parsed


class _Refused(Exception):
    """Why a file is not read; `read_docx` turns it into UnreadableFile with the path."""


def _invalid(detail: str) -> _Refused:
    return _Refused(f"not a valid .docx: {detail}")


def _bomb(detail: str) -> _Refused:
    return _Refused(f"not a plausible .docx: {detail} (a zip bomb?)")


def read_docx(data: bytes, path: str, title_styles: Collection[str], limits: Limits = Limits()) -> WordText:
    """The body text of the .docx `data` and the first body paragraph whose style is named in `title_styles`.

    Each body paragraph is a line (python-docx's `Paragraph.text`: the text of the paragraph's
    runs and hyperlinks' runs; w:tab and w:ptab are tabs, w:br (text wrapping), w:cr are line
    breaks, w:noBreakHyphen is "-"); each row of a body table is a line of its cells' text, whitespace
    collapsed, joined by " | ", a merged cell written once per row (python-docx's `_Row.cells`,
    where a vertically merged cell repeats the text of its first row). Style names are
    python-docx's ("heading 1" in styles.xml is "Heading 1"). Raises UnreadableFile(path, reason).
    """
    try:
        package = _Package(data, limits)
        main = package.target("/", OFFICE_DOCUMENT)
        if main is None:
            raise _invalid("the package names no main document part (_rels/.rels)")
        styles = _Styles(title_styles, limits)
        styles_part = package.target(main, STYLES)
        if styles_part is not None:
            package.parse(styles_part, styles)
        body = _Body(styles, limits)
        package.parse(main, body)
        return WordText(text=body.value(), title=body.title, inflated=package.inflated)
    except _Refused as refused:
        raise UnreadableFile(path, str(refused)) from None


# ---------------------------------------------------------------- the archive

_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError)


class _CountingFile(io.BytesIO):
    """The file's bytes, counting how many zipfile reads: the packed bytes a part has consumed so far."""

    consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.consumed += len(data)
        return data


class _Package:
    """The zip archive: finds parts by relationship and streams them into expat within the limits."""

    def __init__(self, data: bytes, limits: Limits) -> None:
        # every central directory entry carries this signature, so its count bounds the members
        # before zipfile builds an object for each
        if data.count(b"PK\x01\x02") > limits.members:
            raise _bomb(f"the archive has more than {limits.members:,} members")
        self._limits = limits
        self._file = _CountingFile(data)
        try:
            self._zip = zipfile.ZipFile(self._file)
        except _ZIP_ERRORS as exc:
            raise _invalid(str(exc)) from None
        self._names = frozenset(self._zip.namelist())
        self.inflated = 0
        self.tags = 0

    def target(self, source: str, reltype: str) -> str | None:
        """The part that part `source` ("/" for the package) relates to by `reltype`, None if none.

        As python-docx: the relationships are in `<folder>/_rels/<name>.rels`, a target is
        resolved against the source's folder, and part "/a/b" is the archive member "a/b".
        """
        folder, name = posixpath.split(source)
        rels_part = posixpath.join(folder, "_rels", name + ".rels")
        rels = _Relationships(reltype, self._limits)
        if rels_part[1:] in self._names:  # python-docx: no relationships part, no relationships
            self.parse(rels_part, rels)
        kind = reltype.rsplit("/", 1)[-1]
        if rels.count > 1:
            raise _invalid(f"{rels_part[1:]} has {rels.count} relationships of type {kind}")
        if rels.first is None:
            return None
        target, external = rels.first
        if external:
            raise _invalid(f"{rels_part[1:]}: the {kind} part is outside the package")
        return posixpath.normpath(posixpath.join(folder, target))

    def parse(self, part: str, handler: _Handler) -> None:
        """Feed part `part` ("/word/document.xml") to a fresh expat parser with `handler`'s callbacks."""
        member = part[1:]
        fed = 0
        inflating = self._chunks(member)
        try:
            encoding, chunks = _as_expat_reads(inflating)
            parser = handler.parser(encoding)
            for chunk in chunks:
                self.tags += chunk.count(b"<")  # every tag starts with one; text has none
                if self.tags > self._limits.tags:
                    raise _bomb(f"{member} has more than {self._limits.tags:,} tags")
                parser.Parse(chunk, False)
                handler.check_names(parser)
                fed += len(chunk)
                # after Parse, expat holds only the unfinished token past its current position
                if fed - parser.CurrentByteIndex > self._limits.tag:
                    raise _invalid(f"{member} has a tag longer than {self._limits.tag / MB:.0f} MB")
            parser.Parse(b"", True)
        except (expat.ExpatError, ValueError, LookupError) as exc:  # not in its declared or a known encoding
            raise _invalid(f"{member}: {exc}") from None
        finally:
            inflating.close()  # now, not when collected: it counts what was inflated
        handler.close(member)

    def _chunks(self, member: str) -> Generator[bytes, None, None]:
        """The inflated bytes of `member`, CHUNK at a time, refused as soon as a cap is passed."""
        try:
            info = self._zip.getinfo(member)
        except KeyError:
            raise _invalid(f"there is no item named {member!r} in the archive") from None
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # zipfile inflates bzip2 and lzma data with no cap per call, whatever the read size
            raise _invalid(f"{member} is packed with method {info.compress_type}; Word uses deflate")
        self._check(member, info.file_size, info.compress_size)  # what the archive declares
        self._file.consumed = 0
        inflated = 0
        try:
            with self._zip.open(info) as stream:
                while chunk := stream.read(CHUNK):
                    inflated += len(chunk)
                    self._check(member, inflated, self._file.consumed)  # what it really does
                    yield chunk
        except _ZIP_ERRORS as exc:
            raise _invalid(f"{member}: {exc}") from None
        finally:
            self.inflated += inflated

    def _check(self, member: str, size: int, packed: int) -> None:
        limits = self._limits
        if self.inflated + size > limits.inflated:
            raise _bomb(f"{member} inflates past {limits.inflated / MB:.0f} MB")
        if size > limits.ratio_from and size > limits.ratio * packed:
            raise _bomb(f"{member} inflates to more than {limits.ratio} times its packed size")


_DECLARATION = re.compile(rb"""(?:\xef\xbb\xbf)?<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z][\w.-]*)["']""")
_EXPAT_ENCODINGS = {"utf-8", "utf-16", "utf-16-le", "utf-16-be", "iso8859-1", "ascii"}  # Python's names


def _as_expat_reads(chunks: Iterator[bytes]) -> tuple[str | None, Iterator[bytes]]:
    """The encoding to tell expat and the chunks to feed it: a part declaring an encoding expat
    cannot read (pyexpat refuses GBK, Big5 and every other multi-byte one, which libxml2 read) is
    re-encoded to UTF-8 as it streams."""
    first = next(chunks, b"")
    declared = _DECLARATION.match(first)
    try:
        encoding = codecs.lookup(declared.group(1).decode()).name if declared else "utf-8"
    except LookupError:  # expat says so
        encoding = "utf-8"
    chunks = itertools.chain([first], chunks)
    if encoding in _EXPAT_ENCODINGS:
        return None, chunks
    return "utf-8", _reencoded(chunks, encoding)


def _reencoded(chunks: Iterator[bytes], encoding: str) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder(encoding)()  # a character may straddle two chunks
    for chunk in chunks:
        yield decoder.decode(chunk).encode()
    yield decoder.decode(b"", final=True).encode()


# ---------------------------------------------------------------- XML events

class _Handler:
    """expat callbacks for one part; the subclasses' `start` check the depth themselves (a call less
    per element), this class guards the rest of expat's state."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._max_depth = limits.depth
        self._max_name = limits.name
        self._namespaces = 0
        self._names_met = 0
        self._expanded: dict[str, str] = {}  # "uri}local}prefix" -> "uri}local"

    def parser(self, encoding: str | None):
        """A fresh expat parser calling this handler; `encoding` overrides the part's declaration."""
        parser = expat.ParserCreate(encoding, namespace_separator=_SEP)
        # names come as "uri}local}prefix": expat keeps every prefixed name and every prefix it meets
        # for as long as it parses, and pyexpat interns what it reports, so `parser.intern` counts them
        parser.namespace_prefixes = True
        parser.buffer_text = True
        parser.buffer_size = CHUNK
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.StartNamespaceDeclHandler = self._namespace_start
        parser.EndNamespaceDeclHandler = self._namespace_end
        parser.StartDoctypeDeclHandler = self._doctype
        return parser

    def start(self, name: str, attrs: dict[str, str]) -> None:
        raise NotImplementedError

    def end(self, name: str) -> None:
        raise NotImplementedError

    def close(self, member: str) -> None:
        """Called after the whole part was parsed."""

    def check_names(self, parser) -> None:
        """After each chunk: the element and attribute names and the namespace prefixes expat keeps
        (pyexpat's intern dict holds each too, and the namespaces), capped in number and length."""
        names = parser.intern
        new = len(names) - self._names_met
        if not new:
            return
        self._names_met = len(names)
        if len(names) > self._limits.names:
            raise _invalid(f"more than {self._limits.names:,} different element and attribute names")
        if any(len(name or "") > self._max_name for name in itertools.islice(reversed(names), new)):
            raise _invalid(f"a name is longer than {self._max_name} characters")

    def _expand(self, name: str) -> str:
        """`name` as "uri}local", without the prefix (cached: a part repeats a few names)."""
        expanded = self._expanded.get(name)
        if expanded is None:
            expanded = self._expanded[name] = name.rsplit(_SEP, 1)[0] if name.count(_SEP) == 2 else name
        return expanded

    def _attribute(self, attrs: dict[str, str], name: str, default: str | None = None) -> str | None:
        """The value of the attribute `name` ("uri}local"), whatever its prefix."""
        for key, value in attrs.items():
            if self._expand(key) == name:
                return value
        return default

    def _too_deep(self) -> _Refused:
        return _invalid(f"elements nest deeper than {self._max_depth} levels")

    def _namespace_start(self, prefix: str | None, uri: str | None) -> None:
        self._namespaces += 1
        if self._namespaces > self._limits.namespaces:
            raise _invalid(f"more than {self._limits.namespaces:,} namespace declarations are open at once")
        if len(prefix or "") > self._max_name or len(uri or "") > self._max_name:
            raise _invalid(f"a namespace is longer than {self._max_name} characters")

    def _namespace_end(self, prefix: str | None) -> None:
        self._namespaces -= 1

    def _doctype(self, *args) -> None:
        # Word never writes one; refusing it refuses every entity (billion laughs, external files)
        raise _invalid("a part declares a DOCTYPE")


_SKIP = 0  # an element whose content is ignored, on every handler's stack


class _Part(_Handler):
    """A handler for a small part: a stack of kinds of open element, each chosen by `kind_of`."""

    def __init__(self, limits: Limits) -> None:
        super().__init__(limits)
        self._stack: list[int] = []

    def start(self, name: str, attrs: dict[str, str]) -> None:
        stack = self._stack
        if len(stack) >= self._max_depth:
            raise self._too_deep()
        stack.append(self.kind_of(stack[-1] if stack else None, self._expand(name), attrs))

    def end(self, name: str) -> None:
        self.ended(self._stack.pop())

    def kind_of(self, parent: int | None, name: str, attrs: dict[str, str]) -> int:
        """The kind of a new element (parent None: the root), _SKIP for one to ignore with its content."""
        raise NotImplementedError

    def ended(self, kind: int) -> None:
        """An element of this kind ended."""


class _Relationships(_Part):
    """The targets of the relationships of one type in a .rels part, and whether each is external."""

    def __init__(self, reltype: str, limits: Limits) -> None:
        super().__init__(limits)
        self._reltype = reltype
        self.first: tuple[str, bool] | None = None  # target, external; of the first one of the type
        self.count = 0

    def kind_of(self, parent: int | None, name: str, attrs: dict[str, str]) -> int:
        if parent is None:
            return 1 if name == _RELS + _SEP + "Relationships" else _SKIP
        # Type, Target and TargetMode have no namespace, so no prefix either
        if parent == 1 and name == _RELS + _SEP + "Relationship" and attrs.get("Type") == self._reltype:
            self.count += 1
            if self.first is None:
                self.first = (attrs.get("Target", ""), attrs.get("TargetMode", "Internal") == "External")
        return _SKIP


# python-docx names these built-in styles as Word shows them, not as styles.xml stores them
_UI_NAMES = {"caption": "Caption", "footer": "Footer", "header": "Header",
             **{f"heading {n}": f"Heading {n}" for n in range(1, 10)}}
_ON = ("1", "true", "on")
_STYLE_ID_MAX = 255  # Word's longest style name; a longer id is no style Word made


def _w(*names: str) -> tuple[str, ...]:
    return tuple(W + _SEP + name for name in names)


(_W_STYLES, _W_STYLE, _W_NAME, _W_VAL, _W_TYPE, _W_STYLE_ID, _W_DEFAULT) = _w(
    "styles", "style", "name", "val", "type", "styleId", "default")


class _Styles(_Part):
    """Which paragraph style ids python-docx resolves to one of the title styles.

    A paragraph's style is the first w:style with its id if that is a paragraph style, else the
    last paragraph style marked default (none: no style); with no styles part, python-docx's own
    default, "Normal". One bit per style id is kept, for at most `limits.styles` ids.
    """

    def __init__(self, title_styles: Collection[str], limits: Limits) -> None:
        super().__init__(limits)
        self._titles = frozenset(title_styles)
        self.ids: dict[str, bool | None] = {}  # id -> a title style?; None: not a paragraph style
        self.default = "Normal" in self._titles
        self._style: dict[str, str] = {}  # attributes of the open w:style
        self._name: str | None = None
        self._named = False

    def kind_of(self, parent: int | None, name: str, attrs: dict[str, str]) -> int:
        if parent is None:
            self.default = False  # a styles part has no default style until it declares one
            return 1 if name == _W_STYLES else _SKIP
        if parent == 1 and name == _W_STYLE:
            self._style, self._name, self._named = attrs, None, False
            return 2
        if parent == 2 and name == _W_NAME and not self._named:
            self._name, self._named = self._attribute(attrs, _W_VAL), True
        return _SKIP

    def ended(self, kind: int) -> None:
        if kind != 2:
            return
        style = self._style
        paragraph = self._attribute(style, _W_TYPE) == "paragraph"
        title = (self._name is not None and _UI_NAMES.get(self._name, self._name) in self._titles) if paragraph else None
        style_id = self._attribute(style, _W_STYLE_ID)
        if (style_id is not None and style_id not in self.ids and len(style_id) <= _STYLE_ID_MAX
                and len(self.ids) < self._limits.styles):
            self.ids[style_id] = title
        if paragraph and self._attribute(style, _W_DEFAULT) in _ON:
            self.default = bool(title)


(_W_DOCUMENT, _W_BODY, _W_P, _W_PPR, _W_PSTYLE, _W_R, _W_HYPERLINK, _W_T, _W_TAB, _W_PTAB, _W_CR, _W_BR,
 _W_NO_BREAK_HYPHEN, _W_TBL, _W_TR, _W_TRPR, _W_GRID_BEFORE, _W_TC, _W_TCPR, _W_GRID_SPAN, _W_VMERGE) = _w(
    "document", "body", "p", "pPr", "pStyle", "r", "hyperlink", "t", "tab", "ptab", "cr", "br",
    "noBreakHyphen", "tbl", "tr", "trPr", "gridBefore", "tc", "tcPr", "gridSpan", "vMerge")
# what a run's children add to its text (python-docx's str() of each); w:br is a line break only
# when of type textWrapping, its default
_RUN_TEXT = {_W_TAB: "\t", _W_PTAB: "\t", _W_CR: "\n", _W_NO_BREAK_HYPHEN: "-"}

# kinds of open element in the document part; anything else is _SKIP, with all it contains.
# Kinds from _PARAGRAPH on have something to do when they end.
(_ROOT, _DOCUMENT, _BODY, _PARAGRAPH_PROPERTIES, _HYPERLINK, _RUN, _TEXT_DONE, _TABLE, _ROW_PROPERTIES,
 _CELL_PROPERTIES, _PARAGRAPH, _CELL, _ROW, _TEXT) = range(1, 15)
_XML_SPACE = "http://www.w3.org/XML/1998/namespace" + _SEP + "space" + _SEP + "xml"  # its prefix is always xml
_XML_BLANKS = " \t\n\r"
_JOIN_EVERY = 1024  # pieces of text joined at once, so that each costs its characters, not an object


class _Pieces:
    """Text kept as it comes and joined by `sep` at the end; every _JOIN_EVERY pieces are joined
    at once, so that millions of tiny pieces (tabs, empty paragraphs) cost their characters."""

    __slots__ = ("_sep", "pieces", "_joined")

    def __init__(self, sep: str) -> None:
        self._sep = sep
        self.pieces: list[str] = []
        self._joined: list[str] = []

    def add(self, piece: str) -> None:
        self.pieces.append(piece)
        if len(self.pieces) >= _JOIN_EVERY:
            self.fold()

    def fold(self) -> None:
        self._joined.append(self._sep.join(self.pieces))
        self.pieces.clear()

    def take(self) -> str:
        """The text so far (empty after)."""
        if not self._joined:
            text = self._sep.join(self.pieces)
        else:
            if self.pieces:
                self.fold()
            text = self._sep.join(self._joined)
            self._joined.clear()
        self.pieces.clear()
        return text


@dataclass(frozen=True, eq=False)
class _Cell:
    """A table cell that holds content (not the continuation of a vertical merge); one per w:tc."""

    text: str
    span: int  # grid columns (w:gridSpan); python-docx lists the cell this many times


class _Body(_Handler):
    """The body of the main document part: lines of paragraphs and table rows, and the title.

    The hot path (an element inside a skipped one, a run, a paragraph) is written out in `start`
    and `end`: expat calls them for every element, and a bomb is nothing but elements.
    """

    def __init__(self, styles: _Styles, limits: Limits) -> None:
        super().__init__(limits)
        self._title_ids, self._title_default = styles.ids, styles.default
        self._stack = [_ROOT]
        self._seen_body = False
        self._lines = _Pieces("\n")
        self.title = ""
        self._paragraph = _Pieces("")
        self._in_cell = False
        self._space: dict[int, str | None] = {}  # xml:space of the open element of each kind
        self._blank: list[str] | None = None  # leading blank text of the open w:t, libxml2 may drop it
        self._properties = 0  # of the paragraph: 1 in its first w:pPr, 2 once it has a style
        self._style_id: str | None = None
        self._above: dict[int, _Cell] = {}  # the table's previous row: its cells by grid column
        self._chars = 0  # of text read and of merged cells repeated: a row can repeat cells above it
        self._row: list[tuple[int, bool, str]] = []  # span, continues a vertical merge, text
        self._grid_before = 0
        self._first_row_properties = self._first_grid_before = True
        self._cell = _Pieces("\n")
        self._span = 1
        self._merge: str | None = None  # w:vMerge of the cell: "restart", "continue" or none
        self._first_cell_properties = self._first_span = self._first_merge = True

    def parser(self, encoding: str | None):
        parser = super().parser(encoding)
        parser.CharacterDataHandler = self._characters
        # lxml's w:t.text ends at the first child node, comments and processing instructions too
        parser.CommentHandler = self._other_node
        parser.ProcessingInstructionHandler = self._other_node
        parser.StartCdataSectionHandler = self._cdata
        return parser

    def _characters(self, data: str) -> None:
        if self._stack[-1] != _TEXT:
            return
        self._count(len(data))
        blank = self._blank
        if blank is not None:
            if not data.strip(_XML_BLANKS):
                blank.append(data)
                return
            self._blank = None
            for piece in blank:
                self._paragraph.add(piece)
        self._paragraph.add(data)

    def _other_node(self, *args) -> None:
        if self._stack[-1] == _TEXT:
            self._stack[-1] = _TEXT_DONE

    def _cdata(self) -> None:
        if self._stack[-1] == _TEXT:
            self._blank = None  # dropped: libxml2 drops blanks before a CDATA section, and keeps its text

    def _start_text(self, attrs: dict[str, str]) -> None:
        """A w:t in a run begins. python-docx's parser (libxml2 with remove_blank_text) drops its
        leading text if that is all blank, a child node follows and xml:space="preserve" is not in
        effect; docs/reliability.md says where libxml2 keeps it anyway and kb.wordml does not."""
        self._space[_TEXT] = attrs.get(_XML_SPACE)
        space = next((value for kind in reversed(self._stack)
                      if (value := self._space.get(kind)) in ("preserve", "default")), None)
        self._blank = None if space == "preserve" else []

    def start(self, name: str, attrs: dict[str, str]) -> None:
        stack = self._stack
        if len(stack) > self._max_depth:
            raise self._too_deep()
        parent = stack[-1]
        if parent == _SKIP:
            stack.append(_SKIP)
            return
        name = self._expanded.get(name) or self._expand(name)
        if parent == _RUN:
            if name == _W_T:
                stack.append(_TEXT)
                self._start_text(attrs)
                return
            stack.append(_SKIP)
            if name in _RUN_TEXT:
                self._paragraph.add(_RUN_TEXT[name])
            elif name == _W_BR and self._attribute(attrs, _W_TYPE, "textWrapping") == "textWrapping":
                self._paragraph.add("\n")
        elif parent == _PARAGRAPH:
            if name == _W_R:
                stack.append(_RUN)
                self._space[_RUN] = attrs.get(_XML_SPACE)
            elif name == _W_HYPERLINK:
                stack.append(_HYPERLINK)
                self._space[_HYPERLINK] = attrs.get(_XML_SPACE)
            elif name == _W_PPR and not self._properties:
                self._properties = 1  # python-docx reads the first w:pPr, and its first w:pStyle
                stack.append(_PARAGRAPH_PROPERTIES)
            else:
                stack.append(_SKIP)
        elif name == _W_P and (parent == _BODY or parent == _CELL):
            self._in_cell = parent == _CELL
            self._properties, self._style_id = 0, None
            stack.append(_PARAGRAPH)
            self._space[_PARAGRAPH] = attrs.get(_XML_SPACE)
        elif parent == _HYPERLINK:
            if name == _W_R:
                stack.append(_RUN)
                self._space[_RUN] = attrs.get(_XML_SPACE)
            else:
                stack.append(_SKIP)
        elif parent == _TEXT:
            stack[-1] = _TEXT_DONE
            stack.append(_SKIP)
        elif parent == _PARAGRAPH_PROPERTIES:
            if name == _W_PSTYLE and self._properties == 1:
                self._properties = 2
                self._style_id = self._attribute(attrs, _W_VAL)
            stack.append(_SKIP)
        else:
            kind = self._in_block(parent, name, attrs)
            stack.append(kind)
            self._space[kind] = attrs.get(_XML_SPACE)

    def _in_block(self, parent: int, name: str, attrs: dict[str, str]) -> int:
        """The kind of an element in the document, body, a table, row or cell, or their properties."""
        if parent == _BODY and name == _W_TBL:  # a nested table is no part of python-docx's text
            self._above = {}
            return _TABLE
        if parent == _CELL and name == _W_TCPR and self._first_cell_properties:
            self._first_cell_properties = False
            return _CELL_PROPERTIES
        if parent == _TABLE and name == _W_TR:
            self._row, self._grid_before = [], 0
            self._first_row_properties = self._first_grid_before = True
            return _ROW
        if parent == _ROW:
            return self._in_row(name)
        if parent == _CELL_PROPERTIES:
            self._cell_property(name, attrs)
        elif parent == _ROW_PROPERTIES and name == _W_GRID_BEFORE and self._first_grid_before:
            self._first_grid_before = False
            self._grid_before = _integer(self._attribute(attrs, _W_VAL), 0)
        elif parent == _DOCUMENT and name == _W_BODY and not self._seen_body:
            self._seen_body = True  # python-docx reads the first w:body only
            return _BODY
        elif parent == _ROOT:
            if name != _W_DOCUMENT:
                raise _invalid("the main document part is not a w:document")
            return _DOCUMENT
        return _SKIP

    def _in_row(self, name: str) -> int:
        if name == _W_TC:
            self._span, self._merge = 1, None
            self._first_cell_properties = self._first_span = self._first_merge = True
            return _CELL
        if name == _W_TRPR and self._first_row_properties:
            self._first_row_properties = False
            return _ROW_PROPERTIES
        return _SKIP

    def _cell_property(self, name: str, attrs: dict[str, str]) -> None:
        if name == _W_GRID_SPAN and self._first_span:
            self._first_span = False
            self._span = _integer(self._attribute(attrs, _W_VAL), 1)
        elif name == _W_VMERGE and self._first_merge:
            self._first_merge = False
            self._merge = self._attribute(attrs, _W_VAL, "continue")  # a bare w:vMerge continues the cell above

    def end(self, name: str) -> None:
        kind = self._stack.pop()
        if kind < _PARAGRAPH:
            return
        if kind == _TEXT:
            for piece in self._blank or ():  # followed by the end tag: libxml2 kept it
                self._paragraph.add(piece)
        elif kind == _PARAGRAPH:
            text = self._paragraph.take()
            if self._in_cell:
                self._cell.add(text)
                return
            lines = self._lines.pieces
            lines.append(text)
            if len(lines) >= _JOIN_EVERY:
                self._lines.fold()
            if not self.title and text.strip() and self._is_title(self._style_id):
                self.title = text
        elif kind == _CELL:
            self._row.append((self._span, self._merge == "continue", self._cell.take()))
            if len(self._row) > self._limits.cells:
                raise _invalid(f"a table row has more than {self._limits.cells:,} cells")
        else:
            self._lines.add(self._end_row())

    def _is_title(self, style_id: str | None) -> bool:
        found = self._title_ids.get(style_id) if style_id else None
        return self._title_default if found is None else found

    def _end_row(self) -> str:
        """The row's line: python-docx's `_Row.cells`, each cell once, in the order first met.

        A cell that continues a vertical merge is the cell of the row above at its grid column,
        found as python-docx's `tc_at_grid_offset` finds it: the first cell there, none if an
        earlier cell reaches past it (spans may be 0 or negative); python-docx lost the document
        where there was none, here the cell stands alone.
        """
        offset = self._grid_before
        cells: list[_Cell] = []
        starts: dict[int, _Cell] = {}
        highest = -1 << 62  # the furthest grid offset a cell started at (spans may be 0 or negative)
        for span, continues, text in self._row:
            cell = self._above.get(offset) if continues else None
            if cell is None:
                cell = _Cell(text, span)
            else:
                self._count(len(cell.text))
            cells.append(cell)
            if offset > highest:
                starts[offset], highest = cell, offset
            offset += span
        self._above = starts
        unique = {id(cell): cell for cell in cells if cell.span > 0}
        return " | ".join(" ".join(cell.text.split()) for cell in unique.values())

    def _count(self, characters: int) -> None:
        self._chars += characters
        if self._chars > self._limits.text:
            raise _bomb(f"the text passes {self._limits.text:,} characters")

    def close(self, member: str) -> None:
        if not self._seen_body:
            raise _invalid(f"{member} has no w:body")

    def value(self) -> str:
        """The lines read, joined."""
        return self._lines.take()


def _integer(value: str | None, default: int) -> int:
    """An integer attribute as python-docx parses it (int()); a missing or bad one is `default`."""
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
