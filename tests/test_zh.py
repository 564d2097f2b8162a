"""Tests for kb.zh: the shared Chinese-text rules, and one normalisation for documents and queries."""
from __future__ import annotations

import re
import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kb.embed.fake import FakeEmbedder
from kb.knowledgebase import KnowledgeBase
from kb.tokenize import normalize, tokenize
from kb.zh import (
    BMP_IDEOGRAPHS,
    IDEOGRAPHS,
    PARAGRAPH_ENDS,
    SENTENCE_ENDS,
    asks_across_places,
    basic_ideographs,
    chinese_number,
    doc_number,
    is_bmp_ideograph,
    normalize_chars,
    normalize_text,
    without_title_date,
)

LOOKALIKES = "⺟⺠⻄⻅⻆⻉⻋⻓⻔⻘⻙⻚⻛⻜⻝⻢⻣⻤⻥⻦⻧⻨⻩⻪⻬⻮⻰⻳"
# What documents and queries are made of, and what normalisation must handle: ideographs, Kangxi
# radicals and their look-alikes, full-width forms, combining marks, controls and line ends.
TEXT = st.text(st.sampled_from(
    "见长门工用人母龟二〇一A a1１Ａ，。；：！？ \t\r\n\x00\x07\u3000\u0301e" + LOOKALIKES + "⼯⽤⼈⾒"), max_size=40)


def test_normalize_chars_maps_kangxi_radicals_lookalikes_and_full_width():
    assert normalize_chars("⼯资 常⻅ 市⻓ ⻔诊 ＡＢＣ１２３") == "工资 常见 市长 门诊 ABC123"
    assert normalize_chars(LOOKALIKES) == "母民西见角贝车长门青韦页风飞食马骨鬼鱼鸟卤麦黄黾齐齿龙龟"
    assert normalize("⻅Ａ") == "见a"


@given(TEXT)
def test_normalize_chars_is_idempotent(text):
    once = normalize_chars(text)
    assert normalize_chars(once) == once
    assert not set(once) & set(LOOKALIKES)


@given(TEXT)
def test_document_tokens_are_what_nfkc_alone_gave(text):
    """Document text is normalised at ingest, so the look-alike mapping added to queries' matching form
    changes no token of an index built before it."""
    document = normalize_text(text)
    assert normalize(document) == unicodedata.normalize("NFKC", document).casefold()


def test_nfkc_maps_no_character_into_a_lookalike():
    """Why the mapping after NFKC is enough: NFKC never produces a look-alike that was not there."""
    wanted = set(LOOKALIKES)
    made = [hex(code) for code in range(sys.maxunicode + 1)
            if not 0xD800 <= code < 0xE000 and chr(code) not in wanted
            and wanted & set(unicodedata.normalize("NFKC", chr(code)))]
    assert made == []


def test_ideograph_classes_and_basic_ideographs_with_its_block():
    for char in "一鿿㐀豈":
        assert is_bmp_ideograph(char)
    for char in "〇𠀀A1。、《 ⻅":  # 〇 and the supplementary planes are ideographs for tokens, not for PDF lines
        assert not is_bmp_ideograph(char)
    sample = "".join(map(chr, range(0x3000, 0xFB00))) + "\U00020000\U0003134f\U00031350"
    assert [c for c in sample if is_bmp_ideograph(c)] == re.findall(f"[{BMP_IDEOGRAPHS}]", sample)
    assert re.findall(f"[{IDEOGRAPHS}]", sample) == [c for c in sample if is_bmp_ideograph(c) or c in "〇\U00020000\U0003134f"]
    assert basic_ideographs("〇一A鿿㐀") == "一鿿"


def test_sentence_and_paragraph_ends():
    assert set(SENTENCE_ENDS) < set(PARAGRAPH_ENDS)
    assert set(PARAGRAPH_ENDS) - set(SENTENCE_ENDS) == set("：:")
    # NFKC writes the full-width ends in ASCII except 。: both spellings are listed.
    assert {normalize_chars(c) for c in SENTENCE_ENDS} <= set(SENTENCE_ENDS)


def test_chinese_number():
    numbers = ("十", "十二", "三十八", "一百零二", "两百", "一千二百六十", "一万零一", "38", "三十八条")
    assert [chinese_number(t) for t in numbers] == [10, 12, 38, 102, 200, 1260, 10001, 38, None]


def test_doc_number_and_title_date():
    assert doc_number("粤府", "2021", "012") == "粤府〔2021〕12号"
    assert without_title_date("中华人民共和国劳动合同法(2012-12-28)") == "中华人民共和国劳动合同法"
    assert without_title_date("劳动合同法(2012-12-28)释义") == "劳动合同法(2012-12-28)释义"


@pytest.fixture(scope="module")
def small_kb(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zh") / "docs"
    folder.mkdir()
    texts = {
        "意见.txt": "关于听取群众意见的通知\n\n各部门要广泛听取群众意见,及时答复。门诊服务时间延长至晚上八点。",
        "市长.txt": "市长接待日安排\n\n市长每月接待来访群众一次,解决群众反映的问题,见面时间另行通知。",
        "工会.txt": "工会工作要点\n\n加强基层工会建设,维护职工合法权益。部门负责人要定期见面,门口设意见箱。",
        "长期.txt": "长期护理保险试点\n\n开展长期护理保险试点,减轻失能人员家庭负担。",
    }
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    kb = KnowledgeBase(tmp_path_factory.mktemp("zh-index"), FakeEmbedder())
    kb.ingest([folder])
    return kb


@pytest.mark.parametrize("typed, plain", [("听取意⻅", "听取意见"), ("⻅", "见"), ("市⻓接待", "市长接待"),
                                          ("⻓期护理", "长期护理"), ("⻔诊 ⻔口", "门诊 门口"), ("⼯会建设", "工会建设"),
                                          ("⼯", "工")])
def test_query_with_radical_lookalikes_finds_what_the_plain_characters_find(small_kb, typed, plain):
    """A query typed with CJK Radicals Supplement look-alikes (⻅ ⻓ ⻔) or a Kangxi radical (⼯) is the
    query of the ordinary characters, as the documents are: same passages, same order, in every mode."""
    assert tokenize(typed) == tokenize(plain)
    for mode in ("bm25", "vector", "hybrid"):
        got = [(hit.doc_id, hit.ordinal, hit.matched_terms) for hit in small_kb.search(typed, mode=mode, k=4)]
        want = [(hit.doc_id, hit.ordinal, hit.matched_terms) for hit in small_kb.search(plain, mode=mode, k=4)]
        assert got == want, mode
        assert want


@pytest.mark.parametrize("query", [
    "各地集体合同条例对集体合同报送审查和生效时限的规定有何异同",
    "安全生产条例 配备专职安全管理人员 各省市对比",
    "疫情期间各地失业保险稳岗返还政策",
    "不同地区的最低工资标准",
    "各城市人才引进落户条件",
    "多地出台稳岗返还政策",
    "各地人社部门发布的稳岗返还政策比较",  # a body of every place, but the query compares
])
def test_words_that_ask_across_places(query):
    assert asks_across_places(query)


@pytest.mark.parametrize("query", [
    "老板拖了三个月工资不发怎么办",
    "杭州 工资集体协商",
    "各市场主体复工复产",  # 各市场 is not 各市
    "各级人民政府应当加强领导",
    "在哪些地方需要注意安全",  # 地方 as "respect"
    "多地点经营的企业如何缴纳社保",
    "国家药品监管局要求各地药品监管部门落实哪些要求",  # every place's body, told what to do
    "疫情下复工复产期间各地要怎样分类施策",
    "税务总局要求各地税务机关做什么",
])
def test_words_that_do_not_ask_across_places(query):
    assert not asks_across_places(query)
