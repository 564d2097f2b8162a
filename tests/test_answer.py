"""Citations, extractive answers (never a heading), highlighted HTML from escaped text; text made safe for HTML and
Markdown."""
import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kb.answer import AnswerSettings, candidate_sentences, cite, extractive_answer, highlight_html, hit_to_json
from kb.chunk import chunk_document, preamble_end
from kb.embed.fake import FakeEmbedder
from kb.knowledgebase import KnowledgeBase
from kb.markup import html_text, markdown_text, one_line
from kb.records import Document, Hit
from kb.search import matched_terms


def make_hit(text: str, **fields) -> Hit:
    values = dict(rank=1, score=0.5, doc_id="laws/劳动合同法.md", title="中华人民共和国劳动合同法", path="/x/劳动合同法.md",
                  text=text, start=120, end=120 + len(text), page=None, section="第四章 劳动合同的解除和终止",
                  article="第三十八条", ordinal=3, matched_terms=())
    values.update(fields)
    return Hit(**values)


def test_highlight_escapes_markup_in_documents():
    text = "用人单位<script>alert('欠薪')</script>未及时足额支付劳动报酬的<img src=x onerror=alert(1)>"
    rendered = highlight_html(text, ["欠薪", "劳动报酬"])
    assert "<script>" not in rendered and "<img" not in rendered
    assert "&lt;script&gt;" in rendered and "&lt;img src=x onerror=alert(1)&gt;" in rendered
    assert "<mark>欠薪</mark>" in rendered and "<mark>劳动报酬</mark>" in rendered
    assert rendered.count("<mark>") == 2


def test_highlight_prefers_longest_term_and_is_case_insensitive():
    rendered = highlight_html("根治欠薪工作与BM25检索", ["欠薪", "根治欠薪", "bm25"])
    assert rendered == "<mark>根治欠薪</mark>工作与<mark>BM25</mark>检索"


def test_highlight_of_a_term_containing_markup_characters_stays_escaped():
    assert highlight_html("a<b 与 a&b", ["a<b"]) == "<mark>a&lt;b</mark> 与 a&amp;b"


def test_matched_terms_are_the_longest_shared_pieces_of_the_query():
    text = "江门市产业工人队伍建设改革主动融入国家粤港澳大湾区发展战略"
    terms = matched_terms("江门 产业工人队伍 发展党员", text)
    assert terms[0] == "产业工人队伍" and "江门" in terms and "发展" in terms
    assert "发展党员" not in terms  # not in the text as a whole
    assert matched_terms("ＢＭ２５", "bm25 模型") == ("bm25",)


def test_citation_names_document_article_section_and_span():
    hit = make_hit("用人单位有下列情形之一的，劳动者可以解除劳动合同：", page=3)
    label = cite(hit).label()
    for part in ("《中华人民共和国劳动合同法》", "第3页", "第三十八条", "第四章", "字符 120–", "laws/劳动合同法.md"):
        assert part in label
    record = hit_to_json(hit)
    assert {"doc", "title", "score", "text", "page", "start", "end", "section"} <= set(record)
    assert record["doc"] == "laws/劳动合同法.md" and record["end"] - record["start"] == len(record["text"])


@given(st.text(alphabet=st.sampled_from(string.printable + "工资《》〔〕·—\u3000😀"), max_size=60))
def test_markdown_text_escapes_every_ascii_punctuation_character_and_keeps_the_rest(text):
    escaped = markdown_text(text)
    assert "\n" not in escaped and re.sub(r"\\(.)", r"\1", escaped) == one_line(text)
    # Every punctuation character is preceded by its own backslash: nothing is left for Markdown to read.
    unescaped = re.sub(r"\\[!-/:-@\[-`{-~]", "", escaped)
    assert not any(char in string.punctuation for char in unescaped)


def test_a_title_with_blank_lines_stays_on_one_escaped_line():
    title = "保障农民工工资支付条例\n\n**粗体** <img src=x onerror=alert(1)>"
    assert html_text(title) == "保障农民工工资支付条例 **粗体** &lt;img src=x onerror=alert(1)&gt;"
    assert markdown_text("![t](http://h/x.png) $x$ :red[工资]") == \
        r"\!\[t\]\(http\:\/\/h\/x\.png\) \$x\$ \:red\[工资\]"


# From 劳动法 as the laws archive writes it: title, enactment history, a chapter heading, articles.
LABOUR_LAW = ("# 中华人民共和国劳动法\n\n1994年7月5日 第八届全国人民代表大会常务委员会第八次会议通过\n\n<!-- INFO END -->\n\n"
              "## 第七章 女职工和未成年工特殊保护\n\n第五十八条 国家对女职工和未成年工实行特殊劳动保护。\n\n"
              "未成年工是指年满十六周岁未满十八周岁的劳动者。\n\n"
              "第五十九条 禁止安排女职工从事矿山井下、国家规定的第四级体力劳动强度的劳动和其他禁忌从事的劳动。")
# A notice whose title opens its text, with report-style numbered titles.
NOTICE = ("关于做好女职工特殊劳动保护工作的通知\n一、女职工特殊劳动保护\n各用人单位应当落实女职工特殊劳动保护措施,"
          "不得安排怀孕女职工从事禁忌从事的劳动。\n二、工作要求")


def test_headings_titles_and_enactment_history_are_never_quoted():
    hits = [make_hit(LABOUR_LAW, start=0, end=len(LABOUR_LAW), article="第五十八条至第五十九条"),
            make_hit(NOTICE, rank=2, doc_id="policies/notice.txt", title="关于做好女职工特殊劳动保护工作的通知",
                     start=0, end=len(NOTICE), article="", section="")]
    headings = {"# 中华人民共和国劳动法", "## 第七章 女职工和未成年工特殊保护", "第七章 女职工和未成年工特殊保护",
                "关于做好女职工特殊劳动保护工作的通知", "一、女职工特殊劳动保护", "二、工作要求"}
    embedder = FakeEmbedder()
    for query in ("女职工和未成年工特殊保护", "中华人民共和国劳动法 第八次会议通过", "女职工特殊劳动保护工作 通知",
                  "工作要求"):
        vector = embedder.embed_queries([query])[0]
        for answer in (extractive_answer(query, hits),
                       extractive_answer(query, hits, query_vector=vector, embed=embedder.embed_passages)):
            quoted = {sentence.text for sentence in answer}
            assert not quoted & headings and not any("INFO END" in text or "会议通过" in text for text in quoted)
            for sentence in answer:
                hit = hits[sentence.citation - 1]
                assert hit.text[sentence.start - hit.start:sentence.end - hit.start] == sentence.text
    # The heading's words are those of its article: the article is quoted instead.
    first = extractive_answer("女职工和未成年工特殊保护", hits)[0]
    assert first.text == "第五十八条 国家对女职工和未成年工实行特殊劳动保护。"
    assert [candidate.sentence.text for candidate in candidate_sentences("劳动", hits[:1])] == [
        "第五十八条 国家对女职工和未成年工实行特殊劳动保护。", "未成年工是指年满十六周岁未满十八周岁的劳动者。",
        "第五十九条 禁止安排女职工从事矿山井下、国家规定的第四级体力劳动强度的劳动和其他禁忌从事的劳动。"]


def test_enactment_history_is_known_from_the_document_when_its_passage_holds_no_marker(tmp_path):
    doc = Document(id="laws/劳动法.md", path="/x/劳动法.md", title="中华人民共和国劳动法", text=LABOUR_LAW, sha256="x",
                   format="md")
    history = chunk_document(doc)[0]
    assert history.text == "# 中华人民共和国劳动法\n\n1994年7月5日 第八届全国人民代表大会常务委员会第八次会议通过"
    hits = [make_hit(history.text, start=history.start, end=history.end, doc_id=doc.id, section="", article="")]
    query = "劳动法 第八次会议通过"
    # The passage alone reads as a line of text; its document says it is the history.
    assert candidate_sentences(query, hits)
    assert not candidate_sentences(query, hits, preambles=lambda doc_id: preamble_end(doc.text))
    # KnowledgeBase.answer knows its documents.
    (tmp_path / "劳动法.md").write_text(LABOUR_LAW, encoding="utf-8")
    kb = KnowledgeBase(tmp_path / "index", FakeEmbedder())
    kb.ingest([tmp_path / "劳动法.md"])
    found = kb.search(query, k=5)
    assert any(hit.text == history.text for hit in found)
    assert not any("会议通过" in sentence.text for sentence in kb.answer(query, found))


def test_the_answer_quotes_the_sentence_on_the_matter_asked_not_one_sharing_only_general_words():
    text = ("第五十八条 国家对女职工和未成年工实行特殊劳动保护。\n\n"
            "第六十一条 不得安排女职工在怀孕期间从事国家规定的第三级体力劳动强度的劳动和孕期禁忌从事的劳动。")
    hits = [make_hit(text, start=0, end=len(text))]
    query = "怀孕期间的女职工能从事哪些劳动"
    # Both sentences hold 女职工 and 劳动; only one is about pregnancy.
    embedder = FakeEmbedder()
    answer = extractive_answer(query, hits, query_vector=embedder.embed_queries([query])[0],
                               embed=embedder.embed_passages)
    assert answer[0].text.startswith("第六十一条")
    with pytest.raises(ValueError, match="candidates"):
        AnswerSettings(candidates=0)


def test_the_model_sees_each_sentence_under_its_title_and_section_as_the_index_sees_passages():
    text = "第四十二条 劳动者有下列情形之一的,用人单位不得解除劳动合同:\n(四)女职工在孕期、产期、哺乳期的;"
    notice = "关于做好女职工特殊劳动保护工作的通知\n各用人单位不得因女职工怀孕降低其工资。"
    hits = [make_hit(text, start=0, end=len(text)),
            make_hit(notice, rank=2, doc_id="policies/notice.txt", title="关于做好女职工特殊劳动保护工作的通知",
                     start=0, end=len(notice), article="", section="")]
    embedded: list[str] = []
    embedder = FakeEmbedder()

    def embed(texts: list[str]):
        embedded.extend(texts)
        return embedder.embed_passages(texts)

    query = "女职工怀孕被辞退怎么办"
    extractive_answer(query, hits, query_vector=embedder.embed_queries([query])[0], embed=embed)
    # The law's sentences under its title and chapter, as chunk.indexed_text puts a passage; the
    # notice's sentence under its title alone (it has no section); its title is never a candidate.
    assert sorted(embedded) == sorted([
        "中华人民共和国劳动合同法\n第四章 劳动合同的解除和终止\n第四十二条 劳动者有下列情形之一的,用人单位不得解除劳动合同:",
        "中华人民共和国劳动合同法\n第四章 劳动合同的解除和终止\n(四)女职工在孕期、产期、哺乳期的;",
        "关于做好女职工特殊劳动保护工作的通知\n各用人单位不得因女职工怀孕降低其工资。"])
