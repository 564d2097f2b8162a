"""The re-rankers of kb.rerank on small hand-made indexes: cited articles, document match, legal hierarchy,
national texts after local ones in a comparison."""
from __future__ import annotations

import numpy as np
import pytest

from kb.lexical import BM25Index
from kb.records import Chunk, Document, Metadata
from kb.rerank import Layout, add_document_match, cited_articles_first, prefer_higher_law, prefer_local_texts


def document(doc_id: str, title: str, doc_type: str, place: tuple[str, ...] = ()) -> Document:
    return Document(doc_id, f"/{doc_id}", title, "", "", "txt", meta=Metadata(place=place, doc_type=doc_type))


def chunk(doc_id: str, ordinal: int, article: str = "") -> Chunk:
    return Chunk(doc_id, ordinal, 0, 1, "", article=article)


DOCUMENTS = [
    document("laws/ldht.md", "中华人民共和国劳动合同法(2012-12-28)", "法律", ("全国",)),
    document("laws/ssd.md", "劳动合同法实施条例", "行政法规", ("全国",)),
    document("laws/zj.md", "浙江省企业工资集体协商条例", "地方性法规", ("浙江省",)),
    document("policies/notice.txt", "关于做好欠薪治理工作的通知", "通知"),
    document("policies/x.txt", "办法", "通知"),  # a title too short to be cited by name
]
# Passages of one document need not be contiguous in row order: rows_of_doc gathers them.
CHUNKS = [
    chunk("laws/ldht.md", 0, "第三十七条"),
    chunk("laws/ldht.md", 1, "第三十八条至第三十九条"),
    chunk("laws/ssd.md", 0, "第十条"),
    chunk("laws/zj.md", 0, "第三十八条"),
    chunk("policies/notice.txt", 0),
    chunk("laws/ldht.md", 2, "第四十条"),
    chunk("policies/x.txt", 0),
]


def law_title(title: str) -> str:
    return title.removesuffix("(2012-12-28)").removeprefix("中华人民共和国")


@pytest.fixture
def layout() -> Layout:
    return Layout.build(DOCUMENTS, CHUNKS, np.array([4, 6, 2, 3, 5, 1, 2], dtype=np.int32), law_title)


def test_layout_describes_documents_and_their_passages(layout):
    assert layout.position["laws/zj.md"] == 2
    assert layout.doc_of_passage.tolist() == [0, 0, 1, 2, 3, 0, 4]
    assert [rows.tolist() for rows in layout.rows_of_doc] == [[0, 1, 5], [2], [3], [4], [6]]
    assert layout.legal_rank.tolist() == [0, 1, 3, 0, 0]
    assert layout.outside_hierarchy.tolist() == [False, False, False, True, True]
    assert layout.national.tolist() == [True, True, False, False, False]
    assert dict(layout.docs_by_title) == {"劳动合同法": (0,), "劳动合同法实施条例": (1,),
                                          "浙江省企业工资集体协商条例": (2,), "关于做好欠薪治理工作的通知": (3,)}
    assert layout.articles[1] == "第三十八条至第三十九条"
    assert layout.average_doc_tokens == 23 / 5


def test_empty_layout():
    empty = Layout.build([], [], np.zeros(0, dtype=np.int32), law_title)
    assert empty.doc_of_passage.tolist() == []
    assert prefer_higher_law([], "问题", empty, 0.03) == []
    assert prefer_local_texts([], "各地的规定比较", empty, 0.09) == []
    assert cited_articles_first([], "劳动合同法第三十八条", empty, None) == []


def test_cited_article_comes_first_just_above_the_best_score(layout):
    ranked = [(4, 0.5), (3, 0.4), (1, 0.3), (0, 0.2)]
    assert cited_articles_first(ranked, "劳动合同法第三十八条", layout, None) == \
        [(1, 0.5 + 1e-6), (4, 0.5), (3, 0.4), (0, 0.2)]
    # Two articles: each passage covering one, in passage order, scores falling by 1e-6.
    both = cited_articles_first(ranked, "劳动合同法第三十七条、第40条", layout, None)
    assert both == [(0, 0.5 + 2e-6), (5, 0.5 + 1e-6), (4, 0.5), (3, 0.4), (1, 0.3)]
    # An article outside the ranked list comes in too; with nothing ranked its score starts at 0.
    assert cited_articles_first([], "劳动合同法第四十条", layout, None) == [(5, 1e-6)]


def test_only_the_longest_cited_title_counts(layout):
    ranked = [(0, 0.9), (2, 0.1)]
    assert cited_articles_first(ranked, "劳动合同法实施条例第十条", layout, None) == [(2, 0.9 + 1e-6), (0, 0.9)]


def test_cited_articles_keep_to_the_mask_and_need_a_title_and_a_number(layout):
    ranked = [(4, 0.5), (1, 0.3)]
    mask = np.array([True, False, True, True, True, True, True])
    assert cited_articles_first(ranked, "劳动合同法第三十八条", layout, mask) is ranked
    assert cited_articles_first(ranked, "劳动合同法", layout, None) is ranked  # no 条
    assert cited_articles_first(ranked, "第三十八条", layout, None) is ranked  # no law named
    assert cited_articles_first(ranked, "劳动合同法第条", layout, None) is ranked  # no number


def test_higher_law_first_unless_a_place_is_named(layout):
    fused = [(3, 0.50), (2, 0.49), (0, 0.47), (4, 0.46)]
    rescored = prefer_higher_law(fused, "集体协商代表受到哪些保护", layout, 0.03)
    assert [row for row, _ in rescored] == [0, 4, 2, 3]
    assert rescored[2:] == [(2, pytest.approx(0.49 - 0.03)), (3, pytest.approx(0.50 - 0.09))]
    assert prefer_higher_law(fused, "浙江 集体协商代表受到哪些保护", layout, 0.03) is fused
    # Nothing below a statute among the candidates: nothing to do.
    unchanged = [(0, 0.5), (4, 0.4)]
    assert prefer_higher_law(unchanged, "问题", layout, 0.03) is unchanged


def test_a_comparison_puts_each_places_rule_before_the_national_texts(layout):
    # Rows: 劳动合同法 and its 实施条例 (national), a notice (no place), 浙江's regulation.
    fused = [(0, 0.50), (2, 0.45), (4, 0.44), (3, 0.40)]
    for query in ("各地企业工资集体协商条例对协商代表的保护有何不同", "浙江、河南、山东工资集体协商代表保护比较"):
        # Not statute-first: the comparison wants every place's own rule.
        assert prefer_higher_law(fused, query, layout, 0.03) is fused
        rescored = prefer_local_texts(fused, query, layout, 0.09)
        assert [row for row, _ in rescored] == [4, 0, 3, 2]
        assert rescored[1] == (0, pytest.approx(0.50 - 0.09))
    # A question that compares nothing, or names one place, keeps its order.
    for query in ("集体协商代表受到哪些保护", "浙江 集体协商代表受到哪些保护", "国家要求各地人社部门做好哪些工作"):
        assert prefer_local_texts(fused, query, layout, 0.09) is fused
    # No national text among the candidates: nothing to do.
    local = [(3, 0.5), (4, 0.4)]
    assert prefer_local_texts(local, "各地的规定比较", layout, 0.09) is local


def test_higher_law_keeps_the_order_of_ties(layout):
    fused = [(3, 1.0), (4, 0.5), (0, 0.5), (2, 0.75), (6, 0.5)]  # rows 3 and 2: 3 and 1 ranks below a law
    assert prefer_higher_law(fused, "问题", layout, 0.25) == [(4, 0.5), (0, 0.5), (2, 0.5), (6, 0.5), (3, 0.25)]


@pytest.fixture
def bm25() -> BM25Index:
    # Tokens per passage (row order as CHUNKS); the notice holds every bigram of the query.
    return BM25Index.build([["劳动", "合同"], ["劳动", "合同", "解除"], ["条例"], ["集体", "协商"],
                            ["欠薪", "治理", "工作"], ["劳动"], ["办法"]])


def test_document_match_lifts_a_notice_that_covers_the_query(layout, bm25):
    fused = [(0, 0.30), (1, 0.29), (4, 0.28), (6, 0.27)]
    tokens = ["欠", "薪", "欠薪", "治理"]
    rescored = add_document_match(fused, tokens, layout, bm25, 1.0, 50, 10)
    # The notice ranks first by BM25 among the candidates' documents and covers both bigrams: 1 / (10 + 1).
    assert rescored[0] == (4, pytest.approx(0.28 + 1 / 11))
    assert rescored[1:] == [(0, 0.30), (1, 0.29), (6, 0.27)]  # no bonus: a statute; a notice without the words
    half = add_document_match(fused, ["欠薪", "缺席"], layout, bm25, 2.0, 50, 10)
    assert dict(half)[4] == pytest.approx(0.28 + 2.0 * 0.5 / 11)


def test_document_match_needs_bigrams_and_a_document_outside_the_hierarchy(layout, bm25):
    fused = [(0, 0.30), (4, 0.28)]
    assert add_document_match(fused, ["欠", "薪"], layout, bm25, 1.0, 50, 10) is fused
    # Only the first `candidates` passages choose the documents: here the statute alone.
    assert add_document_match(fused, ["欠薪"], layout, bm25, 1.0, 1, 10) is fused
    assert add_document_match([], ["欠薪"], layout, bm25, 1.0, 50, 10) == []
