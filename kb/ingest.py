"""Files to documents: find supported files under folders, decode them and normalise their text."""
from __future__ import annotations

import codecs
import functools
import hashlib
import io
import os
import re
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePath

from kb.errors import KbError, UnreadableFile
from kb.records import Document, Skipped
from kb.tokenize import basic_ideographs, simplify, traditional_share

FORMATS = {".txt": "txt", ".md": "md", ".markdown": "md", ".pdf": "pdf", ".docx": "docx",
           ".html": "html", ".htm": "html"}
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(FORMATS)
TITLE_MAX = 60


@dataclass(frozen=True)
class SourceFile:
    """A file found by `discover`, with the id its document will get."""

    path: str  # absolute path of the file
    doc_id: str  # path relative to the ingest root's parent, "/"-separated
    root: str  # absolute path of the root (folder or file) it was found under


MAX_UPLOAD_BYTES = 50 * 1024 * 1024


# ---------------------------------------------------------------- uploads

def save_upload(folder: str | Path, name: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Store an uploaded file in `folder` under a sanitised name; never anywhere else.

    Only the last component of the name is kept (no ../, no absolute path), without control or NUL
    characters and leading dots. The file is written beside its final name and renamed into place,
    so an ingest that runs meanwhile sees the old file or the new one, never half of one.
    """
    from kb.errors import BadUpload
    from kb.store import write_atomic

    base = re.sub(r"[\x00-\x1f\x7f]", "", str(name)).replace("\\", "/").rsplit("/", 1)[-1]
    base = base.strip().lstrip(".").strip()
    if not base:
        raise BadUpload(f"{name!r}: not a usable file name")
    suffix = PurePath(base).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise BadUpload(f"{base}: unsupported file type {suffix or '(no suffix)'};"
                        f" use {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    if len(data) > max_bytes:
        raise BadUpload(f"{base}: {len(data) / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB upload limit")
    if not data:
        raise BadUpload(f"{base}: the file is empty")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / base
    if target.resolve().parent != folder.resolve():
        raise BadUpload(f"{name!r}: would be stored outside {folder}")
    write_atomic(target, data)
    return target


# ---------------------------------------------------------------- discovery

def discover(paths) -> tuple[list[SourceFile], list[Skipped]]:
    """Supported files under `paths` (files or folders, recursively), sorted by id, and the files skipped."""
    found: dict[str, SourceFile] = {}  # resolved path -> source; one entry per real file
    skipped: list[Skipped] = []
    seen_dirs: set[str] = set()
    for given in paths:
        given = os.fspath(given)
        if not os.path.exists(given):
            raise KbError(f"{given}: no such file or folder")
        root = os.path.abspath(given)
        if os.path.isdir(root):
            base = os.path.basename(root)
            _walk(root, root, base, found, skipped, seen_dirs)
        else:
            _add_file(root, os.path.basename(root), root, found, skipped)
    sources = sorted(found.values(), key=lambda s: s.doc_id)
    return sources, sorted(skipped, key=lambda s: s.path)


def _walk(folder: str, root: str, prefix: str, found: dict, skipped: list, seen_dirs: set) -> None:
    """Add the files below `folder`; each resolved folder is entered once, so symlink loops end."""
    real = os.path.realpath(folder)
    if real in seen_dirs:
        return
    seen_dirs.add(real)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        skipped.append(Skipped(folder, f"cannot list folder: {exc.strerror or exc}"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        doc_id = f"{prefix}/{entry.name}" if prefix else entry.name
        if not os.path.exists(entry.path):
            skipped.append(Skipped(entry.path, "broken symbolic link"))
        elif entry.is_dir():
            _walk(entry.path, root, doc_id, found, skipped, seen_dirs)
        elif not entry.is_file():  # a FIFO or device would block or never end when read
            skipped.append(Skipped(entry.path, "not a regular file"))
        else:
            _add_file(entry.path, doc_id, root, found, skipped)


def _add_file(path: str, doc_id: str, root: str, found: dict, skipped: list) -> None:
    """Record one file, or why it is skipped; a file reached twice keeps the id of the first route."""
    suffix = PurePath(path).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        skipped.append(Skipped(path, f"unsupported file type {suffix or '(no suffix)'}"))
        return
    real = os.path.realpath(path)
    if real not in found:
        found[real] = SourceFile(path=path, doc_id=doc_id, root=root)


# ---------------------------------------------------------------- text helpers

# NFKC maps only Kangxi radicals; PDF fonts also use these CJK Radicals Supplement forms for whole characters
_RADICAL_LOOKALIKES = str.maketrans(
    "⺟⺠⻄⻅⻆⻉⻋⻓⻔⻘⻙⻚⻛⻜⻝⻢⻣⻤⻥⻦⻧⻨⻩⻪⻬⻮⻰⻳",
    "母民西见角贝车长门青韦页风飞食马骨鬼鱼鸟卤麦黄黾齐齿龙龟")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)


def normalize_text(text: str) -> str:
    """NFKC-normalise text, unify line ends, drop control characters and trailing spaces.

    NFKC maps Kangxi radicals to ideographs (⽤ -> 用), full-width ASCII to half-width and U+3000 to a
    space. It also turns full-width punctuation ，：（）；？！ into ASCII , : ( ) ; ? ! and … into "...",
    while 。、“”《》 stay; downstream code (the chunker) treats ; ? ! as sentence ends as well as 。.
    Radical look-alikes that NFKC leaves alone (⻅ ⻆ ⻓ ...) become their ideographs.
    """
    text = unicodedata.normalize("NFKC", text).translate(_RADICAL_LOOKALIKES)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    return _TRAILING_SPACE.sub("", text)


def _decode_text(path: str, data: bytes) -> str:
    """Decode a text file: UTF-16 with BOM, UTF-8 (BOM optional), else GB18030 or Big5."""
    if not data.strip():
        raise UnreadableFile(path, "empty file")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return _non_empty(path, data.decode("utf-16"))
        except UnicodeDecodeError:
            raise UnreadableFile(path, "not valid UTF-16 text") from None
    if b"\x00" in data:
        raise UnreadableFile(path, "binary file, not text")
    try:
        # Valid UTF-8 is almost never GBK or Big5 by accident.
        return _non_empty(path, data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        pass
    # GB18030 accepts most byte strings and Big5 (cp950) many: both may "succeed", and the right one
    # is the reading made of common characters.
    readings = []
    for encoding in ("gb18030", "cp950"):
        try:
            readings.append(data.decode(encoding))
        except UnicodeDecodeError:
            continue
    if not readings:
        raise UnreadableFile(path, "not UTF-8, GB18030 or Big5 text")
    return _non_empty(path, max(readings, key=_common_share))


def _non_empty(path: str, text: str) -> str:
    if not text.strip():
        raise UnreadableFile(path, "empty file")
    return text


# The most frequent characters of Chinese text (and of policy texts), simplified; their traditional
# forms are added from OpenCC. A right decoding is full of them, a wrong one almost never.
_COMMON_SIMPLIFIED = ("的一是不了人在有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后"
                      "作里用道行所然家种事成方多经去法学如都同现当没动面起看定天分还进好小部其些主样理心本前开但因只"
                      "从想实日者意无力与长把机十民第公此已工使情明性知全三又关点正业外将两高间由问很最重并物手应向头"
                      "文体政相见被利二等产或新制身果加条规定设区市省县企单位职务管理员服项目务劳保障资金施建")


@functools.lru_cache(maxsize=1)
def _common_characters() -> frozenset[str]:
    import opencc

    traditional = opencc.OpenCC("s2t").convert(_COMMON_SIMPLIFIED)
    return frozenset(_COMMON_SIMPLIFIED) | frozenset(traditional)


def _common_share(text: str) -> float:
    ideographs = basic_ideographs(text)
    if not ideographs:
        return 0.0
    common = _common_characters()
    return sum(ch in common for ch in ideographs) / len(ideographs)


_SENTENCE_END = "。！？；：!?;:"
_CLOSERS = "”’」』》)）]】"
_MID_PUNCT = ",，、“‘《（(—"
_OPENERS = "“‘《「『【"
_CONTINUATION_START = ",，、。;；:：!?！？)）”’》"
# lines that start a chapter, article or numbered item (第X章, 第X条, 一、, (一), 目录) begin a new line
_HEADING = re.compile(
    r"\s*(第[一二三四五六七八九十百千零〇两\d]+[编章节条部]"
    r"|[一二三四五六七八九十]+、|[(（][一二三四五六七八九十\d]+[)）]|目\s*录|附\s*[件则录])")
_PAGE_NUMBER = re.compile(r"\s*(?:[-—–]\s*\d{1,4}\s*[-—–]|\d{1,4}|第\s*\d{1,4}\s*页(?:\s*[,，]?\s*共\s*\d{1,4}\s*页)?"
                          r"|\d{1,4}\s*/\s*\d{1,4})\s*")


def _is_cjk(char: str) -> bool:
    """True for a CJK ideograph (basic block, extension A or compatibility)."""
    return "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf" or "\uf900" <= char <= "\ufaff"


def _width(line: str) -> int:
    """Display width: CJK and full-width characters count 2, others 1."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def _continues(line: str, following: str, full_width: float) -> bool:
    """True when a PDF broke a sentence between `line` and `following` (so they belong together)."""
    if not line or not following or _HEADING.match(following):
        return False
    core = line.rstrip(_CLOSERS)
    if not core or core[-1] in _SENTENCE_END:
        return False
    if not (_is_cjk(line[-1]) or line[-1] in _MID_PUNCT or line[-1] in _CLOSERS):
        return False
    if following[0] in _CONTINUATION_START:  # no line starts with a comma: always the rest of a sentence
        return True
    # a wrapped line fills the column; a shorter one is a heading or the end of a paragraph
    return _width(line) >= 0.75 * full_width and (_is_cjk(following[0]) or following[0] in _OPENERS)


def join_broken_lines(text: str) -> str:
    """Join lines a PDF broke mid-sentence between CJK characters; keep breaks after sentences and before headings."""
    lines = text.split("\n")
    widths = sorted(_width(line) for line in lines if line.strip())
    # the column width is what most full lines reach; the very longest may be a stray table row
    full_width = widths[round(0.9 * (len(widths) - 1))] if widths else 0
    out = [lines[0]]
    for line in lines[1:]:
        if _continues(out[-1], line, full_width):
            out[-1] += line
        else:
            out.append(line)
    return "\n".join(out)


def _drop_page_numbers(text: str) -> str:
    """Remove lone page-number lines ("3", "- 3 -", "第 3 页") among the first and last two lines of a page."""
    lines = text.split("\n")
    filled = [i for i, line in enumerate(lines) if line.strip()]
    edge = set(filled[:2] + filled[-2:])
    return "\n".join(line for i, line in enumerate(lines) if not (i in edge and _PAGE_NUMBER.fullmatch(line)))


def _looks_garbled(text: str) -> bool:
    """True when extracted text is mostly noise: a broken ToUnicode map yields controls, U+FFFD or Latin-1 mojibake."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return False
    bad = sum(1 for c in chars if c == "\ufffd" or unicodedata.category(c) in ("Cc", "Co", "Cs", "Cn"))
    # GBK bytes shown as Latin-1 ("Í¼ »ùÒò"): real Chinese text has almost none of U+00A1..U+00FF
    mojibake = sum(1 for c in chars if "\u00a1" <= c <= "\u00ff" and c not in "·×÷°±§©®µ")
    readable = sum(1 for c in chars if _is_cjk(c) or (c.isascii() and c.isalpha()))
    return (bad + mojibake) / len(chars) > 0.08 or readable / len(chars) < 0.15


def _title_like(line: str) -> bool:
    """A line that can serve as a title: short, has words, and does not end like a sentence or a salutation."""
    line = line.strip()
    return (2 <= len(line) <= TITLE_MAX and line[-1] not in _SENTENCE_END + ",、"
            and any(_is_cjk(c) or c.isalpha() for c in line))


def _title_from_line(text: str, stem: str) -> str:
    """First non-empty line, trimmed; a long opening paragraph is cut after its first phrase."""
    line = next((line.strip() for line in text.split("\n") if line.strip()), "")
    if not line:
        return stem
    if len(line) <= TITLE_MAX:
        return line
    # policy texts are one long line opening with the title: cut at the first break after ~10 chars
    match = re.search(r"[\s。,;:!?]", line[10:TITLE_MAX])
    return (line[: 10 + match.start()] if match else line[:TITLE_MAX]).strip()


# ---------------------------------------------------------------- readers

def read_document(source: SourceFile, sha256: str | None = None) -> Document:
    """Read one file into a Document; raises UnreadableFile for anything it cannot read."""
    path = source.path
    kind = FORMATS.get(PurePath(path).suffix.lower())
    if kind is None:
        raise UnreadableFile(path, f"unsupported file type {PurePath(path).suffix.lower() or '(no suffix)'}")
    limit = max_file_bytes()
    try:
        size = os.stat(path).st_size
        if size > limit:
            raise UnreadableFile(path, f"file is {size / 2**20:.1f} MB, over the {limit / 2**20:.0f} MB limit"
                                       " (KB_MAX_FILE_MB)")
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UnreadableFile(path, f"cannot read file: {exc.strerror or exc}") from exc
    stem = PurePath(path).stem
    page_starts: tuple[int, ...] = ()
    if kind == "pdf":
        text, title, page_starts = _read_pdf(path, data, stem)
    elif kind == "docx":
        text, title = _read_docx(path, data, stem)
    elif kind == "html":
        text, title = _read_html(path, data, stem)
    else:
        text = normalize_text(_decode_text(path, data))
        heading = re.search(r"^# +(.+)$", text, re.MULTILINE) if kind == "md" else None
        if heading:
            title = heading.group(1).strip()
        else:
            title = _title_from_line(re.sub(r"^#+ *", "", text.lstrip()) if kind == "md" else text, stem)
    if traditional_share(text) >= TRADITIONAL_SHARE:
        # Simplified, so that the index (tokens and vectors) and queries, simplified too, meet; the
        # same length, so page offsets and spans still hold.
        text, title = simplify(text), simplify(title)
    return Document(id=source.doc_id, path=path, title=title, text=text,
                    sha256=sha256 or hashlib.sha256(data).hexdigest(), format=kind, page_starts=page_starts)


# A simplified text has at most about 1 % of characters that t2s changes (measured on the policies and
# laws corpora); a traditional one about 40 %.
TRADITIONAL_SHARE = 0.1


def _read_pdf(path: str, data: bytes, stem: str) -> tuple[str, str, tuple[int, ...]]:
    """Text of each page (joined by a blank line), the title, and where each page starts."""
    from pypdf import PdfReader  # imported here: only PDF ingestion pays for it

    try:
        reader = PdfReader(io.BytesIO(data))
    except Exception as exc:  # pypdf raises many types for broken files
        raise UnreadableFile(path, f"not a valid PDF: {exc}") from exc
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except Exception as exc:  # e.g. AES without the cryptography package
            raise UnreadableFile(path, f"PDF is encrypted ({exc})") from exc
        if not opened:
            raise UnreadableFile(path, "PDF is encrypted")
    try:
        raw_pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:
        raise UnreadableFile(path, f"cannot parse PDF: {exc}") from exc
    raw = "\n".join(raw_pages)
    if not any(c.isalnum() for c in raw):
        raise UnreadableFile(path, "PDF has no text layer (scanned image?); needs OCR")
    if _looks_garbled(raw):
        raise UnreadableFile(path, "PDF text layer is garbled (broken font encoding)")
    pages = [join_broken_lines(_drop_page_numbers(normalize_text(page)).strip("\n")) for page in raw_pages]
    starts, offset = [], 0
    for page in pages:
        starts.append(offset)
        offset += len(page) + 2
    text = "\n\n".join(pages)
    return text, _pdf_title(reader, text, stem), tuple(starts)


_PLACEHOLDER_TITLES = {"标准名称", "无标题", "文档", "untitled", "title", "document", "slide 1"}


def _pdf_title(reader, text: str, stem: str) -> str:
    """Metadata title if meaningful, else the first line, else a Chinese file name, else an early title-like line.

    The first line of a speech or a page fragment ("各位代表:", "志的技术要求。") is no title, and
    the file name of a Chinese PDF usually is one, so a first line that does not look like a title
    defers to a stem with Chinese characters.
    """
    try:
        meta = normalize_text(str(reader.metadata.title or "")) if reader.metadata else ""
    except Exception:  # a damaged info dictionary only costs the title
        meta = ""
    meta = re.sub(r"^Microsoft (Word|PowerPoint) - ", "", meta.strip())
    meta = re.sub(r"\.(pdf|docx?|wps|pptx?)$", "", meta, flags=re.IGNORECASE).strip()
    if meta.lower() not in _PLACEHOLDER_TITLES and _title_like(meta[:TITLE_MAX]):
        return meta[:TITLE_MAX]
    lines = [line.strip() for line in text.split("\n") if line.strip()][:5]
    if lines and _title_like(lines[0]):
        return lines[0]
    if any(_is_cjk(c) for c in stem):
        return stem
    return next((line for line in lines if _title_like(line)), stem)


def max_file_bytes() -> int:
    """Largest file ingest reads: $KB_MAX_FILE_MB megabytes, default 200."""
    try:
        return int(float(os.environ.get("KB_MAX_FILE_MB", "200")) * 2**20)
    except ValueError:
        raise KbError(f"KB_MAX_FILE_MB={os.environ['KB_MAX_FILE_MB']!r} is not a number of megabytes") from None


def _read_docx(path: str, data: bytes, stem: str) -> tuple[str, str]:
    """Paragraphs and table rows in body order, and the title (kb.wordml: memory bounded, zip bombs refused)."""
    from kb.wordml import read_docx

    # only top-level styles: the laws put chapters (第一章 总则) in "Heading 2"
    document = read_docx(data, path, title_styles=("Title", "Heading 1"))
    text = normalize_text(document.text)
    if not text.strip():
        raise UnreadableFile(path, "document has no text")
    title = normalize_text(document.title).strip() or _title_from_line(text, stem)
    return text, title


_BLOCK_TAGS = {"address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
               "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li",
               "main", "nav", "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul"}
_HIDDEN_TAGS = {"script", "style", "noscript", "template"}


class _HtmlText(HTMLParser):
    """Collects visible text with block elements as line breaks, plus <title> and the first <h1>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.h1 = ""
        self._hidden = 0
        self._in = ""  # "title" or "h1" while inside one

    def handle_starttag(self, tag, attrs):
        if tag in _HIDDEN_TAGS:
            self._hidden += 1
        if (tag == "title" and not self.title) or (tag == "h1" and not self.h1):  # the first of each
            self._in = tag
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in _HIDDEN_TAGS and self._hidden:
            self._hidden -= 1
        if tag == self._in:
            self._in = ""
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        if self._in == "title":  # the title is metadata, not body text
            self.title += data
            return
        if self._in == "h1" and not self._hidden:
            self.h1 += data
        if not self._hidden:
            self.parts.append(data)


def _decode_html(data: bytes) -> str:
    """Decode HTML by its BOM or <meta> charset, else UTF-8, else GB18030."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    declared = re.search(rb"<meta[^>]+charset\s*=\s*[\"']?([\w-]+)", data[:4096], re.IGNORECASE)
    candidates = ["utf-8-sig", "gb18030"]
    if declared:
        name = declared.group(1).decode("ascii").lower()
        # pages labelled gb2312/gbk routinely contain GB18030-only characters
        candidates.insert(0, "gb18030" if name in ("gb2312", "gbk", "x-gbk") else name)
    for encoding in candidates:
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("gb18030", errors="replace")


def _read_html(path: str, data: bytes, stem: str) -> tuple[str, str]:
    """Visible text of an HTML page, one block per line, and its title."""
    if not data.strip():
        raise UnreadableFile(path, "empty file")
    parser = _HtmlText()
    try:
        parser.feed(_decode_html(data))
        parser.close()
    except Exception as exc:
        raise UnreadableFile(path, f"cannot parse HTML: {exc}") from exc
    # HTML whitespace is not significant: collapse runs within a line, drop empty lines
    lines = (" ".join(line.split()) for line in normalize_text("".join(parser.parts)).split("\n"))
    text = "\n".join(line for line in lines if line)
    if not text:
        raise UnreadableFile(path, "HTML page has no text")
    title = " ".join(normalize_text(parser.title or parser.h1).split())
    return text, title[:TITLE_MAX] or _title_from_line(text, stem)
