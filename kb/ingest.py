"""Files to documents: find supported files under folders, decode them and normalise their text."""
from __future__ import annotations

import codecs
import functools
import hashlib
import io
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path, PurePath
from typing import Callable

from kb.errors import KbError, UnreadableFile
from kb.markup import UNPRINTABLE
from kb.records import Document, Skipped
from kb.settings import max_file_bytes
from kb.tokenize import simplify, traditional_share
from kb.zh import HEADING_NUMERALS, ITEM_NUMERALS, PARAGRAPH_ENDS, basic_ideographs, is_bmp_ideograph, normalize_text

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

    Only the last component of the name is kept (no ../, no absolute path), without control, NUL or
    bidirectional-override characters, lone surrogates and leading dots. A name longer than the file system allows (in UTF-8
    bytes) is cut between characters and ends with a hash of the whole name and its extension, so two
    long names that begin alike stay two files, and the same name uploaded again replaces its file.
    The file is written beside its final name and renamed into place, so an ingest that runs
    meanwhile sees the old file or the new one, never half of one.
    """
    from kb.errors import BadUpload
    from kb.store import write_atomic

    base = re.sub(r"[\t\n]", "", UNPRINTABLE.sub("", str(name))).replace("\\", "/").rsplit("/", 1)[-1]
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
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(base.encode("utf-8")) > name_max:
        tail = f"-{hashlib.sha256(base.encode('utf-8')).hexdigest()[:10]}{PurePath(base).suffix}"
        stem = base[:-len(PurePath(base).suffix)].encode("utf-8")
        base = stem[:name_max - len(tail.encode("utf-8"))].decode("utf-8", "ignore").rstrip() + tail
    target = folder / base
    if target.resolve().parent != folder.resolve():
        raise BadUpload(f"{name!r}: would be stored outside {folder}")
    write_atomic(target, data)
    return target


# ---------------------------------------------------------------- discovery

def shown(path: str) -> str:
    """A path as kb stores and prints it: the undecodable bytes of a file name that is not UTF-8 (a
    GBK name from a Windows zip) as \\xNN, so that it is valid text that still names the file
    exactly; every other path is itself."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")


def readable_name(name: str) -> str:
    """One file or folder name for people and ids: a name that is not UTF-8 is read as GB18030 (what
    Windows writes into zips here) when it is that, else shown as `shown` does."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        raw = os.fsencode(name)
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError:
        return shown(name)


def discover(paths, follow_links: bool = False) -> tuple[list[SourceFile], list[Skipped]]:
    """Supported files under `paths` (files or folders, recursively), sorted by id, and what is skipped.

    Symbolic links are followed only to places inside the given paths, unless `follow_links`. A
    folder or file that exists but cannot be listed or read is skipped with its id, so that ingest
    keeps what was indexed from it. Two given paths whose files would get the same id are refused.
    """
    found: dict[str, SourceFile] = {}  # resolved path -> source; one entry per real file
    skipped: list[Skipped] = []
    walk = _Walk(found, skipped, follow_links, [])
    for given in paths:
        given = os.fspath(given)
        if not os.path.lexists(given):
            raise KbError(f"{shown(given)}: no such file or folder")
        walk.roots.append(os.path.realpath(given))
    for given in paths:
        root = os.path.abspath(os.fspath(given))
        name = readable_name(os.path.basename(root))
        if not os.path.exists(root):
            walk.skip(root, "broken symbolic link", name)
        elif os.path.isdir(root):
            walk.folder(root, root, name)
        else:
            walk.file(root, name, root)
    sources = sorted(found.values(), key=lambda s: s.doc_id)
    _refuse_clashing_ids(sources)
    return sources, sorted(skipped, key=lambda s: s.path)


@dataclass
class _Walk:
    found: dict[str, SourceFile]
    skipped: list[Skipped]
    follow_links: bool
    roots: list[str]  # resolved given paths: links may point anywhere inside them
    seen_dirs: set[str] = field(default_factory=set)

    def skip(self, path: str, reason: str, doc_id: str = "") -> None:
        self.skipped.append(Skipped(shown(path), reason, doc_id))

    def folder(self, folder: str, root: str, prefix: str) -> None:
        """Add the files below `folder`; each resolved folder is entered once, so symlink loops end."""
        real = os.path.realpath(folder)
        if real in self.seen_dirs:
            return
        self.seen_dirs.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            self.skip(folder, f"cannot list folder: {exc.strerror or exc}", prefix)
            return
        for entry in entries:
            name = readable_name(entry.name)
            if name != entry.name and os.path.lexists(os.path.join(folder, name)):
                name = shown(entry.name)  # its GB18030 reading is a file there too: keep the ids apart
            doc_id = f"{prefix}/{name}" if prefix else name
            if entry.name.startswith("."):
                self.skip(entry.path, "hidden (the name starts with a dot)")
            elif problem := _unreachable(entry):
                self.skip(entry.path, problem, doc_id)
            elif entry.is_symlink() and not self.follow_links and not self._inside(entry.path):
                self.skip(entry.path, f"symbolic link to {shown(os.path.realpath(entry.path))}, outside the"
                                      " given paths: not followed (use --follow-links)", doc_id)
            elif entry.is_dir():
                self.folder(entry.path, root, doc_id)
            else:
                self.file(entry.path, doc_id, root)

    def file(self, path: str, doc_id: str, root: str) -> None:
        """Record one file, or why it is skipped; a file reached twice keeps the id of the first route."""
        suffix = PurePath(path).suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            self.skip(path, f"unsupported file type {shown(suffix) or '(no suffix)'}")
        elif not os.path.isfile(path):  # a FIFO or device would block or never end when read
            self.skip(path, "not a regular file", doc_id)
        else:
            self.found.setdefault(os.path.realpath(path), SourceFile(path=path, doc_id=doc_id, root=root))

    def _inside(self, path: str) -> bool:
        target = os.path.realpath(path)
        return any(is_under(target, root) for root in self.roots)


def _unreachable(entry: os.DirEntry) -> str:
    """Why a listed entry cannot be reached (a broken link, a folder without search permission), or ""."""
    try:
        os.stat(entry.path)
        return ""
    except FileNotFoundError:
        return "broken symbolic link" if entry.is_symlink() else "vanished while listing its folder"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"


def is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _refuse_clashing_ids(sources: list[SourceFile]) -> None:
    """Two files with one id would silently replace each other (two folders named docs given at once)."""
    for first, second in zip(sources, sources[1:]):
        if first.doc_id == second.doc_id:
            raise KbError(f"{shown(first.path)} and {shown(second.path)} would both be indexed as"
                          f" {first.doc_id}: ingest folders with different names, or their common parent")


# ---------------------------------------------------------------- text helpers

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
    text = _non_empty(path, max(readings, key=_common_share))
    _check_guessed_reading(path, text)
    return text


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


_CLOSERS = "”’」』》)）]】"
_MID_PUNCT = ",，、“‘《（(—"
_OPENERS = "“‘《「『【"
_CONTINUATION_START = ",，、。;；:：!?！？)）”’》"
# lines that start a chapter, article or numbered item (第X章, 第X条, 一、, (一), 目录) begin a new line
_HEADING = re.compile(
    f"\\s*(第[{HEADING_NUMERALS}\\d]+[编章节条部]"
    f"|[{ITEM_NUMERALS}]+、|[(（][{ITEM_NUMERALS}\\d]+[)）]|目\\s*录|附\\s*[件则录])")
_PAGE_NUMBER = re.compile(r"\s*(?:[-—–]\s*\d{1,4}\s*[-—–]|\d{1,4}|第\s*\d{1,4}\s*页(?:\s*[,，]?\s*共\s*\d{1,4}\s*页)?"
                          r"|\d{1,4}\s*/\s*\d{1,4})\s*")


def _width(line: str) -> int:
    """Display width: CJK and full-width characters count 2, others 1."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def _continues(line: str, following: str, full_width: float) -> bool:
    """True when a PDF broke a sentence between `line` and `following` (so they belong together)."""
    if not line or not following or _HEADING.match(following):
        return False
    core = line.rstrip(_CLOSERS)
    if not core or core[-1] in PARAGRAPH_ENDS:
        return False
    if not (is_bmp_ideograph(line[-1]) or line[-1] in _MID_PUNCT or line[-1] in _CLOSERS):
        return False
    if following[0] in _CONTINUATION_START:  # no line starts with a comma: always the rest of a sentence
        return True
    # a wrapped line fills the column; a shorter one is a heading or the end of a paragraph
    return _width(line) >= 0.75 * full_width and (is_bmp_ideograph(following[0]) or following[0] in _OPENERS)


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
    """True when a PDF's text layer is mostly noise: a broken ToUnicode map yields controls, U+FFFD or
    Latin-1 mojibake, and too few letters (a layer of only digits and symbols is a broken one too)."""
    return _garbled(text, lambda c: is_bmp_ideograph(c) or (c.isascii() and c.isalpha()))


def _garbled(text: str, readable: Callable[[str], bool]) -> bool:
    """True when the sampled non-space characters of `text` are noise or seldom `readable`; False when
    the sample holds none (a long text whose sampled windows are blank)."""
    chars = [c for c in _sample(text) if not c.isspace()]
    if not chars:
        return False
    return _noise_share(chars) > 0.08 or sum(1 for c in chars if readable(c)) / len(chars) < 0.15


def _noise_share(chars: list[str]) -> float:
    """Share of characters that no real text is made of: U+FFFD, controls, private use, unassigned,
    and Latin-1 letters as GBK bytes read as Latin-1 show them ("Í¼ »ùÒò")."""
    bad = sum(1 for c in chars if c == "\ufffd" or unicodedata.category(c) in ("Cc", "Co", "Cs", "Cn"))
    mojibake = sum(1 for c in chars if "\u00a1" <= c <= "\u00ff" and c not in "·×÷°±§©®µ")
    return (bad + mojibake) / len(chars)


def _title_like(line: str) -> bool:
    """A line that can serve as a title: short, has words, and does not end like a sentence or a salutation."""
    line = line.strip()
    return (2 <= len(line) <= TITLE_MAX and line[-1] not in PARAGRAPH_ENDS + ",、"
            and any(is_bmp_ideograph(c) or c.isalpha() for c in line))


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
    path = shown(source.path)
    kind = FORMATS.get(PurePath(path).suffix.lower())
    if kind is None:
        raise UnreadableFile(path, f"unsupported file type {PurePath(path).suffix.lower() or '(no suffix)'}")
    data = read_file(source.path)
    stem = readable_name(PurePath(source.path).stem)
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
    _check_text(path, text)
    # A title is one line wherever it is shown (a citation, a CSV cell, a heading); a .docx title
    # paragraph may hold line breaks.
    title = re.sub(r"\s*\n\s*", " ", title).strip() or stem
    if traditional_share(_sample(text)) >= TRADITIONAL_SHARE:
        # Simplified, so that the index (tokens and vectors) and queries, simplified too, meet; the
        # same length, so page offsets and spans still hold.
        text, title = simplify(text), simplify(title)
    return Document(id=source.doc_id, path=path, title=title, text=text,
                    sha256=sha256 or hashlib.sha256(data).hexdigest(), format=kind, page_starts=page_starts)


def read_file(path: str) -> bytes:
    """The bytes of a regular file within the size limit; UnreadableFile otherwise."""
    limit = max_file_bytes()
    with _open_regular(path, limit) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise UnreadableFile(shown(path), f"cannot read file: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise _too_large(path, limit)
    return data


def file_digest(path: str) -> str:
    """sha256 of a regular file within the size limit, read in blocks; UnreadableFile otherwise.

    The size is checked before any byte is read: a 20 GB file costs a stat, not a minute of hashing.
    What is read is counted too, since a size can lie (0 for /proc files, a file still growing).
    """
    limit = max_file_bytes()
    digest = hashlib.sha256()
    read = 0
    with _open_regular(path, limit) as handle:
        try:
            for block in iter(lambda: handle.read(1 << 20), b""):
                read += len(block)
                if read > limit:
                    raise _too_large(path, limit)
                digest.update(block)
        except OSError as exc:
            raise UnreadableFile(shown(path), f"cannot read file: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _open_regular(path: str, limit: int) -> io.BufferedReader:
    """Open a file for reading if it is a regular file within the size limit.

    O_NONBLOCK: a FIFO put where a file was found must not hang the ingest; fstat on the open
    descriptor then decides, so the file checked is the file read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise UnreadableFile(shown(path), f"cannot read file: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(shown(path), "not a regular file")
        if info.st_size > limit:
            raise _too_large(path, limit, info.st_size)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _too_large(path: str, limit: int, size: int | None = None) -> UnreadableFile:
    """The size refusal; `size` when the file system says it (a read that ran past the limit does not)."""
    known = f"{size / 2**20:.1f} MB, " if size is not None else ""
    return UnreadableFile(shown(path), f"file is {known}over the {round(limit / 2**20, 3):g} MB limit (KB_MAX_FILE_MB)")


def _check_text(path: str, text: str) -> None:
    """The same "is this text?" test for every format: words there (letters or digits of any script),
    and not binary data decoded as text."""
    if not _ALPHANUMERIC.search(text):
        raise UnreadableFile(path, "no text: only spaces, punctuation or control characters")
    if _garbled(text, str.isalnum):
        raise UnreadableFile(path, NOT_TEXT)


_ALPHANUMERIC = re.compile(r"[^\W_]")


def _sample(text: str, size: int = 200_000) -> str:
    """`text`, or for a longer one 20 windows spread over it: what the text checks look at, so that
    their cost does not grow with a 200 MB file (a list of its characters alone took gigabytes)."""
    if len(text) <= size:
        return text
    step, width = len(text) // 20, size // 20
    return "".join(text[start:start + width] for start in range(0, step * 20, step))


NOT_TEXT = "not readable text (binary data, or a wrong text encoding?)"


def _check_guessed_reading(path: str, text: str) -> None:
    """A reading of bytes that are not UTF-8, guessed as GB18030 or Big5, must be Chinese text.

    GB18030 reads almost any bytes and Big5 many, so random bytes "decode". Real text, name lists
    included, has nine in ten of its ideographs among the 3,755 frequent ones (GB2312 level 1); random
    bytes read as GB18030 or Big5 about one in three (docs/reliability.md).
    """
    ideographs = basic_ideographs(simplify(_sample(text)))
    if len(ideographs) >= 50 and sum(map(_frequent, ideographs)) / len(ideographs) < 0.6:
        raise UnreadableFile(path, NOT_TEXT)


@functools.lru_cache(maxsize=None)
def _frequent(char: str) -> bool:
    """True for a character of GB2312's level 1 (rows 16-55: the 3,755 most used hanzi)."""
    try:
        return 0xB0 <= char.encode("gb2312")[0] <= 0xD7
    except UnicodeEncodeError:
        return False


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
    if any(is_bmp_ideograph(c) for c in stem):
        return stem
    return next((line for line in lines if _title_like(line)), stem)


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


def _decode_html(path: str, data: bytes) -> str:
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
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        if encoding == "gb18030":
            _check_guessed_reading(path, text)
        return text
    return data.decode("gb18030", errors="replace")


def _read_html(path: str, data: bytes, stem: str) -> tuple[str, str]:
    """Visible text of an HTML page, one block per line, and its title."""
    if not data.strip():
        raise UnreadableFile(path, "empty file")
    parser = _HtmlText()
    page = _decode_html(path, data)
    try:
        parser.feed(page)
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
