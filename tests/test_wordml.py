"""kb.wordml: the same text and title as python-docx, and hostile .docx files refused within bounded memory."""
import io
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import docx
import pytest
from docx.enum.text import WD_BREAK
from docx.oxml import parse_xml

from kb.errors import UnreadableFile
from kb.wordml import Limits, read_docx
from tests import docx_bombs
from tests.docx_bombs import W, document_xml, honest
from tests.docx_bombs import docx as package
from tests.docx_bombs import python_docx_read as reference

ROOT = Path(__file__).resolve().parent.parent
TITLES = ("Title", "Heading 1")  # what kb.ingest asks for


def read(data: bytes, title_styles=TITLES, **limits) -> tuple[str, str]:
    document = read_docx(data, "test.docx", title_styles, Limits(**limits))
    return document.text, document.title


def reason(data: bytes, **limits) -> str:
    with pytest.raises(UnreadableFile) as info:
        read_docx(data, "test.docx", TITLES, Limits(**limits))
    assert info.value.path == "test.docx"
    return info.value.reason


def saved(document) -> bytes:
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


# ---------------------------------------------------------------- same output as python-docx

def test_every_real_docx_reads_as_python_docx_read_it(shared):
    files = sorted(shared.rglob("*.docx"))
    assert len(files) >= 6
    for path in files:
        data = path.read_bytes()
        assert read(data) == reference(data), path.name
        assert read(data, ("Normal", "Heading 2")) == reference(data, ("Normal", "Heading 2")), path.name


def test_python_docx_documents_with_styles_breaks_tabs_and_merged_cells():
    document = docx.Document()
    document.add_paragraph("")
    document.add_paragraph("前言", style="Heading 2")
    document.add_heading("劳动合同管理办法", level=1)
    document.add_paragraph("标题样式", style="Title")
    run = document.add_paragraph("第一条\t制定本办法。").add_run("换行")
    run.add_break()
    run.add_text("分页")
    run.add_break(WD_BREAK.PAGE)
    run.add_break(WD_BREAK.COLUMN)
    run.add_tab()
    run.add_text("多行\n文本")
    document.add_paragraph()
    table = document.add_table(rows=4, cols=4)
    for r, row in enumerate(table.rows):
        for c, cell in enumerate(row.cells):
            cell.text = f"格 {r}{c}" if (r, c) != (0, 3) else " 含\u3000 空白  "
    table.cell(0, 0).merge(table.cell(0, 2))  # horizontal: gridSpan
    table.cell(1, 0).merge(table.cell(3, 0))  # vertical: vMerge restart / continue
    table.cell(1, 1).merge(table.cell(2, 2))  # both
    table.cell(3, 3).add_paragraph("第二段")
    table.cell(3, 3).add_table(rows=1, cols=2).cell(0, 1).text = "嵌套表格"
    document.add_paragraph("第二条 本办法自公布之日起施行。")
    data = saved(document)
    text, title = read(data)
    assert (text, title) == reference(data)
    assert title == "劳动合同管理办法"
    assert "第一条\t制定本办法。换行\n分页\t多行\n文本\n\n" in text  # page and column breaks are no text
    # merging moves the cells' text into the first; a vertically merged cell repeats in each of its rows
    assert text.split("\n")[8:12] == ["格 00 格 01 格 02 | 含 空白",
                                      "格 10 格 20 格 30 | 格 11 格 12 格 21 格 22 | 格 13",
                                      "格 10 格 20 格 30 | 格 11 格 12 格 21 格 22 | 格 23",
                                      "格 10 格 20 格 30 | 格 31 | 格 32 | 格 33 第二段"]
    assert "嵌套表格" not in text  # python-docx's cell.text has only the cell's own paragraphs
    for titles in (("Title",), ("Heading 2",), ("Normal",), ()):
        assert read(data, titles) == reference(data, titles)


@pytest.mark.parametrize("count", [1023, 1024, 1025, 2048, 3000])
def test_thousands_of_paragraphs_pieces_and_cell_paragraphs(count):
    """kb.wordml joins text 1,024 pieces at a time; around those counts the text stays python-docx's."""
    many = "".join(f"<w:p><w:r><w:t>{n}</w:t>{'<w:tab/>' * (n % 3)}</w:r></w:p>" for n in range(count))
    run = "<w:p><w:r>" + "<w:t>字</w:t><w:tab/>" * count + "</w:r></w:p>"
    cell = "<w:tbl><w:tr><w:tc>" + "<w:p><w:r><w:t>格</w:t></w:r></w:p>" * count + "</w:tc></w:tr></w:tbl>"
    for body in (many, run, cell, "<w:p/>" * count):
        data = package(honest("word/document.xml", document_xml(body)))
        assert read(data) == reference(data)


HYPERLINK_AND_RUN_CONTENT = (
    f'<w:p xmlns:w="{W}" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    "<w:r><w:t>见</w:t></w:r>"
    '<w:hyperlink r:id="rId99"><w:r><w:t>《劳动法》</w:t></w:r><w:r><w:ptab w:relativeTo="margin"'
    ' w:alignment="right" w:leader="none"/><w:t>链接</w:t></w:r></w:hyperlink>'
    "<w:r><w:noBreakHyphen/><w:cr/><w:softHyphen/><w:sym w:char=\"F0E0\"/><w:delText>删</w:delText>"
    '<w:t xml:space="preserve">  留空  </w:t><w:t>注<!--释-->后</w:t><w:br w:type="textWrapping"/></w:r>'
    '<w:ins w:id="1" w:author="a"><w:r><w:t>修订插入</w:t></w:r></w:ins>'
    "<w:smartTag><w:r><w:t>智能标记</w:t></w:r></w:smartTag>"
    "</w:p>")


def test_hyperlinks_and_every_kind_of_run_content():
    document = docx.Document()
    document.element.body.insert(0, parse_xml(HYPERLINK_AND_RUN_CONTENT))
    data = saved(document)
    text, _ = read(data)
    assert (text, _) == reference(data)
    assert text == "见《劳动法》\t链接-\n  留空  注\n"


def test_chinese_word_style_ids_and_style_resolution():
    styles = (f'<w:styles xmlns:w="{W}">'
              '<w:style w:type="paragraph" w:default="1" w:styleId="a"><w:name w:val="Normal"/></w:style>'
              '<w:style w:type="paragraph" w:styleId="1"><w:name w:val="heading 1"/></w:style>'
              '<w:style w:type="paragraph" w:styleId="2"><w:name w:val="heading 2"/></w:style>'
              '<w:style w:type="character" w:styleId="c"><w:name w:val="Title"/></w:style>'
              '<w:style w:type="paragraph" w:styleId="d"><w:name w:val="Body"/></w:style>'
              '<w:style w:type="paragraph" w:styleId="d"><w:name w:val="Title"/></w:style>'
              '<w:style w:styleId="n"><w:name w:val="Title"/></w:style>'
              "</w:styles>").encode()

    def body(*paragraphs: tuple[str | None, str]) -> bytes:
        xml = "".join((f'<w:p><w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else "<w:p>")
                      + f"<w:r><w:t>{text}</w:t></w:r></w:p>" for style, text in paragraphs)
        return package(honest("word/document.xml", document_xml(xml)), styles)

    cases = [body(("2", "第一章"), ("1", "中华人民共和国劳动法"), ("1", "第二个")),
             body(("c", "字符样式"), ("d", "重复的样式"), ("n", "无类型"), ("x", "没有的样式"), (None, "正文")),
             body(("1", " "), ("1", "标题在空段之后"))]
    for data in cases:
        for titles in (TITLES, ("Normal",), ("Body",)):
            assert read(data, titles) == reference(data, titles)
    assert read(cases[0])[1] == "中华人民共和国劳动法"
    no_styles = package(honest("word/document.xml", document_xml('<w:p><w:pPr><w:pStyle w:val="Title"/></w:pPr>'
                                                                 "<w:r><w:t>正文</w:t></w:r></w:p>")))
    assert read(no_styles, ("Normal",)) == reference(no_styles, ("Normal",)) == ("正文", "正文")


def test_parts_in_any_encoding_libxml2_read():
    long = "第一条 为了规范劳动合同" * 2000  # 48 KB in GBK: characters straddle the 16 KiB pieces
    for encoding, text in [("UTF-16", "劳动法 é"), ("GBK", "劳动法"), ("GB18030", "劳动法 é"), ("Big5", "勞動法"),
                           ("windows-1252", "Arbeitsrecht é"), ("GBK", long), ("GB18030", "x" + long)]:
        xml = (f'<?xml version="1.0" encoding="{encoding}"?>'
               + document_xml(f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>").decode().split("?>", 1)[1])
        data = package(honest("word/document.xml", xml.encode(encoding)))
        assert read(data) == reference(data) == (text, ""), (encoding, text[:10])
    bogus = package(honest("word/document.xml", b'<?xml version="1.0" encoding="bogus"?><w:document/>'))
    assert reason(bogus) == "not a valid .docx: word/document.xml: unknown encoding: bogus"


# random documents: the WordprocessingML kb meets and much it never should, in any nesting
_STYLES = (f'<w:styles xmlns:w="{W}">'
           '<w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/></w:style>'
           '<w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/></w:style>'
           '<w:style w:type="paragraph" w:styleId="1"><w:name w:val="heading 1"/></w:style>'
           '<w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/></w:style>'
           '<w:style w:type="character" w:styleId="Emphasis"><w:name w:val="Title"/></w:style>'
           "</w:styles>").encode()
_TEXTS = ["第一条", "劳动者 依法", " ", "", "a&amp;b &lt;c&gt;", "工资\u3000支付", "x\ty", "多\n行", "&#13;回车"]


def _random_run(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 4)):
        parts.append(rng.choice([
            f"<w:t>{rng.choice(_TEXTS)}</w:t>", f'<w:t xml:space="preserve">{rng.choice(_TEXTS)}</w:t>',
            "<w:tab/>", "<w:ptab/>", "<w:cr/>", "<w:noBreakHyphen/>", "<w:br/>", '<w:br w:type="page"/>',
            '<w:br w:type="textWrapping"/>', "<w:rPr><w:b/></w:rPr>", "<w:delText>删</w:delText>",
            "<w:t>前<w:x/>后</w:t>", "<w:t>前<?pi x?>后</w:t>", "<w:t><![CDATA[<条>]]></w:t>",
            # blank text before a child node: libxml2 drops it unless xml:space="preserve" is in effect
            "<w:t> <w:x/>后</w:t>", "<w:t>\n <!--c--></w:t>", "<w:t> <![CDATA[<条>]]> <w:x/></w:t>",
            '<w:t xml:space="default"> <w:x/></w:t>', '<w:t xml:space="preserve">\t<w:x/></w:t>']))
    return f"<w:r{_random_space(rng)}>" + "".join(parts) + "</w:r>"


def _random_space(rng: random.Random) -> str:
    return rng.choice(["", "", "", ' xml:space="preserve"', ' xml:space="default"'])


def _random_paragraph(rng: random.Random) -> str:
    parts = []
    if rng.random() < 0.6:
        style = rng.choice(["Title", "1", "Heading2", "Normal", "Emphasis", "Missing", ""])
        parts.append(f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else '<w:pPr><w:jc w:val="left"/></w:pPr>')
    for _ in range(rng.randint(0, 4)):
        kind = rng.random()
        if kind < 0.6:
            parts.append(_random_run(rng))
        elif kind < 0.75:
            parts.append(f"<w:hyperlink{_random_space(rng)}>" + _random_run(rng) + "<w:proofErr/>" + _random_run(rng)
                         + "</w:hyperlink>")
        elif kind < 0.85:
            parts.append("<w:ins>" + _random_run(rng) + "</w:ins>")
        else:
            parts.append('<w:pPr><w:pStyle w:val="Title"/></w:pPr><w:bookmarkStart w:id="0"/>')
    return f"<w:p{_random_space(rng)}>" + "".join(parts) + "</w:p>"


def _random_table(rng: random.Random, depth: int) -> str:
    rows = []
    for r in range(rng.randint(0, 4)):
        cells = []
        if rng.random() < 0.2:
            cells.append(f'<w:trPr><w:gridBefore w:val="{rng.randint(0, 1)}"/></w:trPr>')
        for _ in range(rng.randint(0, 4)):
            properties = []
            if rng.random() < 0.3:
                properties.append(f'<w:gridSpan w:val="{rng.choice([1, 2, 2, 3, 0, -1])}"/>')
            if r and rng.random() < 0.3:
                properties.append(rng.choice(["<w:vMerge/>", '<w:vMerge w:val="continue"/>']))
            elif rng.random() < 0.2:
                properties.append('<w:vMerge w:val="restart"/>')
            content = [_random_block(rng, depth + 1, in_cell=True) for _ in range(rng.randint(0, 3))]
            cells.append("<w:tc>" + (f"<w:tcPr>{''.join(properties)}</w:tcPr>" if properties else "")
                         + "".join(content) + "</w:tc>")
        rows.append("<w:tr>" + "".join(cells) + "</w:tr>")
    return "<w:tbl><w:tblPr/>" + "".join(rows) + "</w:tbl>"


def _random_block(rng: random.Random, depth: int = 0, in_cell: bool = False) -> str:
    kind = rng.random()
    if kind < 0.65 or depth > 2:
        return _random_paragraph(rng)
    if kind < 0.85:
        return _random_table(rng, depth)
    return rng.choice(["<w:sdt><w:sdtContent>" + _random_paragraph(rng) + "</w:sdtContent></w:sdt>",
                       '<w:bookmarkEnd w:id="0"/>', "<w:sectPr/>"])


def test_random_documents_read_as_python_docx_reads_them():
    compared = 0
    for seed in range(400):
        rng = random.Random(seed)
        body = "".join(_random_block(rng) for _ in range(rng.randint(0, 8)))
        data = package(honest("word/document.xml", document_xml(body)), _STYLES if seed % 5 else None)
        try:
            expected = reference(data)
        except ValueError:  # a vertical merge with no cell above: python-docx lost the whole document
            assert read(data)  # kb.wordml reads it, the cell standing alone
            continue
        assert read(data) == expected, (seed, body)
        compared += 1
    assert compared > 300


# ---------------------------------------------------------------- hostile files

def test_a_bomb_of_tiny_paragraphs_is_refused_before_it_is_inflated():
    bomb = docx_bombs.paragraph_bomb(300)  # 52 million <w:p/>: 0.5 MB packed, 300 MB of XML
    assert len(bomb) < 2**20
    assert reason(bomb) == "not a plausible .docx: word/document.xml inflates past 256 MB (a zip bomb?)"
    smaller = docx_bombs.paragraph_bomb(40, level=1)  # under the size cap, packed only ~230 times
    assert reason(smaller) == ("not a plausible .docx: word/document.xml inflates to more than 200 times"
                               " its packed size (a zip bomb?)")


def test_a_member_that_lies_about_its_size_is_read_only_to_its_declared_size():
    lying = docx_bombs.lying_bomb(2000)  # declares a 0.5 KB document, its deflate stream makes 2 GB
    declared = zipfile.ZipFile(io.BytesIO(lying)).getinfo("word/document.xml").file_size
    document = read_docx(lying, "lying.docx", TITLES)
    assert document.text == "第一条 真实的条文。"
    assert document.inflated == declared + len(docx_bombs.relationships(("officeDocument", "word/document.xml")))


def test_a_ratio_bomb_with_a_plausible_packed_size_is_refused_while_it_inflates():
    bomb = docx_bombs.ratio_bomb(200)  # declares 2 MB packed (1:100), really 0.2 MB (1:1000)
    info = zipfile.ZipFile(io.BytesIO(bomb)).getinfo("word/document.xml")
    assert info.file_size < 101 * info.compress_size
    assert reason(bomb) == ("not a plausible .docx: word/document.xml inflates to more than"
                                              " 200 times its packed size (a zip bomb?)")


def test_too_many_tags_is_refused():
    bomb = docx_bombs.mixed_bomb(8)  # packs 70 times: under the ratio cap; 1.4 million tags
    assert reason(bomb, tags=200_000) == ("not a plausible .docx: word/document.xml has more than 200,000"
                                            " tags (a zip bomb?)")


CHILD = """
import io, resource, sys, zipfile
limit = int(sys.argv[3]) * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
data = open(sys.argv[1], "rb").read()
try:
    if sys.argv[2] == "zipfile":
        zipfile.ZipFile(io.BytesIO(data)).read("word/document.xml")
    else:
        from kb.errors import UnreadableFile
        from kb.wordml import read_docx
        try:
            read_docx(data, sys.argv[1], ("Title",))
        except UnreadableFile as exc:
            print(exc.reason)
    print("done")
except MemoryError:
    print("MemoryError")
"""


def _in_small_memory(path: Path, how: str, megabytes: int = 200) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), how, str(megabytes)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_hostile_files_are_refused_in_200_mb_where_zipfile_read_runs_out(tmp_path):
    """No timing: the address space is capped at 200 MB, a tenth of what one lying member makes."""
    lying = tmp_path / "lying.docx"
    lying.write_bytes(docx_bombs.lying_bomb(2000))
    assert _in_small_memory(lying, "zipfile") == "MemoryError"  # read() inflates 2 GB before trimming
    assert _in_small_memory(lying, "wordml") == "done"
    for name, data in [("paragraphs", docx_bombs.paragraph_bomb(300)), ("ratio", docx_bombs.ratio_bomb(200))]:
        bomb = tmp_path / f"{name}.docx"
        bomb.write_bytes(data)
        assert "(a zip bomb?)\ndone" in _in_small_memory(bomb, "wordml"), name
    names = tmp_path / "names.docx"
    names.write_bytes(docx_bombs.names_bomb())
    assert "more than 5,000 different element and attribute names\ndone" in _in_small_memory(names, "wordml")
    shape = tmp_path / "shape.docx"
    shape.write_bytes(docx_bombs.shape_bomb())  # all of expat's state at its caps, read whole
    assert _in_small_memory(shape, "wordml", megabytes=100) == "done"


def test_text_repeated_by_merged_cells_is_capped():
    """python-docx repeats a vertically merged cell's text on each of its rows: 60 bytes of XML per row
    can repeat a cell of any length, so the text, not the XML, is what is capped."""
    rows = ["<w:tr><w:tc><w:tcPr><w:vMerge w:val=\"restart\"/></w:tcPr><w:p><w:r><w:t>" + "条" * 10_000
            + "</w:t></w:r></w:p></w:tc></w:tr>"] + ["<w:tr><w:tc><w:tcPr><w:vMerge/></w:tcPr><w:p/></w:tc></w:tr>"] * 200
    data = package(honest("word/document.xml", document_xml("<w:tbl>" + "".join(rows) + "</w:tbl>")))
    assert read(data) == reference(data)
    assert len(read(data)[0]) == 201 * 10_000 + 200
    assert reason(data, text=1_000_000) == "not a plausible .docx: the text passes 1,000,000 characters (a zip bomb?)"
    long = package(honest("word/document.xml", document_xml("<w:p><w:r><w:t>" + "字" * 100_000 + "</w:t></w:r></w:p>")))
    assert "the text passes 99,999 characters" in reason(long, text=99_999)


def test_long_blank_text_is_kept_or_dropped_as_libxml2_does():
    def body(xml: str) -> bytes:
        return package(honest("word/document.xml", document_xml(f"<w:p><w:r>{xml}<w:t>留</w:t></w:r></w:p>")))

    for data in (body("<w:t>" + " \n" * 100_000 + "</w:t>"), body("<w:t>" + " " * 300 + "<w:x/>后</w:t>")):
        assert read(data) == reference(data)
    # libxml2 keeps blank text that crosses one of its 4,000-byte input windows, so always a long
    # one; kb.wordml drops it whatever its length (docs/reliability.md)
    long = body("<w:t>" + " " * 5000 + "<w:x/>后</w:t>")
    assert read(long) == ("留", "") and reference(long) == (" " * 5000 + "留", "")


def test_entities_doctype_and_nesting_are_refused():
    laughs = ('<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY a "哈哈哈哈哈哈哈哈哈哈">'
              + "".join(f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">' for n in range(9))
              + f']><w:document xmlns:w="{W}"><w:body><w:p><w:r><w:t>&j;</w:t></w:r></w:p></w:body></w:document>')
    doctype = "not a valid .docx: a part declares a DOCTYPE"
    assert reason(package(honest("word/document.xml", laughs.encode()))) == doctype
    external = (f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                f'<w:document xmlns:w="{W}"><w:body><w:p><w:r><w:t>&x;</w:t></w:r></w:p></w:body></w:document>')
    assert reason(package(honest("word/document.xml", external.encode()))) == doctype
    deep = package(honest("word/document.xml", document_xml("<w:p>" * 255 + "</w:p>" * 255)))
    assert reason(deep) == "not a valid .docx: elements nest deeper than 256 levels"
    with pytest.raises(Exception, match="depth"):
        reference(deep)  # python-docx's parser (libxml2) refused it too
    fine = package(honest("word/document.xml", document_xml("<w:p>" * 254 + "</w:p>" * 254)))
    assert read(fine) == reference(fine)


def test_long_tags_names_and_namespaces_are_refused():
    def refused(body: str, **limits) -> str:
        return reason(package(honest("word/document.xml", document_xml(body))), **limits)

    assert refused(f'<w:p w:rsidR="{"0" * 2**21}"/>') == ("not a valid .docx: word/document.xml has a tag longer"
                                                          " than 1 MB")
    assert refused(f'<w:{"p" * 500}/>') == "not a valid .docx: a name is longer than 500 characters"
    assert refused(f'<w:p {"a" * 501}="1"/>') == "not a valid .docx: a name is longer than 500 characters"
    many = "".join(f'<w:p a{n}="" b{n}=""/>' for n in range(2_500))
    assert refused(many) == "not a valid .docx: more than 5,000 different element and attribute names"
    prefixes = "".join(f'<x{n}:p xmlns:x{n}="{W}"/>' for n in range(2_000))  # one name, 2,000 prefixes
    assert refused(prefixes, names=1_000) == ("not a valid .docx: more than 1,000 different element and"
                                              " attribute names")
    assert refused(f'<w:p xmlns:x="urn:{"x" * 500}"/>') == ("not a valid .docx: a namespace is longer than 500"
                                                            " characters")
    declarations = "".join(f'<w:p xmlns:n{n}="urn:n">' for n in range(60)) + "</w:p>" * 60
    assert "namespace declarations" in refused(declarations, namespaces=50)
    row = "<w:tbl><w:tr>" + "<w:tc><w:p/></w:tc>" * 1001 + "</w:tr></w:tbl>"
    assert refused(row) == "not a valid .docx: a table row has more than 1,000 cells"


def test_archives_word_never_writes_are_refused(tmp_path):
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as archive:
        for n in range(20_001):
            archive.writestr(f"m{n}", b"")
    assert reason(many.getvalue()) == "not a plausible .docx: the archive has more than 20,000 members (a zip bomb?)"
    bzip = io.BytesIO()
    with zipfile.ZipFile(bzip, "w", zipfile.ZIP_BZIP2) as archive:
        for member in zipfile.ZipFile(io.BytesIO(saved(docx.Document()))).infolist():
            archive.writestr(member.filename, zipfile.ZipFile(io.BytesIO(saved(docx.Document()))).read(member))
    assert "packed with method 12; Word uses deflate" in reason(bzip.getvalue())
    no_main = docx_bombs.archive([honest("_rels/.rels", docx_bombs.relationships(("styles", "word/document.xml"))),
                                  honest("word/document.xml", document_xml(""))])
    assert "names no main document part" in reason(no_main)
    two_mains = docx_bombs.archive([honest("_rels/.rels", docx_bombs.relationships(
        ("officeDocument", "word/document.xml"), ("officeDocument", "word/document.xml"))),
        honest("word/document.xml", document_xml(""))])
    assert reason(two_mains) == "not a valid .docx: _rels/.rels has 2 relationships of type officeDocument"
    assert reason(b"PK\x03\x04 not a zip").startswith("not a valid .docx: ")
    not_xml = package(honest("word/document.xml", b"\0" * 100))
    assert reason(not_xml).startswith("not a valid .docx: word/document.xml: not well-formed")


def test_documents_python_docx_lost_are_read():
    """docs/reliability.md lists these: python-docx raised on each and kb lost the document."""
    def body(xml: str, styles: bytes | None = None) -> bytes:
        return package(honest("word/document.xml", document_xml(xml)), styles)

    paragraph = "<w:p><w:r><w:t>甲</w:t></w:r></w:p>"
    cell = "<w:tc><w:tcPr>{}</w:tcPr>" + paragraph + "</w:tc>"
    cases = {
        body(f"<w:tbl><w:tr>{cell.format('<w:vMerge/>')}</w:tr></w:tbl>"): ("甲", ""),  # no cell above
        body("<w:tbl><w:tr>" + cell.format('<w:gridSpan w:val="x"/>') + "</w:tr></w:tbl>"): ("甲", ""),
        body("<!--c--><?x y?>" + paragraph): ("甲", ""),
        body('<w:p><w:pPr><w:pStyle/></w:pPr><w:r><w:t>甲</w:t></w:r></w:p>'): ("甲", ""),
        body('<w:p><w:pPr><w:pStyle w:val="a&quot;b"/></w:pPr><w:r><w:t>甲</w:t></w:r></w:p>',
             f'<w:styles xmlns:w="{W}"><w:style w:type="paragraph" w:styleId="a&quot;b"><w:name w:val="Title"/>'
             '</w:style><w:style w:type="bogus" w:default="yes" w:styleId="c"><w:name/></w:style></w:styles>'.encode()):
            ("甲", "甲"),
    }
    main = [honest("_rels/.rels", docx_bombs.relationships(("officeDocument", "word/document.xml"))),
            honest("word/document.xml", document_xml(paragraph))]
    template = docx_bombs.content_types(styles=False).replace(b"document.main+xml", b"template.main+xml")
    image = honest("word/_rels/document.xml.rels", docx_bombs.relationships(("image", "media/missing.png")))
    for members in (main, [honest("[Content_Types].xml", template), *main], [*main, image]):
        cases[docx_bombs.archive(members)] = ("甲", "")  # no content types, a .dotx, a part missing
    for data, expected in cases.items():
        with pytest.raises(Exception):
            reference(data)
        assert read(data) == expected
