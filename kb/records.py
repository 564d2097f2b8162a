"""Typed records passed between modules: documents, passages (chunks), search hits, skipped files."""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Metadata:
    """What a document says about itself; every field is empty when the document does not say it."""

    place: tuple[str, ...] = ()  # (province, city, county) as far as known; ("全国",) for national texts
    date: str = ""  # publication or enactment, ISO: "2022-01-21"
    issuer: str = ""  # the issuing or enacting body: 广东省人民代表大会常务委员会
    doc_number: str = ""  # 粤府〔2021〕12号, brackets normalised to 〔〕
    doc_type: str = ""  # 法律, 行政法规, 地方性法规, 司法解释, 部门规章, 通知, 意见, 方案, 报告, …


@dataclass(frozen=True)
class Document:
    """One source file turned into normalised text; every span in kb indexes into `text`."""

    id: str  # path relative to the ingest root's parent, "/"-separated: "policies/abc.txt"
    path: str  # absolute path of the source file, to open it
    title: str
    text: str  # NFKC-normalised text
    sha256: str  # of the file's bytes: re-ingesting skips unchanged files by this
    format: str  # "txt" | "md" | "pdf" | "docx" | "html"
    page_starts: tuple[int, ...] = ()  # offset in `text` where page i+1 starts; () = no pages
    meta: Metadata = Metadata()

    def page_at(self, offset: int) -> int | None:
        """1-based page number holding character `offset`, or None for unpaged formats."""
        if not self.page_starts:
            return None
        return max(1, bisect.bisect_right(self.page_starts, offset))


@dataclass(frozen=True)
class Chunk:
    """A passage: a span of one document's text with the headings that enclose it."""

    doc_id: str
    ordinal: int  # position of the passage within its document, from 0
    start: int
    end: int  # text == document.text[start:end]
    text: str
    page: int | None = None  # page of `start`, 1-based
    section: str = ""  # enclosing headings, outermost first, joined by " / "
    article: str = ""  # law articles covered: "第十条" or "第十条至第十二条"


@dataclass(frozen=True)
class Hit:
    """A passage returned by a search, with what a citation and a highlight need."""

    rank: int  # 1-based
    score: float
    doc_id: str
    title: str
    path: str
    text: str
    start: int
    end: int
    page: int | None
    section: str
    article: str
    ordinal: int
    matched_terms: tuple[str, ...] = ()  # query terms found in `text`, longest first
    ranks: dict = field(default_factory=dict, compare=False)  # mode -> rank in that mode's list
    meta: Metadata = Metadata()  # the document's place, date, issuer, number and type


@dataclass(frozen=True)
class Skipped:
    """A file or folder that was not indexed, and why."""

    path: str
    reason: str
    # The id of what is there ("policies/a.txt", or a folder's "policies/sub") when it exists but
    # cannot be read now: documents indexed from it before are kept, not removed.
    doc_id: str = ""

    def covers(self, doc_id: str) -> bool:
        """True when this is the file of `doc_id`, or a folder above it, that could not be read."""
        return bool(self.doc_id) and (doc_id == self.doc_id or doc_id.startswith(self.doc_id + "/"))


@dataclass(frozen=True)
class IngestReport:
    """What one ingest did: files added, changed, kept, removed and skipped; passages; seconds."""

    added: tuple[str, ...]  # document ids
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]
    skipped: tuple[Skipped, ...]
    passages: int  # in the whole index after the ingest
    embedded: int  # passages embedded by the model in this run (the rest came from the cache)
    seconds: float
    stage_seconds: dict = field(default_factory=dict, compare=False)  # parse, chunk, tokenize, embed, index
    # Documents whose file or folder could not be read this time: their indexed version stays.
    kept: tuple[str, ...] = ()
    updated: bool = True  # False when nothing changed: no new build is written

    @property
    def indexed(self) -> int:
        """Files now indexed from the paths of this run (new, changed and unchanged)."""
        return len(self.added) + len(self.changed) + len(self.unchanged)


@dataclass(frozen=True)
class Citation:
    """Where a passage comes from, in the words a reader checks it by."""

    title: str
    doc_id: str
    path: str
    page: int | None
    article: str
    section: str
    start: int
    end: int
    place: str = ""  # "浙江省/杭州市", "全国"
    date: str = ""
    doc_number: str = ""

    def label(self) -> str:
        """One line: 《标题》 · 第3页 · 第十条 · 第二章 总则 · 浙江省/杭州市 · 2014-04-10 · 文号 · 字符 120–480 · doc id."""
        parts = [f"《{self.title}》"]
        if self.page:
            parts.append(f"第{self.page}页")
        if self.article:
            parts.append(self.article)
        if self.section:
            parts.append(self.section)
        parts.extend(value for value in (self.place, self.date, self.doc_number) if value)
        parts.append(f"字符 {self.start}–{self.end}")
        parts.append(self.doc_id)
        return " · ".join(parts)


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of an extractive answer, quoted from a hit and numbered by that hit's rank."""

    text: str
    citation: int  # the rank of the hit it comes from: [n] in the answer, card n below
    doc_id: str
    start: int  # span of the sentence in the document text
    end: int


@dataclass(frozen=True)
class PlaceGroup:
    """The best passages of one place for a query: a row of the compare-by-place view."""

    place: tuple[str, ...]  # ("浙江省", "杭州市"), ("全国",), or () for documents that name no place
    hits: tuple[Hit, ...]  # best first
