"""Split a Document into passages that follow its headings, law articles and sentences."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import NamedTuple

from kb.records import Chunk, Document
from kb.zh import INFO_END, ITEM_NUMERALS, NUMERALS, SENTENCE_ENDS, chinese_number

_ENDS = SENTENCE_ENDS
_CN = ITEM_NUMERALS
_NUM = NUMERALS + "0-9"
_LABEL_MAX = 40  # a numbered line whose title part is longer is a paragraph, not a heading
_SOFT = ",，、:： \t\u3000"  # where an over-long sentence may be cut

_LINE = re.compile(r"\S[^\n]*")  # a line from its first non-space character; blank lines never match
_MD = re.compile(r"(#{1,6})\s+(.*)")
_STRUCT = re.compile(f"第[{_NUM}]+(分编|编|章|节)")
_ARTICLE = re.compile(f"第[{_NUM}]+条(?:之[{_CN}]+)?(?=\\s|$)")
_REPORT = re.compile(f"[{_CN}]{{1,3}}、|[(（][{_CN}]{{1,3}}[)）]|\\d{{1,2}}[.．、](?!\\d)")
# "... 要求。 一、支持疫情防控物资供应 对生产…": a short numbered title between spaces inside a line.
_INLINE = re.compile(
    f"(?<=\\s)(?:[{_CN}]{{1,3}}、|[(（][{_CN}]{{1,3}}[)）])[^\\s{_ENDS}]{{1,{_LABEL_MAX}}}[?？]?(?=\\s)")
_LABEL_END = re.compile(f"\\s|[{_ENDS}]")
_SENTENCE_END = re.compile(f"[{_ENDS}]+[”’）)」』》]*")  # a closing quote stays with its sentence
_REPORT_FIRST = frozenset(_CN + "(（0123456789")
# Markup, not text: the laws archive's <!-- INFO END -->, <!-- TABLE -->, <!-- FORCE BREAK -->. An unclosed
# "<!--" is left as text rather than swallowing the rest of a document.
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_STRUCT_LEVEL = {"编": 1, "分编": 2, "章": 3, "节": 4}  # report-style headings sit below, at 5..7
# The rules passages are cut by, recorded with the settings in an index's manifest: `kb ingest` re-cuts
# an index cut by other rules (its vectors come from the embedding cache wherever a passage is the
# same). 2: comments and passages of headings alone are left out; absent (1) before.
RULES = 2


@dataclass(frozen=True)
class ChunkSettings:
    """How passages are cut: `size` is the hard maximum length, `article_size` the same for passages
    of law articles, `min_size` the smallest tail kept alone."""

    size: int = 400
    min_size: int = 80
    # Statutes are read article by article, and neighbouring articles give a short one the context
    # its words are in: packing them up to this size helps the laws questions, with prose passages
    # (and so policies) unchanged (docs/eval.md, "Passage size and shape").
    article_size: int = 600

    def __post_init__(self) -> None:
        for name in ("size", "min_size", "article_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        for name in ("size", "article_size"):
            if getattr(self, name) < 50:
                raise ValueError(f"{name} must be >= 50, got {getattr(self, name)}")
        if not 0 <= self.min_size < self.size:
            raise ValueError(f"min_size must be >= 0 and < size ({self.size}), got {self.min_size}")

    def as_dict(self) -> dict:
        """The settings as plain JSON values with the rules they are applied by, for the index manifest."""
        return {**asdict(self), "rules": RULES}

    @classmethod
    def from_dict(cls, recorded: Mapping[str, int]) -> ChunkSettings:
        """The settings of a manifest's chunking, whatever rules it names; one from before article_size
        cut law articles at `size` like everything else."""
        return cls(**{"article_size": recorded["size"], **{k: v for k, v in recorded.items() if k != "rules"}})


class _Unit(NamedTuple):
    """A span that is never cut: a whole article, line, sentence or piece of an over-long sentence."""

    start: int
    end: int
    sec: int  # units of different sections never share a chunk
    path: tuple[str, ...]  # enclosing heading labels, outermost first
    article: str
    heading: bool  # the span is nothing but a heading line
    # A heading that only names what follows (the title, a "#" line, 第X编/章/节), unlike a short
    # numbered title, which may be a list item: a passage of these alone is not indexed.
    outline: bool = False


def _strip(text: str, a: int, b: int) -> tuple[int, int]:
    """Shrink [a, b) past leading and trailing whitespace."""
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _label(line: str) -> str:
    """A heading label: the line up to its first space or sentence end."""
    m = _LABEL_END.search(line)
    return line[: m.start() if m else len(line)]


def _balanced(label: str) -> bool:
    """True when the label closes every bracket and book-title mark it opens."""
    return (label.count("《") == label.count("》") and label.count("(") == label.count(")")
            and label.count("“") == label.count("”"))


def _report_level(mark: str) -> int:
    """Level of a report-style number: 一、 above (一) above 1."""
    if mark[0] in _CN:
        return 5
    return 6 if mark[0] in "(（" else 7


class _Splitter:
    """One pass over a document's lines, turning them into units with their section and article."""

    def __init__(self, text: str, size: int, article_size: int) -> None:
        self.source = text
        # Comments read as line breaks, so that no unit holds one; offsets stay those of `text`.
        self.text = _COMMENT.sub(lambda m: "\n" * len(m.group()), text)
        self.comments = [m.start() for m in _COMMENT.finditer(text)]
        self.size = size
        self.article_size = article_size
        self.units: list[_Unit] = []
        self.sec = 0
        self.has_body = False  # the current section holds more than heading lines
        self.stack: list[tuple[int, str]] = []
        self.path: tuple[str, ...] = ()
        self.group: list = []  # the open article: [start, end, label]
        self.resume = ""  # the article a comment interrupted: the lines after it still belong to it

    def run(self) -> list[_Unit]:
        """Split the whole text; the enactment block above INFO END is its own section, outside any
        heading, and every comment ends the passage before it."""
        text = self.text
        info = preamble_end(self.source)
        untitled = info == 0
        comments = iter(self.comments)
        upcoming = next(comments, None)
        for m in _LINE.finditer(text):
            s = m.group().rstrip()
            a, b = m.start(), m.start() + len(s)
            if upcoming is not None and upcoming < a:
                while upcoming is not None and upcoming < a:
                    upcoming = next(comments, None)
                self._break()
            resume, self.resume = self.resume, ""
            c = s[0]
            if a < info:
                # The title and enactment history: a passage when it holds more than the title.
                self._emit(a, b, "", heading=c == "#" and bool(_MD.match(s)), outline=True)
            elif c == "#" and (md := _MD.match(s)):
                if untitled and len(md.group(1)) == 1:
                    # The document title: shown by the caller, not a section of its own.
                    self._emit(a, b, "", heading=True, outline=True)
                else:
                    self._flush()
                    self._heading(len(md.group(1)), " ".join(md.group(2).split()))
                    self._emit(a, b, "", heading=True, outline=True)
            elif c == "第" and (art := _ARTICLE.match(s)):
                self._flush()
                self.group = [a, b, art.group()]
            elif (c == "第" and (st := _STRUCT.match(s)) and len(s) <= _LABEL_MAX
                  and not any(e in s for e in _ENDS)):
                self._flush()
                self._heading(_STRUCT_LEVEL[st.group(1)], " ".join(s.split()))
                self._emit(a, b, "", heading=True, outline=True)
            elif self.group:
                # Items such as "(一)…" inside an article belong to it, not to a new section.
                self.group[1] = b
            elif resume:
                self.group = [a, b, resume]
            elif c in _REPORT_FIRST and (rep := _REPORT.match(s)):
                self._report(s, rep, a, b)
            else:
                self._body(s, a, b)
            untitled = False
        self._flush()
        return self.units

    def _break(self) -> None:
        """A comment: a passage is one span of the text, so none reaches across it. An article it
        interrupts goes on after it."""
        self.resume = self.group[2] if self.group else ""
        self._flush()
        self.sec += 1
        self.has_body = False

    def _report(self, s: str, rep: re.Match, a: int, b: int) -> None:
        """A line starting "一、", "(一)" or "1.": a title if short and alone, else a numbered paragraph."""
        level = _report_level(rep.group())
        label = _label(s)
        rest = s[len(label):]
        if (len(label) > _LABEL_MAX  # "十、人民检察院应当依法对…": a numbered paragraph
                or not _balanced(label)  # "(十一)《应对甲型 H1N1 …》": a citation cut at a space
                or rest[:1] in (";", "；")  # "(三)…的证明;": a list item
                or (rest and rest[0] in _ENDS and _SENTENCE_END.fullmatch(rest))  # one whole sentence
                or (level == 7 and (len(s) > _LABEL_MAX or any(e in s[:-1] for e in _ENDS)))):
            # Not a title, but it still ends the section of an earlier title at its level.
            if any(lv >= level for lv, _ in self.stack):
                self._close(level)
            self._body(s, a, b)
            return
        self._heading(level, label)
        self._body(s, a, b, len(label))

    def _body(self, s: str, a: int, b: int, label_len: int = 0) -> None:
        """A line outside any article, cut further at numbered titles inside it ("。 二、xx 正文")."""
        marks = [m for m in _INLINE.finditer(s, 1) if _balanced(m.group())]
        bounds = [0, *(m.start() for m in marks), len(s)]
        for i in range(len(bounds) - 1):
            if i:
                label = marks[i - 1].group()
                self._heading(_report_level(label), label)
                label_len = len(label)
            seg = s[bounds[i]:bounds[i + 1]].rstrip()
            self._emit(a + bounds[i], a + bounds[i] + len(seg), "", heading=len(seg) == label_len)

    def _close(self, level: int) -> None:
        """Start a new section, leaving the headings at `level` and below."""
        if self.has_body:
            self.sec += 1
            self.has_body = False
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.path = tuple(lbl for _, lbl in self.stack)

    def _heading(self, level: int, label: str) -> None:
        """Open a section below the enclosing headings of higher level."""
        self._close(level)
        self.stack.append((level, label))
        self.path = tuple(lbl for _, lbl in self.stack)

    def _flush(self) -> None:
        """Emit the open article, whole if it fits."""
        if self.group:
            a, b, label = self.group
            self.group = []
            self._emit(a, b, label)

    def _emit(self, a: int, b: int, article: str, heading: bool = False, outline: bool = False) -> None:
        """Add [a, b) as one unit if it fits, else cut it at lines, then sentences, then commas."""
        if a >= b:
            return
        if not heading:
            self.has_body = True
        if b - a <= (self.article_size if article else self.size):
            self.units.append(_Unit(a, b, self.sec, self.path, article, heading, heading and outline))
            return
        text = self.text
        nl = text.find("\n", a, b)
        if nl >= 0:
            for m in _LINE.finditer(text, a, b):
                self._emit(m.start(), m.start() + len(m.group().rstrip()), article, heading, outline)
            return
        pos = a
        for m in _SENTENCE_END.finditer(text, a, b):
            self._pieces(pos, m.end(), article)
            pos = m.end()
        self._pieces(pos, b, article)

    def _pieces(self, a: int, b: int, article: str) -> None:
        """Add one sentence; an over-long one is cut at its last comma or space that fits, else hard."""
        text, size = self.text, self.article_size if article else self.size
        a, b = _strip(text, a, b)
        while b - a > size:
            cut = max(text.rfind(c, a + 1, a + size) for c in _SOFT)
            cut = cut + 1 if cut > a else a + size
            self.units.append(_Unit(*_strip(text, a, cut), self.sec, self.path, article, False))
            a = _strip(text, cut, b)[0]
        if a < b:
            self.units.append(_Unit(a, b, self.sec, self.path, article, False))


@dataclass(frozen=True)
class TextPart:
    """A line or a whole law article of a text, as the chunker reads it."""

    start: int
    end: int
    heading: bool  # nothing but a heading: 第X章, a Markdown # line, the title line, a short numbered title
    article: str  # the 第X条 it belongs to; "" outside articles
    preamble: bool  # the title and enactment history above INFO_END


def preamble_end(text: str) -> int:
    """Where a law's title and enactment history end in `text` (its INFO END line); 0 without one."""
    return max(text.find(INFO_END), 0)


def text_parts(text: str, preamble: int | None = None) -> list[TextPart]:
    """The lines and articles of `text` (a document, or one passage of it) in order, each saying
    whether the chunker takes it for a heading: the one set of heading rules, for what quotes text too.

    `preamble` is where the title and enactment history end, as an offset in `text`: for a passage,
    its document's preamble_end less the passage's start (a passage holds no INFO END line). By
    default it is read from `text` itself, a whole document.
    """
    whole = len(text) + 1  # nothing is cut: one part per line or article
    end = preamble_end(text) if preamble is None else preamble
    return [TextPart(unit.start, unit.end, unit.heading, unit.article, unit.end <= end)
            for unit in _Splitter(text, whole, whole).run()]


def _pack(units: list[_Unit], size: int, min_size: int, article_size: int) -> list[list[_Unit]]:
    """Greedily fill chunks of one section up to `size` (`article_size` when a unit is a law
    article); then let a short last chunk borrow from the one before."""
    groups: list[list[_Unit]] = []
    cur: list[_Unit] = []
    for u in units:
        if cur and (u.sec != cur[0].sec or u.end - cur[0].start > (article_size if u.article else size)):
            groups.append(cur)
            cur = []
        cur.append(u)
    if cur:
        groups.append(cur)
    for i in range(1, len(groups)):
        prev, last = groups[i - 1], groups[i]
        if prev[0].sec != last[0].sec or (i + 1 < len(groups) and groups[i + 1][0].sec == last[0].sec):
            continue
        # A tail fragment alone retrieves badly: move whole units back while that evens the two out.
        while (last[-1].end - last[0].start < min_size and len(prev) > 1 and not prev[-2].heading
               and last[-1].end - prev[-1].start <= (article_size if last[-1].article else size)
               and prev[-2].end - prev[0].start >= last[-1].end - prev[-1].start):
            last.insert(0, prev.pop())
    return groups


def _section(group: list[_Unit]) -> str:
    """The deepest heading path that encloses every unit, else the headings they share."""
    paths = [u.path for u in group]
    best = max(paths, key=len)
    if all(best[: len(p)] == p for p in paths):
        return " / ".join(best)
    shared: tuple[str, ...] = ()
    for level in zip(*paths):
        if any(x != level[0] for x in level):
            break
        shared += (level[0],)
    return " / ".join(shared)


def _article(group: list[_Unit]) -> str:
    """"第十条" or "第十条至第十二条": the first and last article the chunk touches."""
    labels = [u.article for u in group if u.article]
    if not labels:
        return ""
    return labels[0] if labels[0] == labels[-1] else f"{labels[0]}至{labels[-1]}"


_ARTICLE_NUMBER = re.compile(f"第([{_NUM}]+)条")


def article_numbers(text: str) -> list[int]:
    """The numbers of the articles `text` names, in order: 劳动合同法第三十八条、第39条 -> [38, 39]."""
    numbers = [chinese_number(m.group(1)) for m in _ARTICLE_NUMBER.finditer(text)]
    return [n for n in numbers if n is not None]


def article_range(label: str) -> tuple[int, int] | None:
    """The first and last article a passage label covers: 第三十六条至第三十八条 -> (36, 38)."""
    numbers = article_numbers(label)
    return (numbers[0], numbers[-1]) if numbers else None


def chunk_document(doc: Document, settings: ChunkSettings = ChunkSettings()) -> list[Chunk]:
    """Cut a document into passages of at most `settings.size` characters (`article_size` for law
    articles), in order and without overlap.

    Every character of the text lies in a passage except comments (<!-- … -->, markup) and heading
    lines with no text of their own beside them: the title, "#" lines and 第X编/章/节 lines that would
    make a passage alone (a law's title with an empty enactment history, a chapter heading before an
    article too long to join it). Such a passage is a name without content, close to any question on
    its topic; the headings live on in the section of the passages below them.
    """
    units = _Splitter(doc.text, settings.size, settings.article_size).run()
    groups = [group for group in _pack(units, settings.size, settings.min_size, settings.article_size)
              if not all(unit.outline for unit in group)]
    chunks = []
    for ordinal, group in enumerate(groups):
        start, end = group[0].start, group[-1].end
        chunks.append(Chunk(doc_id=doc.id, ordinal=ordinal, start=start, end=end, text=doc.text[start:end],
                            page=doc.page_at(start), section=_section(group), article=_article(group)))
    return chunks


def indexed_text(chunk: Chunk, title: str) -> str:
    """What BM25 and the embedder see for a passage: its document title and section, then its text.

    The title and headings answer "which law / which city is this" for passages that never say it.
    """
    return in_context(chunk.text, title, chunk.section)


def in_context(text: str, title: str, section: str) -> str:
    """`text` of a document under its title and section (those not already at its start), one per line:
    indexed_text's shape, for a passage or for a sentence quoted from one."""
    context = [title] if title and not text.startswith(title) else []
    if section and section not in text[:len(section) + 8]:
        context.append(section)
    return "\n".join([*context, text])
