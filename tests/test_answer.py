"""Citations and highlighted HTML: escaped text, marks around matched terms only; text made safe for HTML and Markdown."""
import re
import string

from hypothesis import given
from hypothesis import strategies as st

from kb.answer import cite, highlight_html, hit_to_json
from kb.markup import html_text, markdown_text, one_line
from kb.records import Hit
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
