"""Hostile .docx files built in memory, and python-docx's reading of a .docx as kb did it before
kb.wordml, for tests/test_wordml.py and bench/docx_memory.py.

A part of N MB of repeated XML is built in time and memory of one block: the block is deflated once
after a full flush (which resets the compressor, so the block's packed bytes refer to nothing
before them) and those packed bytes are repeated. The archive is written by hand, so that a member
can declare any size, packed size and CRC.
"""
from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import dataclass

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
HEAD = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document xmlns:w="{W}"><w:body>'.encode()
TAIL = b"</w:body></w:document>"
_RELATIONSHIPS = "http://schemas.openxmlformats.org/package/2006/relationships"
_REL_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
_CONTENT = "application/vnd.openxmlformats-officedocument.wordprocessingml."


def relationships(*targets: tuple[str, str]) -> bytes:
    rels = "".join(f'<Relationship Id="rId{n}" Type="{_REL_TYPE}{kind}" Target="{target}"/>'
                   for n, (kind, target) in enumerate(targets, 1))
    return (f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_RELATIONSHIPS}">{rels}'
            "</Relationships>").encode()


def content_types(styles: bool) -> bytes:
    overrides = [("/word/document.xml", "document.main+xml")] + [("/word/styles.xml", "styles+xml")] * styles
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            + "".join(f'<Override PartName="{name}" ContentType="{_CONTENT}{kind}"/>' for name, kind in overrides)
            + "</Types>").encode()


MB = 2**20


def python_docx_read(data: bytes, title_styles=("Title", "Heading 1")) -> tuple[str, str]:
    """Text and title as kb.ingest read them with python-docx 1.2 before kb.wordml (text not yet normalised)."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = docx.Document(io.BytesIO(data))
    lines, title = [], ""
    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(child, document)
            lines.append(paragraph.text)
            style = paragraph.style.name if paragraph.style is not None else ""
            if not title and paragraph.text.strip() and style in title_styles:
                title = paragraph.text
        elif tag == "tbl":
            for row in Table(child, document).rows:
                cells = {cell._tc: cell.text for cell in row.cells}  # a merged cell repeats its <w:tc>
                lines.append(" | ".join(" ".join(text.split()) for text in cells.values()))
    return "\n".join(lines), title


@dataclass(frozen=True)
class Member:
    """An archive member as its headers declare it, with the packed bytes that really follow."""

    name: str
    packed: bytes  # raw deflate data
    size: int  # declared inflated size
    crc: int  # declared CRC-32
    padding: int = 0  # zero bytes after the packed data, counted in the declared packed size


def honest(name: str, data: bytes) -> Member:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return Member(name, packer.compress(data) + packer.flush(), len(data), zlib.crc32(data))


def repeated(name: str, head: bytes, block: bytes, times: int, tail: bytes, level: int = 9,
             declared: int | None = None, padding: int = 0) -> Member:
    """`head + block * times + tail`, declaring its true size and CRC, or only the first `declared` bytes."""
    packer = zlib.compressobj(level, zlib.DEFLATED, -15)
    packed_head = packer.compress(head) + packer.flush(zlib.Z_FULL_FLUSH)
    packed_block = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    packed = packed_head + packed_block * times + packer.compress(tail) + packer.flush()
    size = len(head) + len(block) * times + len(tail)
    if declared is not None:  # the CRC of what a reader stopping at the declared size sees
        prefix = (head + block * (declared // len(block) + 1))[:declared]
        return Member(name, packed, declared, zlib.crc32(prefix), padding)
    crc = zlib.crc32(head)
    for _ in range(times):
        crc = zlib.crc32(block, crc)
    return Member(name, packed, size, zlib.crc32(tail, crc), padding)


def archive(members: list[Member]) -> bytes:
    """A zip archive of deflated members with exactly the headers given."""
    out, directory = bytearray(), bytearray()
    for member in members:
        name = member.name.encode()
        packed_size = len(member.packed) + member.padding
        fields = (20, 0, 8, 0, 0, member.crc, packed_size, member.size, len(name), 0)
        offset = len(out)
        out += struct.pack("<4s5HL2L2H", b"PK\x03\x04", *fields) + name + member.packed + bytes(member.padding)
        directory += struct.pack("<4s6HL2L5H2L", b"PK\x01\x02", 20, *fields, 0, 0, 0, 0, offset) + name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), len(out), 0)
    return bytes(out + directory + end)


def docx(document: Member, styles: bytes | None = None) -> bytes:
    """A package whose main document part is `document` (named word/document.xml), with a styles part if given."""
    members = [honest("[Content_Types].xml", content_types(styles is not None)),
               honest("_rels/.rels", relationships(("officeDocument", "word/document.xml"))), document]
    if styles is not None:
        members += [honest("word/_rels/document.xml.rels", relationships(("styles", "styles.xml"))),
                    honest("word/styles.xml", styles)]
    return archive(members)


def document_xml(body: str) -> bytes:
    return HEAD + body.encode() + TAIL


# ---------------------------------------------------------------- the hostile files

def paragraph_bomb(megabytes: int, level: int = 9) -> bytes:
    """A body of `megabytes` MB of empty paragraphs (<w:p/>, 174,763 per MB), declared honestly."""
    return docx(repeated("word/document.xml", HEAD, b"<w:p/>" * (MB // 6), megabytes, TAIL, level))


def mixed_bomb(megabytes: int) -> bytes:
    """Empty paragraphs with a random revision id in one of 100: packs about 130 times, under the ratio cap."""
    rng = random.Random(12)
    block = b"".join(b"<w:p/>" * 99 + b'<w:p w:rsidR="%08X"/>' % rng.getrandbits(32) for _ in range(1734))
    return docx(repeated("word/document.xml", HEAD, block, megabytes * MB // len(block), TAIL))


def lying_bomb(megabytes: int, body: str = "<w:p><w:r><w:t>第一条 真实的条文。</w:t></w:r></w:p>") -> bytes:
    """A member declaring a small whole document, whose deflate stream goes on for `megabytes` MB.

    The declared size and CRC are those of the small document, so a reader that stops at the
    declared size reads it without complaint; one that inflates first and trims after (zipfile's
    read() with no size) makes the whole `megabytes` first.
    """
    small = document_xml(body)
    return docx(repeated("word/document.xml", small, b"<w:p/>" * (MB // 6), megabytes, b"", declared=len(small)))


def ratio_bomb(megabytes: int) -> bytes:
    """Empty paragraphs packed 1,000 times, declaring a packed size 100 times smaller than the part (padding)."""
    member = repeated("word/document.xml", HEAD, b"<w:p/>" * (MB // 6), megabytes, TAIL)
    return docx(Member(member.name, member.packed, member.size, member.crc,
                       padding=member.size // 100 - len(member.packed)))


def names_bomb(tags: int = 2_000) -> bytes:
    """Empty paragraphs with 1,000 attributes each, all named differently (2 million names by
    default): expat keeps every name it meets until the part ends (kb.wordml took 270 MB more for
    these before it capped the names)."""
    paragraphs = ("<w:p " + " ".join(f'a{tag:04x}{n:03x}=""' for n in range(1_000)) + "/>" for tag in range(tags))
    return docx(honest("word/document.xml", document_xml("".join(paragraphs))))


def shape_bomb() -> bytes:
    """All that expat must hold at once, up to kb.wordml's caps: 450 namespaces of 499 characters
    declared on the root, 250 nested elements whose names (with namespace and prefix) have 495
    characters, and inside them tags of nearly 1 MB whose attributes bring the different names,
    prefixes and namespaces to 4,990 (of 5,000), 490 characters each; 4 MB of XML, read whole."""
    declarations = "".join(f' xmlns:n{n}="urn:{n:04d}{"u" * 491}"' for n in range(450))
    names = [f"w:{'e' * (430 - len(str(n)))}{n}" for n in range(250)]
    attributes = ["<w:p " + " ".join(f'a{tag}{n:04d}{"z" * 484}=""' for n in range(1_917)) + "/>" for tag in range(2)]
    body = ("<w:p>" + "".join(f"<{name}>" for name in names) + "".join(attributes) * 2
            + "".join(f"</{name}>" for name in reversed(names)) + "</w:p>")
    xml = HEAD.replace(b"<w:document ", f"<w:document{declarations} ".encode()) + body.encode() + TAIL
    return docx(honest("word/document.xml", xml))
