"""Tests for kb.ingest: discovery, encodings, normalisation, and every real PDF/Word/torture file."""
import functools
import io
import os
import unicodedata
from pathlib import Path

import docx
import pytest
from pypdf import PdfReader, PdfWriter

from kb.errors import KbError, UnreadableFile
from kb.ingest import (
    SUPPORTED_SUFFIXES,
    SourceFile,
    discover,
    join_broken_lines,
    read_document,
)
from kb.store import file_sha256
from kb.zh import normalize_text
from tests.docx_bombs import relationships

DEMO_REPORT = Path(__file__).resolve().parent.parent / "corpus" / "jiangmen-2022-01-21-industrial-workers.txt"
CHINESE = "第一条 为了规范劳动合同,保护劳动者的合法权益,制定本条例。\n第二条 本条例适用于本市行政区域内的用人单位。\n"


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def read(path: Path):
    """Read one file as a single-file root, the way the CLI would."""
    [source], skipped = discover([path])
    assert skipped == []
    return read_document(source)


@functools.lru_cache(maxsize=None)
def read_shared(path: Path):
    """Documents from ../shared are read once per session: several tests look at the same PDFs."""
    return read(path)


def reason_of(path: Path) -> str:
    with pytest.raises(UnreadableFile) as info:
        read(path)
    assert info.value.path == str(path)
    return info.value.reason


def cjk_count(text: str) -> int:
    return sum(1 for c in text if "\u4e00" <= c <= "\u9fff")


# ---------------------------------------------------------------- discovery

@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "policies"
    write(root / "b.txt", CHINESE)
    write(root / "a.md", "# 标题\n" + CHINESE)
    write(root / "sub" / "deep" / "c.html", "<p>正文</p>")
    write(root / "sub" / "d.PDF", b"%PDF-1.4")
    write(root / ".hidden.txt", CHINESE)
    write(root / ".git" / "e.txt", CHINESE)
    write(root / "notes.xyz", "x")
    write(root / "README", "x")
    os.symlink(root, root / "sub" / "loop")  # a folder containing itself
    os.symlink(root / "b.txt", root / "z-link.txt")  # a second route to b.txt
    return root


def test_discover_ids_sorting_and_skips(tree):
    sources, skipped = discover([tree])
    assert [s.doc_id for s in sources] == ["policies/a.md", "policies/b.txt",
                                           "policies/sub/d.PDF", "policies/sub/deep/c.html"]
    assert all(s.root == str(tree) and os.path.isabs(s.path) for s in sources)
    assert sources[1].path == str(tree / "b.txt")
    assert {(Path(s.path).name, s.reason) for s in skipped} == {
        ("notes.xyz", "unsupported file type .xyz"), ("README", "unsupported file type (no suffix)"),
        (".hidden.txt", "hidden (the name starts with a dot)"), (".git", "hidden (the name starts with a dot)")}


def test_discover_relative_root_and_single_file(tree, monkeypatch):
    monkeypatch.chdir(tree / "sub")
    sources, _ = discover(["../../policies"])
    assert sources[0].doc_id == "policies/a.md"
    assert sources[0].root == str(tree)
    [single], _ = discover(["deep/c.html"])
    assert single == SourceFile(path=str(tree / "sub/deep/c.html"), doc_id="c.html",
                                root=str(tree / "sub/deep/c.html"))


def test_discover_same_file_twice_appears_once(tree):
    once, _ = discover([tree])
    sources, _ = discover([tree, tree / "b.txt", tree / "sub"])
    assert sources == once  # the first route to a file names it
    assert len({os.path.realpath(s.path) for s in sources}) == len(sources)


def test_discover_missing_path_raises(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(KbError, match="no such file or folder"):
        discover([missing])


def test_supported_suffixes():
    assert SUPPORTED_SUFFIXES == {".txt", ".md", ".markdown", ".pdf", ".docx", ".html", ".htm"}


# ---------------------------------------------------------------- text files and encodings

@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk", "utf-16"])
def test_encodings_round_trip(tmp_path, encoding):
    doc = read(write(tmp_path / "doc.txt", CHINESE.encode(encoding)))
    assert doc.text == CHINESE
    assert doc.format == "txt"
    assert doc.sha256 == file_sha256(tmp_path / "doc.txt")


def test_short_gbk_text_is_not_misread(tmp_path):
    assert read(write(tmp_path / "s.txt", "中文".encode("gbk"))).text == "中文"


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b" \n\t\r\n", "empty file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file, not text"),
    (b"\x81\x20\xff\xfe abc", "not UTF-8, GB18030 or Big5 text"),
])
def test_bad_text_files(tmp_path, data, reason):
    assert reason_of(write(tmp_path / "bad.txt", data)) == reason


def test_a_long_text_whose_sampled_windows_are_blank_is_read(tmp_path):
    # Over the sample size, the text checks look at spread windows; here every one is blank lines.
    doc = read(write(tmp_path / "sparse.txt", "\n" * 300_000 + CHINESE))
    assert "第一条" in doc.text


def test_normalize_text():
    assert normalize_text("⽤⼈单位") == "用人单位"  # Kangxi radicals
    assert normalize_text("ＡＢＣ１２３") == "ABC123"
    assert normalize_text("常⻅") == "常见"  # radical supplement look-alike
    assert normalize_text("第一条\u3000总则") == "第一条 总则"
    assert normalize_text("甲，乙：(丙)。丁、\r\n戊 \t\r己\x00\x07\t庚") == "甲,乙:(丙)。丁、\n戊\n己\t庚"


def test_txt_title_first_line_or_opening_phrase(tmp_path):
    assert read(write(tmp_path / "a.txt", "\n\n  关于做好复工复产工作的通知  \n正文。")).title == "关于做好复工复产工作的通知"
    long_line = "国家税务总局南阳市税务局 各县区税务局,局内各单位:为坚决贯彻落实党中央决策部署" * 3
    assert read(write(tmp_path / "b.txt", long_line)).title == "国家税务总局南阳市税务局"
    assert len(read(write(tmp_path / "c.txt", "测" * 200)).title) == 60


def test_demo_report_title():
    doc = read(DEMO_REPORT)
    assert doc.title == "江门市:整体谋划 系统推进 打造高素质产业工人队伍"
    assert doc.id == DEMO_REPORT.name


def test_policy_files_get_an_opening_phrase_title(shared):
    sources, _ = discover([shared / "corpus" / "policies"])
    assert sources[0].doc_id.startswith("policies/") and sources[0].doc_id.endswith(".txt")
    for source in sources[:40]:
        doc = read_document(source)
        assert 2 <= len(doc.title) <= 60 and doc.text.startswith(doc.title)


def test_markdown_law(shared):
    doc = read(shared / "corpus" / "laws" / "社会法" / "公益事业捐赠法(1999-06-28).md")
    raw = normalize_text((shared / "corpus" / "laws" / "社会法" / "公益事业捐赠法(1999-06-28).md").read_text("utf-8"))
    assert doc.format == "md"
    assert doc.title == raw.split("\n")[0].removeprefix("# ")
    assert not doc.title.startswith("#")
    assert doc.text == raw  # info block and headings kept, so spans map to the file
    assert "<!-- INFO END -->" in doc.text and "\n## 第一章 总则\n" in doc.text


# ---------------------------------------------------------------- docx and html

def test_docx_body_order_with_table(tmp_path):
    document = docx.Document()
    document.add_paragraph("前言部分")
    document.add_heading("劳动合同管理办法", level=1)
    document.add_paragraph("第一条 为了规范劳动合同管理,制定本办法。")
    table = document.add_table(rows=3, cols=2)
    for r, row in enumerate([("岗位", "人数"), ("工会主席", "1")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(2, 0).merge(table.cell(2, 1)).text = "合计一人"
    document.add_paragraph("第二条 本办法自公布之日起施行。")
    document.save(tmp_path / "law.docx")
    doc = read(tmp_path / "law.docx")
    assert doc.format == "docx" and doc.title == "劳动合同管理办法"
    lines = [line for line in doc.text.split("\n") if line]
    assert lines[2:] == ["第一条 为了规范劳动合同管理,制定本办法。", "岗位 | 人数", "工会主席 | 1", "合计一人",
                         "第二条 本办法自公布之日起施行。"]


def test_broken_docx(tmp_path):
    assert reason_of(write(tmp_path / "x.docx", "不是压缩包")).startswith("not a valid .docx")


def test_html(tmp_path):
    page = ("<html><head><meta charset=\"gbk\"><title>关于稳就业的通知</title>"
            "<style>p {color: red}</style><script>var x = '脚本';</script></head>"
            "<body><h1>标题一</h1><p>第一段  内容,<b>加粗</b>。</p><div>第二段</div><br>第三行</body></html>")
    doc = read(write(tmp_path / "n.html", page.encode("gb18030")))
    assert doc.format == "html" and doc.title == "关于稳就业的通知"
    assert doc.text.split("\n") == ["标题一", "第一段 内容,加粗。", "第二段", "第三行"]
    no_title = read(write(tmp_path / "m.htm", "<body><h1>复工指南</h1><p>正文</p><h1>附录</h1></body>"))
    assert no_title.title == "复工指南"


# ---------------------------------------------------------------- PDF

def test_join_broken_lines():
    text = ("现在,我代表北京市人民政府,向大会报告政府工作,请予审议,并请市政协委员提出\n"
            "意见。全市地区生产总值增长,一般公共预算收入增长,居民消费价格总体平稳\n"
            "一、2023年工作回顾\n"
            "第一条 为了调整劳动关系,建立和维护适应社会主义市场经济的劳动合同制度,根据\n"
            "《中华人民共和国劳动法》,制定本条例。\n"
            "(一)劳动合同期限;\n"
            "短标题\n"
            "正文从这里开始,这一行足够长,长到与其他整行的宽度差不多,并在句中断开\n"
            ",逗号开头的一行也接上。")
    assert join_broken_lines(text).split("\n") == [
        "现在,我代表北京市人民政府,向大会报告政府工作,请予审议,并请市政协委员提出意见。"
        "全市地区生产总值增长,一般公共预算收入增长,居民消费价格总体平稳",
        "一、2023年工作回顾",
        "第一条 为了调整劳动关系,建立和维护适应社会主义市场经济的劳动合同制度,根据《中华人民共和国劳动法》,制定本条例。",
        "(一)劳动合同期限;",
        "短标题",
        "正文从这里开始,这一行足够长,长到与其他整行的宽度差不多,并在句中断开,逗号开头的一行也接上。",
    ]


def test_pdf_page_map(shared):
    path = shared / "corpus" / "pdf" / "2024年北京市政府工作报告.pdf"
    doc = read_shared(path)
    raw_pages = ["".join(normalize_text(p.extract_text()).split()) for p in PdfReader(path).pages]
    assert len(doc.page_starts) == len(raw_pages) == 13
    assert doc.page_starts[0] == 0 and list(doc.page_starts) == sorted(set(doc.page_starts))
    for phrase in ["京津冀协同发展", "城镇调查失业率", "各位代表", "科技创新", "营商环境"]:
        offset = doc.text.find(phrase)
        assert offset >= 0, phrase
        assert phrase in raw_pages[doc.page_at(offset) - 1]
        assert not any(phrase in page for page in raw_pages[: doc.page_at(offset) - 1])
    for i, start in enumerate(doc.page_starts[1:], 1):
        assert doc.text[start - 2:start] == "\n\n"
        assert doc.text[start:start + 8] == raw_pages[i][:8]


def test_pdf_errors(tmp_path, shared):
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    assert reason_of(write(tmp_path / "locked.pdf", buffer.getvalue())) == "PDF is encrypted"
    assert reason_of(write(tmp_path / "fake.pdf", "这不是PDF")).startswith("not a valid PDF")
    blank = PdfWriter()
    blank.add_blank_page(200, 200)
    blank.write(tmp_path / "blank.pdf")
    assert "no text layer" in reason_of(tmp_path / "blank.pdf")
    real = (shared / "corpus" / "pdf" / "上海市劳动合同条例.pdf").read_bytes()
    try:
        read(write(tmp_path / "truncated.pdf", real[: len(real) // 3]))
    except UnreadableFile:
        pass  # pypdf may recover what is left of a truncated file; it must not raise anything else


def expected_category(name: str) -> str:
    """What a torture/real file should produce, from how the data set names it."""
    if "scanned" in name:
        return "no text layer"
    if "garbled" in name:
        return "garbled"
    return "document"


def real_files(shared):
    folders = [shared / "torture", shared / "corpus" / "pdf"]
    return [p for folder in folders for p in sorted(folder.iterdir()) if p.suffix in (".pdf", ".docx")]


def test_every_real_and_torture_file(shared):
    files = real_files(shared)
    assert len(files) >= 15
    for path in files:
        category = expected_category(path.name)
        if category != "document":
            assert category in reason_of(path), path.name
            continue
        doc = read_shared(path)
        assert cjk_count(doc.text) > 300, path.name
        assert not any("\u2f00" <= c <= "\u2fdf" for c in doc.text), path.name
        assert doc.title.strip() and "\n" not in doc.title, path.name
        if path.suffix == ".docx":
            assert doc.title == path.stem  # the files are named after the law
            assert "第一条" in doc.text and "第一章" in doc.text


def test_pdf_pages_lose_lone_page_numbers(shared):
    pdfs = [p for p in real_files(shared) if p.suffix == ".pdf" and expected_category(p.name) == "document"]
    raw_edges = 0
    for path in pdfs:
        doc = read_shared(path)
        bounds = list(doc.page_starts) + [len(doc.text) + 2]
        for start, end in zip(bounds, bounds[1:]):
            lines = [line.strip() for line in doc.text[start:end - 2].split("\n") if line.strip()]
            assert not lines[0].isdigit() and not lines[-1].isdigit(), (path.name, lines[0], lines[-1])
        for page in PdfReader(path).pages:
            lines = [line.strip() for line in page.extract_text().split("\n") if line.strip()]
            raw_edges += any(line.isdigit() for line in lines[:2] + lines[-2:])
    assert raw_edges > 0  # the data really has page numbers to remove


def test_kangxi_radicals_become_ideographs(shared):
    path = shared / "torture" / "introduction_kangxi_radicals.pdf"
    raw = "".join(p.extract_text() for p in PdfReader(path).pages)
    assert "\u2f64" in raw  # ⽤: the file really uses Kangxi radicals
    doc = read_shared(path)
    assert "用" in doc.text and "\u2f64" not in doc.text
    assert unicodedata.normalize("NFKC", doc.text) == doc.text


def test_big5_text_is_read_and_indexed_in_simplified_characters(tmp_path):
    traditional = "勞動合同法\n第一條 為了完善勞動合同制度，明確勞動合同雙方當事人的權利和義務，保護勞動者的合法權益。"
    doc = read(write(tmp_path / "big5.txt", traditional.encode("cp950")))
    assert doc.text.startswith("劳动合同法\n第一条 为了完善劳动合同制度")
    assert doc.title == "劳动合同法"
    # The same bytes are not mistaken for GB18030 (which decodes them into rare characters), and
    # GBK text is not mistaken for Big5.
    assert read(write(tmp_path / "gbk.txt", "用人单位应当按时足额支付劳动报酬。".encode("gbk"))).text \
        == "用人单位应当按时足额支付劳动报酬。"


def test_mixed_line_endings_and_odd_file_names(tmp_path):
    for name in ("名单 2024 😀.txt", "with space.md", "工资.txt"):
        doc = read(write(tmp_path / name, "第一行\r\n第二行\r第三行\n第四行".encode()))
        assert doc.text == "第一行\n第二行\n第三行\n第四行"


def test_size_limit_and_zip_bomb(tmp_path, monkeypatch):
    import zipfile

    monkeypatch.setenv("KB_MAX_FILE_MB", "1")
    big = write(tmp_path / "big.txt", ("工资" * 400_000).encode())  # 2.4 MB
    assert "over the 1 MB limit (KB_MAX_FILE_MB)" in reason_of(big)
    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("_rels/.rels", relationships(("officeDocument", "word/document.xml")))
        archive.writestr("word/document.xml", b"\0" * (30 * 2**20))  # 30 MB of zeros, 30 KB packed
    assert bomb.stat().st_size < 2**20
    assert reason_of(bomb) == ("not a plausible .docx: word/document.xml inflates to more than 200 times its"
                               " packed size (a zip bomb?)")  # more in test_wordml.py
    monkeypatch.setenv("KB_MAX_FILE_MB", "lots")
    with pytest.raises(KbError, match="KB_MAX_FILE_MB"):
        read(big)
