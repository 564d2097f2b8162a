"""Tests for kb.chunk: spans, coverage, sizes, sentence ends, law articles, sections and pages; comments
and headings with nothing beside them are no passage.

On the invented documents of tests/corpus and, where ../shared is there, on real laws and policies too
(the civil code's contract book, a one-line policy, the enactment block of the laws collection)."""
from __future__ import annotations

import dataclasses
import re
import unicodedata
from pathlib import Path

import pytest

from kb.chunk import RULES, ChunkSettings, article_numbers, article_range, chunk_document, preamble_end, text_parts
from kb.metadata import extract
from kb.records import Document
from kb.zh import INFO_END, chinese_number
from tests.conftest import DEMO_REPORT, SYNTHETIC_CORPUS, synthetic_files

ENDS = "。！？；!?;"
CLOSERS = "”’)）」』》"
ARTICLE_LINE = re.compile(r"^第[零〇一二三四五六七八九十百千万两0-9]+条(?:之[一二三四五六七八九十]+)?(?=\s)", re.M)
COMMENT = re.compile(r"<!--.*?-->", re.S)
# A line that only names what follows: a Markdown heading, or a short 第X编/章/节 line that is no sentence.
OUTLINE_LINE = re.compile(
    r"^[ \t\u3000]*(?:#{1,6}[ \t].*|第[零〇一二三四五六七八九十百千万两0-9]+(?:分编|编|章|节)[^。！？；!?;\n]*)$", re.M)
LAW_GIFTS = "laws/社会法/公益事业捐赠法(1999-06-28).md"
LAW_CONTRACTS = "laws/民法典/合同编.md"
LAW_LOCAL = "laws/DLC/浙江地方法规/地方性法规/浙江/杭州市企业工资集体协商条例(2014-04-11).md"
POLICY_INLINE = "policies/0013aa11eb73353abf1e2bd8bca41750.txt"  # one line with " 一、… " titles


def make_doc(path: Path, doc_id: str | None = None, page_starts: tuple[int, ...] = ()) -> Document:
    """A Document built the way ingest will: NFKC text, no dependency on kb.ingest."""
    raw = path.read_text(encoding="utf-8")
    return Document(id=doc_id or path.name, path=str(path), title=path.stem,
                    text=unicodedata.normalize("NFKC", raw), sha256="x",
                    format=path.suffix.lstrip("."), page_starts=page_starts)


def text_doc(text: str) -> Document:
    return Document(id="t", path="/t.txt", title="t", text=text, sha256="x", format="txt")


# The Markdown documents of tests/corpus with 第X条 articles (law_articles ends an article at a "#" heading).
SYNTHETIC_LAWS = [path.name for path in synthetic_files()
                  if path.suffix == ".md" and re.search(r"^第[一二三四五六七八九十]+条", path.read_text(encoding="utf-8"), re.M)]


def real_docs(shared: Path) -> list[Document]:
    """A mix of report, national law, civil-code book, local regulation and policy files."""
    paths = [shared / "corpus" / p for p in (LAW_GIFTS, LAW_CONTRACTS, LAW_LOCAL, POLICY_INLINE)]
    paths += sorted((shared / "corpus" / "policies").glob("*.txt"))[:40]
    return [make_doc(DEMO_REPORT)] + [make_doc(p) for p in paths]


def synthetic_docs() -> list[Document]:
    """The demo report and the invented documents: regulations, a law, a notice, a Q&A, an opinion."""
    return [make_doc(DEMO_REPORT)] + [make_doc(p) for p in synthetic_files() if p.suffix != ".html"]


@pytest.fixture(scope="session", params=["synthetic", "real"])
def docs(request) -> list[Document]:
    if request.param == "synthetic":
        return synthetic_docs()
    return real_docs(request.getfixturevalue("shared"))


def law_doc(request, law: str) -> Document:
    """A law of ../shared/corpus (a path with a folder) or of tests/corpus (a bare file name)."""
    if "/" not in law:
        return make_doc(SYNTHETIC_CORPUS / law)
    return make_doc(request.getfixturevalue("shared") / "corpus" / law)


def check_spans(doc: Document, chunks) -> None:
    """Span identity, ordering, no overlap, no edge whitespace, no comment, and every non-space character
    covered once but those of comments and of heading lines left out whole."""
    covered = bytearray(len(doc.text))
    prev_end = 0
    for i, c in enumerate(chunks):
        assert c.doc_id == doc.id and c.ordinal == i
        assert c.text == doc.text[c.start:c.end]
        assert c.text and c.text == c.text.strip()
        assert c.start >= prev_end, f"chunk {i} overlaps the one before"
        prev_end = c.end
        assert "<!--" not in c.text, (doc.id, c.ordinal)
        covered[c.start:c.end] = b"\x01" * (c.end - c.start)
    for m in COMMENT.finditer(doc.text):
        covered[m.start():m.end()] = b"\x01" * (m.end() - m.start())
    for m in OUTLINE_LINE.finditer(COMMENT.sub(lambda m: " " * len(m.group()), doc.text)):
        if not any(covered[m.start():m.end()]):
            covered[m.start():m.end()] = b"\x01" * (m.end() - m.start())
    missing = [i for i, ch in enumerate(doc.text) if not covered[i] and not ch.isspace()]
    assert not missing, f"{doc.id}: {len(missing)} characters outside every chunk, first at {missing[:3]}"


def sentence_around(text: str, pos: int) -> tuple[int, int]:
    """The sentence holding text[pos]: bounded by sentence ends and line breaks."""
    a = pos
    while a > 0 and text[a - 1] not in ENDS and text[a - 1] != "\n":
        a -= 1
    b = pos
    while b < len(text) and text[b] not in ENDS and text[b] != "\n":
        b += 1
    return a, b + 1


@pytest.mark.parametrize("size", [400, 120])
def test_spans_cover_every_character(docs, size):
    for doc in docs:
        check_spans(doc, chunk_document(doc, ChunkSettings(size=size, min_size=min(80, size // 2))))


@pytest.mark.parametrize("size, article_size", [(400, 600), (400, 400), (120, 120), (50, 50), (600, 300)])
def test_size_is_a_hard_maximum(docs, size, article_size):
    for doc in docs:
        for c in chunk_document(doc, ChunkSettings(size=size, min_size=0, article_size=article_size)):
            assert len(c.text) <= (article_size if c.article else size), (doc.id, c.ordinal, len(c.text))


def test_law_articles_are_packed_to_the_article_size_and_prose_to_the_size(shared):
    """The default: prose passages up to 400 characters, passages of law articles up to 600 and
    longer than 400 where articles allow, so a statute has fewer, fuller passages."""
    settings = ChunkSettings()
    assert (settings.size, settings.article_size) == (400, 600)
    law = make_doc(shared / "corpus" / LAW_CONTRACTS)
    packed, narrow = chunk_document(law, settings), chunk_document(law, ChunkSettings(article_size=400))
    assert len(packed) < 0.8 * len(narrow)
    assert any(len(c.text) > 400 for c in packed if c.article)
    assert all(len(c.text) <= 400 for c in packed if not c.article)
    prose = [make_doc(shared / "corpus" / POLICY_INLINE)]
    assert prose and chunk_document(prose[0], settings) == chunk_document(prose[0], ChunkSettings(article_size=400))


@pytest.mark.parametrize("size", [400, 120])
def test_chunks_end_at_sentence_line_or_section_end(docs, size):
    for doc in docs:
        chunks = chunk_document(doc, ChunkSettings(size=size))
        text = doc.text
        for c, nxt in zip(chunks, chunks[1:] + [None]):
            last = text[c.end - 1]
            newline = text.find("\n", c.end)
            rest_of_line = text[c.end:newline if newline >= 0 else len(text)]
            if last in ENDS or last in CLOSERS or not rest_of_line.strip():
                continue
            if nxt is not None and nxt.section != c.section:
                continue  # an inline "二、…" title starts the next section mid-line
            a, b = sentence_around(text, c.end - 1)
            assert len(text[a:b].strip()) > size, f"{doc.id} chunk {c.ordinal} ends mid-sentence: {c.text[-30:]!r}"


def law_articles(text: str) -> list[tuple[str, int, int]]:
    """(label, start, end) of each article: from its line to the next article or markdown heading."""
    starts = [(m.group(), m.start()) for m in ARTICLE_LINE.finditer(text)]
    stops = sorted([s for _, s in starts] + [m.start() for m in re.finditer(r"^#", text, re.M)] + [len(text)])
    out = []
    for label, s in starts:
        e = next(x for x in stops if x > s)
        out.append((label, s, len(text[:e].rstrip())))
    return out


@pytest.mark.parametrize("law", [LAW_GIFTS, LAW_CONTRACTS, LAW_LOCAL, *SYNTHETIC_LAWS])
@pytest.mark.parametrize("size", [400, 200])
def test_article_that_fits_is_never_split(request, law, size):
    doc = law_doc(request, law)
    chunks = chunk_document(doc, ChunkSettings(size=size, article_size=size))
    articles = law_articles(doc.text)
    assert len(articles) > (20 if "/" in law else 5)  # the real laws are long, the invented ones have 6 to 9 articles
    fitting = [(label, s, e) for label, s, e in articles if e - s <= size]
    assert fitting
    for label, s, e in fitting:
        assert any(c.start <= s and e <= c.end for c in chunks), f"{label} is split"
    # Short articles are packed: there are fewer chunks than articles.
    assert len(chunks) < len(articles)


# Invented regulations whose articles give passages of one article and of several at both sizes.
LABELLED_LAWS = ["hangzhou-wage-bargaining-regulation.md", "shandong-wage-bargaining-regulation.md"]


@pytest.mark.parametrize("law", [LAW_GIFTS, LAW_CONTRACTS, LAW_LOCAL, *LABELLED_LAWS])
@pytest.mark.parametrize("size", [400, 120])
def test_article_labels_name_first_and_last_article(request, law, size):
    doc = law_doc(request, law)
    articles = law_articles(doc.text)
    ranges, singles = 0, 0
    for c in chunk_document(doc, ChunkSettings(size=size, article_size=size)):
        touched = [label for label, s, e in articles if s < c.end and e > c.start]
        if not touched:
            expected = ""
        elif touched[0] == touched[-1]:
            expected = touched[0]
        else:
            expected = f"{touched[0]}至{touched[-1]}"
        assert c.article == expected, (c.ordinal, c.text[:40])
        ranges += "至" in c.article
        singles += bool(c.article) and "至" not in c.article
    assert ranges and singles


def test_enactment_block_has_no_section_or_article(shared):
    doc = make_doc(shared / "corpus" / LAW_CONTRACTS)
    chunks = chunk_document(doc)
    assert chunks[0].text == ("# 中华人民共和国民法典\n\n# 合同编\n\n2020年5月28日 第十三届全国人民代表大会第三次会议通过\n\n"
                              "2021年1月1日 施行")
    assert chunks[0].section == "" and chunks[0].article == ""
    assert chunks[1].text.startswith("## 第一分编  通则") and chunks[1].article


def markdown_sections(text: str) -> list[tuple[int, str]]:
    """(offset, enclosing "##".."####" headings) after each heading below the INFO END line."""
    body = text.index("<!-- INFO END -->")
    stack: list[tuple[int, str]] = []
    out = [(0, "")]
    for m in re.finditer(r"^(#{2,6})\s+(.+)$", text, re.M):
        if m.start() < body:
            continue
        level = len(m.group(1))
        stack = [(lv, t) for lv, t in stack if lv < level] + [(level, " ".join(m.group(2).split()))]
        out.append((m.start(), " / ".join(t for _, t in stack)))
    return out


@pytest.mark.parametrize("law", [LAW_GIFTS, LAW_CONTRACTS])
def test_law_sections_follow_markdown_headings(shared, law):
    doc = make_doc(shared / "corpus" / law)
    sections = markdown_sections(doc.text)
    title = doc.text.splitlines()[0].lstrip("# ").strip()
    heading_starts = {s for s, _ in sections[1:]}
    for c in chunk_document(doc):
        expected = [label for s, label in sections if s < c.end][-1]
        assert c.section == expected, (c.ordinal, c.text[:40])
        assert title not in c.section
        # A chunk never holds body text of two sections: only heading lines come before a heading inside it.
        inside = [s for s in heading_starts if c.start < s < c.end]
        if inside:
            before = doc.text[c.start:max(inside)].splitlines()
            assert all(line.lstrip().startswith("#") for line in before if line.strip()), c.text[:60]


def test_report_sections(demo_text):
    doc = text_doc(unicodedata.normalize("NFKC", demo_text))
    chunks = chunk_document(doc)
    check_spans(doc, chunks)

    def chunk_at(phrase: str):
        pos = doc.text.index(phrase)
        return next(c for c in chunks if c.start <= pos < c.end)

    assert chunk_at("一是制定改革方案").section.startswith("一、加强组织领导")
    assert chunk_at("二是以实现高质量发展为目标").section.startswith("二、突出重点环节")
    assert chunk_at("江门市紧抓省委赋予").section == ""
    # Each heading line opens a chunk and is never alone in it.
    headings = [m for m in re.finditer(r"^\s*([一二三四五六七八九十]+、.*)$", doc.text, re.M)]
    assert len(headings) >= 3
    for m in headings:
        c = chunk_at(m.group(1))
        assert c.start == m.start(1)
        assert len(c.text) > len(m.group(1))
        assert c.section == m.group(1).strip()


def test_inline_titles_in_one_line_policy(shared):
    doc = make_doc(shared / "corpus" / POLICY_INLINE)
    assert "\n" not in doc.text.strip()
    chunks = chunk_document(doc)
    titles = list(re.finditer(r"(?<=\s)([一二三四五六七八九十]+、)(\S+)(?=\s)", doc.text))
    assert len(titles) >= 5
    for m in titles:
        title = m.group(1) + m.group(2)
        inside = next(c for c in chunks if c.start <= m.end() + 1 < c.end)
        assert inside.section == title
        assert inside.start == m.start()  # a new section opens a new chunk


def test_markdown_title_is_not_a_section_and_not_alone():
    text = "# 某某条例\n\n## 第一章 总则\n\n第一条 为了规范管理,制定本条例。\n\n第二条 本条例适用于本市。\n"
    chunks = chunk_document(text_doc(text))
    assert len(chunks) == 1
    assert chunks[0].section == "第一章 总则"
    assert chunks[0].article == "第一条至第二条"
    assert chunks[0].text.startswith("# 某某条例")


def test_chapter_heading_joins_its_subheading():
    text = ("正文前言。\n\n第一编 总则\n\n第一章 基本规定\n\n第一节 一般规定\n\n第一条 内容一。\n\n"
            "第二章 其他\n\n第二条 内容二。\n")
    chunks = chunk_document(text_doc(text))
    check_spans(text_doc(text), chunks)
    by_article = {c.article: c for c in chunks}
    assert by_article["第一条"].section == "第一编 总则 / 第一章 基本规定 / 第一节 一般规定"
    assert by_article["第一条"].text.startswith("第一编 总则")
    assert by_article["第二条"].section == "第一编 总则 / 第二章 其他"
    assert chunks[0].section == "" and chunks[0].text == "正文前言。"


def test_items_inside_an_article_are_not_sections():
    text = "第三条 本法所称公益事业是指下列事项:\n\n(一)救助灾害;\n\n(二)教育事业。\n\n第四条 捐赠应当自愿。\n"
    chunks = chunk_document(text_doc(text))
    assert [c.section for c in chunks] == [""]
    assert chunks[0].article == "第三条至第四条"


def test_long_article_parts_keep_the_label():
    sentence = "用人单位应当依法支付劳动报酬并缴纳社会保险费。"
    text = "第十条 " + sentence * 13 + "\n\n第十一条 " + sentence + "\n"
    doc = text_doc(text)
    chunks = chunk_document(doc, ChunkSettings(size=100, min_size=20, article_size=100))
    check_spans(doc, chunks)
    assert len(chunks) >= 3
    assert all(c.article.startswith("第十条") for c in chunks)
    assert chunks[-1].article == "第十条至第十一条"
    assert all(c.text.endswith("。") for c in chunks)


def test_overlong_sentence_is_cut_at_commas_then_hard():
    clause = "对受疫情影响较大的中小企业给予补贴,"
    with_commas = clause * 30 + "特此通知。"
    doc = text_doc(with_commas)
    chunks = chunk_document(doc, ChunkSettings(size=100, min_size=0))
    check_spans(doc, chunks)
    assert all(c.text.endswith(",") for c in chunks[:-1])
    no_breaks = "甲" * 250
    chunks = chunk_document(text_doc(no_breaks), ChunkSettings(size=100, min_size=0))
    assert [len(c.text) for c in chunks] == [100, 100, 50]


def test_min_size_evens_out_a_short_tail():
    text = ("甲" * 19 + "。") * 11  # eleven 20-char sentences on one line
    greedy = chunk_document(text_doc(text), ChunkSettings(size=100, min_size=0))
    assert [len(c.text) for c in greedy] == [100, 100, 20]
    balanced = chunk_document(text_doc(text), ChunkSettings(size=100, min_size=80))
    check_spans(text_doc(text), balanced)
    lengths = [len(c.text) for c in balanced]
    assert len(lengths) == 3 and lengths[-1] > 20 and lengths[-2] >= lengths[-1]


def test_pages_from_page_starts(demo_text):
    text = unicodedata.normalize("NFKC", demo_text)
    starts = (0, len(text) // 3, 2 * len(text) // 3)
    doc = dataclasses.replace(text_doc(text), page_starts=starts)
    chunks = chunk_document(doc, ChunkSettings(size=200))
    for c in chunks:
        assert c.page == sum(1 for s in starts if s <= c.start)
    assert {c.page for c in chunks} == {1, 2, 3}
    assert all(c.page is None for c in chunk_document(text_doc(text)))


def test_empty_and_blank_documents():
    assert chunk_document(text_doc("")) == []
    assert chunk_document(text_doc(" \n\n \u3000\n")) == []


@pytest.mark.parametrize("kwargs", [{"size": 49}, {"size": 400, "min_size": -1}, {"size": 400, "min_size": 400},
                                    {"size": "400"}, {"size": 400.0}, {"min_size": True}, {"article_size": 49},
                                    {"article_size": "600"}])
def test_settings_validation(kwargs):
    with pytest.raises(ValueError):
        ChunkSettings(**kwargs)


def test_settings_round_trip():
    settings = ChunkSettings(size=300, min_size=60)
    assert settings.as_dict() == {"size": 300, "min_size": 60, "article_size": 600, "rules": RULES}
    assert ChunkSettings.from_dict(settings.as_dict()) == settings
    assert ChunkSettings.from_dict({"size": 300, "min_size": 60}) == ChunkSettings(300, 60, 300)  # before rules
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.size = 10  # type: ignore[misc]


def test_numbered_paragraph_is_not_a_title_but_ends_the_previous_one():
    text = ("一、总体要求\n\n坚持稳中求进。\n\n"
            "二、对于行政执法机关移送的涉嫌犯罪案件人民检察院经审查认为符合立案条件的应当及时作出立案决定,并通知移送机关。\n\n"
            "三、对于人民检察院的不立案决定移送涉嫌犯罪案件的行政执法机关可以在收到决定书后五日内要求复议。\n")
    chunks = chunk_document(text_doc(text))
    assert [c.section for c in chunks] == ["一、总体要求", ""]
    assert chunks[1].text.startswith("二、")


def test_chinese_numbers_and_article_ranges():
    assert [chinese_number(t) for t in ("十", "十二", "三十八", "一百零二", "两百", "一千二百六十", "38", "三十八条")] == \
        [10, 12, 38, 102, 200, 1260, 38, None]
    assert article_range("第三十六条至第三十八条") == (36, 38) and article_range("第十条之一") == (10, 10)
    assert article_range("") is None
    assert article_numbers("劳动合同法第三十八条、第39条和第十条之一") == [38, 39, 10]


def test_article_labels_read_back_as_the_articles_they_hold(shared):
    """Every passage label of the civil code's contract book reads back as the articles it holds."""
    doc = make_doc(shared / "corpus" / LAW_CONTRACTS)
    articles = law_articles(doc.text)
    numbered = {label: chinese_number(label[1:label.index("条")]) for label, _, _ in articles}
    assert sorted(numbered.values()) == list(range(min(numbered.values()), max(numbered.values()) + 1))
    for chunk in chunk_document(doc):
        touched = [numbered[label] for label, s, e in articles if s < chunk.end and e > chunk.start]
        assert article_range(chunk.article) == ((touched[0], touched[-1]) if touched else None)


# A regulation as the laws archive writes it (法律法规模版.md): the title and enactment history above
# INFO END, then chapters and articles; the archive's table and page-break comments inside.
ARCHIVE_LAW = (
    "# 某市职工工资支付条例\n\n2021年9月28日 某市第十六届人民代表大会常务委员会第五次会议通过\n\n2022年1月1日 施行\n\n"
    "<!-- INFO END -->\n\n## 第一章 总则\n\n"
    "第一条 为了保障职工按时足额获得工资,根据有关法律、行政法规,结合本市实际,制定本条例。\n\n"
    "第二条 本条例适用于本市行政区域内的用人单位。\n\n<!-- FORCE BREAK -->\n\n(一)企业;\n\n(二)个体经济组织。\n\n"
    "## 第二章 工资支付\n\n第三条 " + "用人单位应当按照劳动合同约定的日期以货币形式支付工资。" * 22 + "\n\n"
    "第四条 工资标准如下:\n\n<!-- TABLE -->\n| 项目 | 标准 |\n|---|---|\n| 加班工资 | 百分之一百五十 |\n<!-- TABLE END -->\n\n"
    "## 第三章 附则\n")


def archive_law() -> Document:
    return Document(id="laws/某市职工工资支付条例.md", path="/x.md", title="某市职工工资支付条例", text=ARCHIVE_LAW,
                    sha256="x", format="md")


def test_comments_are_never_in_a_passage_and_end_the_one_before():
    doc = archive_law()
    chunks = chunk_document(doc)
    check_spans(doc, chunks)
    texts = [c.text for c in chunks]
    # The history stays a passage, without the marker and outside every section.
    assert texts[0] == ("# 某市职工工资支付条例\n\n2021年9月28日 某市第十六届人民代表大会常务委员会第五次会议通过\n\n"
                        "2022年1月1日 施行")
    assert chunks[0].section == "" and chunks[0].article == ""
    # A page break inside article 2: its items are still article 2, in a passage of their own.
    assert texts[1].startswith("## 第一章 总则\n\n第一条") and texts[1].endswith("适用于本市行政区域内的用人单位。")
    assert texts[2] == "(一)企业;\n\n(二)个体经济组织。" and chunks[2].article == "第二条"
    # A table: the article's opening line, then its rows, never the table markers.
    table = next(c for c in chunks if "加班工资" in c.text)
    assert table.text == "| 项目 | 标准 |\n|---|---|\n| 加班工资 | 百分之一百五十 |" and table.article == "第四条"
    assert any(c.text.endswith("第四条 工资标准如下:") for c in chunks)


def test_headings_with_nothing_beside_them_are_no_passage():
    doc = archive_law()
    chunks = chunk_document(doc)
    # "## 第二章 工资支付" cannot join article 3, which fills a passage alone, and 第三章 has no article at
    # all: neither stands alone, and article 3 still names its chapter.
    assert not any(c.text in ("## 第二章 工资支付", "## 第三章 附则") for c in chunks)
    assert all(not all(part.heading for part in text_parts(c.text)) for c in chunks)
    article_three = [c for c in chunks if c.article == "第三条"]
    assert [(c.text[:4], c.section) for c in article_three] == [("第三条 ", "第二章 工资支付")]
    # A title whose history is empty is no passage: the first one opens the first chapter.
    bare = ARCHIVE_LAW.replace(ARCHIVE_LAW[ARCHIVE_LAW.index("2021年"):ARCHIVE_LAW.index(INFO_END)], "")
    chunks = chunk_document(Document(id="t.md", path="/t.md", title="t", text=bare, sha256="x", format="md"))
    assert chunks[0].text.startswith("## 第一章 总则\n\n第一条") and chunks[0].ordinal == 0
    # A numbered title may be a list item: a passage of them alone is kept.
    listed = "附件:\n\n" + "\n\n".join(f"{n}.关于惩治走私罪的补充规定{n}" for n in range(1, 6))
    assert "5.关于惩治走私罪的补充规定5" in chunk_document(text_doc(listed), ChunkSettings(size=60, min_size=0))[-1].text


def test_text_parts_know_the_history_of_a_passage_from_its_document():
    doc = archive_law()
    first = chunk_document(doc)[0]
    end = preamble_end(doc.text)
    assert doc.text[end:].startswith(INFO_END)
    assert all(part.preamble for part in text_parts(first.text, end - first.start))
    assert not any(part.preamble for part in text_parts(first.text))  # the passage alone does not say
    assert [part.preamble for part in text_parts(doc.text)][:4] == [True, True, True, False]
    assert not any(part.preamble for part in text_parts(text_doc("第一条 内容。").text))


def test_real_laws_hold_no_marker_no_bare_title_and_keep_their_history(shared):
    """Every 20th law of the archive, and a regulation whose history is empty."""
    laws = shared / "corpus" / "laws"
    paths = sorted(laws.rglob("*.md"))[::20] + [laws / "DLC/上海地方法规/地方性法规/上海/上海市专利保护条例.md"]
    with_history = 0
    for path in paths:
        doc = make_doc(path, str(path.relative_to(laws)))
        chunks = chunk_document(doc)
        check_spans(doc, chunks)
        assert all(not all(part.heading for part in text_parts(c.text)) or OUTLINE_LINE.search(c.text) is None
                   for c in chunks), doc.id
        end = preamble_end(doc.text)
        history = [line for line in doc.text[:end].splitlines() if re.match(r"\s*\d{4}年", line)]
        if history:
            with_history += 1
            assert chunks[0].end <= end and history[0].strip() in chunks[0].text, doc.id
    assert with_history > len(paths) // 2
    patents = chunk_document(make_doc(paths[-1]))
    assert patents[0].text.startswith("## 第一章") and "上海市专利保护条例" not in patents[0].text


def test_dates_above_the_marker_are_still_read(shared):
    path = shared / "corpus" / "laws" / "社会法" / "劳动合同法(2012-12-28).md"
    doc = make_doc(path)
    # Without the date of the file name: from the history above INFO END, which is a passage too.
    assert extract("laws/社会法/劳动合同法.md", "中华人民共和国劳动合同法", doc.text).date == "2012-12-28"
    assert "2012年12月28日" in chunk_document(doc)[0].text
