"""kb.lexical.BM25Index: same scores as rank_bm25.BM25Okapi on Chinese passages, top-k, masks, round trip.

The passages are overlapping windows over the demo report and the texts of tests/corpus, the queries
questions about them: many shared and many rare terms, as in an index of policy documents.
"""
import json

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from kb.lexical import TINY_INDEX_IDF, BM25Index
from kb.tokenize import tokenize
from tests.conftest import DEMO_REPORT, TAX_ARREARS, WAGE_ARREARS, synthetic_files, without_arrears

WIDTH, STRIDE = 200, 25


def window_texts() -> list[str]:
    """200-character windows every 25 characters of each text (the HTML report's markup left out)."""
    windows = []
    for path in [DEMO_REPORT, *synthetic_files()]:
        if path.suffix == ".html":
            continue
        text = path.read_text(encoding="utf-8")
        windows.extend(text[i:i + WIDTH] for i in range(0, max(len(text) - WIDTH, 0) + 1, STRIDE))
    return windows


N_WINDOWS = len(window_texts())
QUESTIONS = (
    "江门市如何推进产业工人队伍建设改革？",
    "在产业工人中发展党员有哪些做法？",
    "企业工资集体协商中职工方协商代表受到哪些保护",
    "职工方协商代表由谁选派？",
    "工资集体协商一般包括哪些内容",
    "工资协议草案需要经过职工代表大会讨论吗？",
    "用人单位拖欠劳动者工资怎么办",
    "工资支付日遇到法定休假日应当怎样支付？",
    "企业生产经营困难可以延期支付工资吗",
    "最低工资标准由哪一级政府规定？",
    "劳动者享有哪些劳动权利",
    "工程建设领域农民工工资专用账户和银行代发制度",
    "老板长期不发薪水可以向哪里投诉",
    "疫情防控期间个人取得的防疫补助免征个人所得税吗",
    "小规模纳税人增值税征收率减按百分之一征收",
    "企业捐赠防疫物资能否在税前全额扣除？",
    "温州市支持企业复工复产的措施有哪些",
    "不裁员少裁员的企业可以返还失业保险费吗",
    "工资专项集体合同期满前可以提出续订吗",
    "工资协议报送人力资源社会保障部门审查多久生效",
)


@pytest.fixture(scope="module")
def passages() -> list[list[str]]:
    windows = window_texts()
    assert len(windows) >= 60  # the grouped-score test reads the first sixty
    return [tokenize(w) for w in windows]


@pytest.fixture(scope="module")
def queries() -> list[list[str]]:
    return [tokenize(t) for t in QUESTIONS]


@pytest.fixture(scope="module")
def index(passages) -> BM25Index:
    return BM25Index.build(passages)


@pytest.fixture(scope="module")
def reference(passages) -> BM25Okapi:
    return BM25Okapi(passages)


def expected_top(scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[int]:
    """The specified order: score > 0, best first, ties to the lower index."""
    keep = [i for i in range(len(scores)) if scores[i] > 0 and (allowed is None or allowed[i])]
    return sorted(keep, key=lambda i: (-scores[i], i))[:k]


def test_sizes(index, passages):
    assert index.n_passages == N_WINDOWS
    assert index.vocabulary_size == len({t for p in passages for t in p})
    assert index.params() == {"k1": 1.5, "b": 0.75, "epsilon": 0.25}


def test_scores_equal_rank_bm25(index, reference, queries):
    for query in queries:
        ours = index.scores(query)
        assert ours.shape == (N_WINDOWS,)
        np.testing.assert_allclose(ours, reference.get_scores(query), rtol=1e-5, atol=1e-9)


def test_top_k_order_equals_rank_bm25_ranking(index, reference, queries):
    for query in queries:
        theirs = reference.get_scores(query)
        best, scores = index.top(query, k=10)
        assert list(best) == expected_top(theirs, 10)
        np.testing.assert_allclose(scores, theirs[best], rtol=1e-5)
        assert np.all(np.diff(scores) <= 0)


def test_duplicated_query_tokens_count_twice(index, reference, queries):
    query = queries[0] + queries[0][:3]
    np.testing.assert_allclose(index.scores(query), reference.get_scores(query), rtol=1e-5, atol=1e-9)
    assert not np.allclose(index.scores(query), index.scores(queries[0]))


def test_unknown_tokens_add_nothing(index, reference, queries):
    query = queries[1] + ["没有这个词", "zzz-unknown"]
    np.testing.assert_array_equal(index.scores(query), index.scores(queries[1]))
    np.testing.assert_allclose(index.scores(query), reference.get_scores(query), rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(index.scores(["zzz-unknown"]), np.zeros(N_WINDOWS))


def test_pruned_top_equals_full_ranking(passages, reference, queries, monkeypatch):
    """MaxScore pruning (skipping frequent terms' postings that cannot change the top k) returns
    exactly rank_bm25's top k; with the threshold lowered it prunes on most of these real queries."""
    index = BM25Index.build(passages)
    index.prune_postings = 1
    full_terms = []
    add_term = index.add_term
    monkeypatch.setattr(index, "add_term", lambda *args: (full_terms.append(args[1]), add_term(*args)))
    checks = []
    scored = index.scored
    monkeypatch.setattr(index, "scored", lambda *args: (checks.append(1), scored(*args))[1])
    pruned = 0
    for query in queries:
        for k in (1, 3, 10, 30, 100):
            full_terms.clear()
            theirs = reference.get_scores(query)
            best, scores = index.top(query, k=k)
            assert list(best) == expected_top(theirs, k)
            np.testing.assert_allclose(scores, theirs[best], rtol=1e-5)
            pruned += len(full_terms) < len(set(query) & set(index.term_ids))
        allowed = np.arange(N_WINDOWS) % 3 == 0
        best, _ = index.top(query, k=5, mask=allowed)
        assert list(best) == expected_top(reference.get_scores(query), 5, allowed)
    assert pruned >= len(queries)  # most queries skip at least one term's postings
    # A check that cannot succeed yet is skipped: far fewer passes over all scores than long terms.
    checks.clear()
    long_terms = 0
    for query in queries:
        index.top(query, k=10)
        long_terms += len(index.query_terms(query)) - 1
    assert 0 < len(checks) < long_terms / 2


def test_mask_restricts_top(index, reference, queries):
    allowed = np.zeros(N_WINDOWS, dtype=bool)
    allowed[::3] = True
    for query in queries[:5]:
        best, _ = index.top(query, k=7, mask=allowed)
        assert list(best) == expected_top(reference.get_scores(query), 7, allowed)
        assert allowed[best].all()
    best, _ = index.top(queries[0], k=5, mask=np.zeros(N_WINDOWS, dtype=bool))
    assert len(best) == 0
    with pytest.raises(ValueError, match="mask"):
        index.top(queries[0], k=5, mask=np.ones(N_WINDOWS - 1, dtype=bool))
    with pytest.raises(ValueError, match="mask"):
        index.top(queries[0], k=5, mask=np.ones(N_WINDOWS, dtype=np.int8))


def test_k_edges(index, queries):
    assert len(index.top(queries[0], k=0)[0]) == 0
    best, scores = index.top(queries[0], k=10_000)
    assert len(best) == int(np.count_nonzero(index.scores(queries[0]) > 0))
    assert np.all(scores > 0)
    with pytest.raises(ValueError):
        index.top(queries[0], k=-1)


def test_round_trip_through_npy_files(index, queries, tmp_path):
    arrays, vocabulary = index.to_arrays()
    for name, array in arrays.items():
        np.save(tmp_path / f"{name}.npy", array, allow_pickle=False)
    (tmp_path / "vocabulary.json").write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")

    loaded_arrays = {name: np.load(tmp_path / f"{name}.npy", allow_pickle=False) for name in arrays}
    loaded_vocabulary = json.loads((tmp_path / "vocabulary.json").read_text(encoding="utf-8"))
    loaded = BM25Index.from_arrays(loaded_arrays, loaded_vocabulary, **index.params())
    assert loaded.n_passages == index.n_passages
    assert loaded.vocabulary_size == index.vocabulary_size
    for query in queries:
        np.testing.assert_array_equal(loaded.scores(query), index.scores(query))


def test_other_parameters_match_rank_bm25(passages, queries):
    index = BM25Index.build(passages, k1=1.2, b=0.5, epsilon=0.1)
    reference = BM25Okapi(passages, k1=1.2, b=0.5, epsilon=0.1)
    for query in queries[:5]:
        np.testing.assert_allclose(index.scores(query), reference.get_scores(query), rtol=1e-5, atol=1e-9)
    arrays, vocabulary = index.to_arrays()
    assert BM25Index.from_arrays(arrays, vocabulary, **index.params()).params() == index.params()


def test_inconsistent_arrays_are_rejected(index):
    arrays, vocabulary = index.to_arrays()
    with pytest.raises(ValueError, match="missing"):
        BM25Index.from_arrays({k: v for k, v in arrays.items() if k != "doc_len"}, vocabulary)
    with pytest.raises(ValueError, match="term_ptr"):
        BM25Index.from_arrays(arrays, vocabulary[:-1])
    bad = dict(arrays, postings_doc=arrays["postings_doc"] + N_WINDOWS)
    with pytest.raises(ValueError, match="passage"):
        BM25Index.from_arrays(bad, vocabulary)
    with pytest.raises(ValueError, match="integer"):
        BM25Index.from_arrays(dict(arrays, postings_tf=arrays["postings_tf"].astype(float)), vocabulary)


def test_empty_corpus():
    index = BM25Index.build([])
    assert index.n_passages == 0 and index.vocabulary_size == 0
    assert index.scores(["工资"]).shape == (0,)
    best, scores = index.top(["工资"], k=5)
    assert best.shape == (0,) and scores.shape == (0,)
    arrays, vocabulary = index.to_arrays()
    assert BM25Index.from_arrays(arrays, vocabulary).n_passages == 0


def test_corpus_of_empty_passages():
    # rank_bm25 divides by zero here; an index of blank passages simply matches nothing.
    index = BM25Index.build([[], []])
    np.testing.assert_array_equal(index.scores(["工资"]), np.zeros(2))
    assert len(index.top(["工资"], k=5)[0]) == 0


def test_empty_query(index):
    np.testing.assert_array_equal(index.scores([]), np.zeros(N_WINDOWS))
    best, scores = index.top([], k=5)
    assert best.shape == (0,) and scores.shape == (0,)


def test_small_corpus_negative_idf_and_ties():
    # 工 is in 4 of 5 passages: negative idf, floored at epsilon * average idf like rank_bm25.
    passages = [["工", "资"], ["工", "资"], ["工", "伤"], ["工", "社", "保", "社"], ["医", "保"]]
    index = BM25Index.build(passages)
    reference = BM25Okapi(passages)
    assert reference.idf["工"] == pytest.approx(reference.epsilon * reference.average_idf)
    for query in (["工"], ["工", "资"], ["社"], ["资", "资", "伤"], ["工", "医", "保"]):
        np.testing.assert_allclose(index.scores(query), reference.get_scores(query), rtol=1e-5, atol=1e-12)
    best, scores = index.top(["资"], k=2)
    assert list(best) == [0, 1] and scores[0] == scores[1]  # identical passages: lower index first


def test_accepts_a_generator(passages):
    from_list = BM25Index.build(passages)
    from_generator = BM25Index.build(p for p in passages)
    np.testing.assert_array_equal(from_list.scores(passages[5]), from_generator.scores(passages[5]))


def test_postings_out_of_order_are_rejected():
    index = BM25Index.build([["工", "资"], ["工", "伤"], ["工"]])
    arrays, vocabulary = index.to_arrays()
    assert list(arrays["postings_doc"][:3]) == [0, 1, 2]  # 工's postings
    swapped = arrays["postings_doc"].copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    with pytest.raises(ValueError, match="increasing"):
        BM25Index.from_arrays(dict(arrays, postings_doc=swapped), vocabulary)
    repeated = arrays["postings_doc"].copy()
    repeated[1] = 0
    with pytest.raises(ValueError, match="increasing"):
        BM25Index.from_arrays(dict(arrays, postings_doc=repeated), vocabulary)


def test_grouped_scores_are_bm25_of_the_groups_read_as_one_text(index, reference, passages, queries):
    """Each group of three windows (overlapping parts of one document) scored as one text: Okapi BM25 of the
    summed term counts and lengths, with the passages' idf and the given average length."""
    from collections import Counter

    groups = [np.arange(start, start + 3) for start in range(0, 60, 3)]
    average = 3 * sum(map(len, passages)) / len(passages)
    for query in queries:
        got, term_counts = index.grouped_scores(query, groups, average)
        assert set(term_counts) == {token for token in query if token in reference.idf}
        for i, (group, score) in enumerate(zip(groups, got)):
            counts = Counter(token for row in group for token in passages[row])
            assert all(term_counts[token][i] == counts[token] for token in term_counts)
            length = sum(len(passages[row]) for row in group)
            norm = index.k1 * (1 - index.b + index.b * length / average)
            expected = sum(reference.idf.get(token, 0.0) * counts[token] * (index.k1 + 1) / (counts[token] + norm)
                           for token in query if counts[token])
            assert score == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert got.any()
    assert index.grouped_scores(queries[0], [], average)[0].shape == (0,)


def test_one_passage_index_finds_its_passage():
    # Every term is in every passage: Okapi's idf, log(0.5 / 1.5), is negative, and so is rank_bm25's floor
    # (a quarter of the average idf), which scored the passage below zero.
    passage = tokenize("第五十条　工资应当以货币形式按月支付给劳动者本人。不得克扣或者无故拖欠劳动者的工资。")
    index = BM25Index.build([passage])
    query = tokenize("拖欠工资")
    assert BM25Okapi([passage]).get_scores(query)[0] < 0
    best, scores = index.top(query, k=3)
    assert list(best) == [0] and scores[0] > 0
    # A passage with the terms more often scores higher, even when every term is in every passage.
    richer = BM25Index.build([passage, passage + tokenize("拖欠工资")])
    assert list(richer.top(query, k=3)[0]) == [1, 0]


def test_tiny_index_terms_in_half_the_passages_are_found():
    """Two and four passages: rank_bm25 gives 0 to a term in exactly half of them, and in two passages its floor
    is not positive either (every idf is 0 or below), so it finds nothing for 社会保险. Here those terms take
    the floor (TINY_INDEX_IDF where rank_bm25's is not positive); every other score is rank_bm25's."""
    texts = ["用人单位应当按月支付劳动者工资。", "劳动者依法享受社会保险待遇。",
             "用人单位应当依法缴纳社会保险费。", "住房公积金由单位和职工共同缴存。"]
    for size, floor_positive in ((2, False), (4, True)):
        passages = [tokenize(text) for text in texts[:size]]
        index = BM25Index.build(passages)
        reference = BM25Okapi(passages)
        query = tokenize("社会保险")
        assert not (reference.get_scores(query) > 0).any()
        assert sorted(index.top(query, k=4)[0]) == [1, 2][:size - 1]
        floor = reference.epsilon * reference.average_idf
        assert (floor > 0) == floor_positive
        for term, idf in reference.idf.items():
            if idf <= 0:
                reference.idf[term] = floor if floor_positive else TINY_INDEX_IDF
        for text in ("工资", "社会保险", "用人单位缴纳住房公积金", "劳动者"):
            np.testing.assert_allclose(index.scores(tokenize(text)), reference.get_scores(tokenize(text)),
                                       rtol=1e-5, atol=1e-12)



def test_passages_with_a_longer_query_term_come_before_those_with_its_characters_only():
    others = [paragraph.strip() for path in without_arrears()
              for paragraph in path.read_text(encoding="utf-8").split("\n\n") if paragraph.strip()]
    index = BM25Index.build(tokenize(text) for text in [*others, *WAGE_ARREARS, *TAX_ARREARS])
    wage, tax = {len(others), len(others) + 1}, {len(others) + 2, len(others) + 3}
    query = tokenize("欠薪")
    plain, _ = index.top(query, k=5)
    assert set(plain[:3]) & tax  # plain BM25: 欠 five times in a short answer beats 欠薪 once in a long text
    best, scores = index.top_tiered(query, k=5)
    assert set(best[:2]) == wage and set(best[2:4]) == tax
    assert sorted(best) == sorted(plain) and scores[0] >= scores[1] and scores[2] >= scores[3]
    first, _ = index.top_tiered(query, k=5, single_characters=False)
    assert list(first) == list(best[:2])
    # Under a mask that admits no passage with 欠薪, the single characters are all there is.
    no_wage = np.ones(index.n_passages, dtype=bool)
    no_wage[list(wage)] = False
    for single_characters in (True, False):
        assert set(index.top_tiered(query, k=5, mask=no_wage, single_characters=single_characters)[0][:2]) == tax
    # A one-character query, or a query of longer terms only, ranks as top() ranks.
    for tokens in (["欠"], ["欠薪", "欠税"]):
        np.testing.assert_array_equal(index.top_tiered(tokens, k=5)[0], index.top(tokens, k=5)[0])


def test_tiered_top_on_real_questions(index, passages, queries):
    """Passages holding one of the query's bigrams first, each tier by score: on questions of many words the
    tiers rarely change the plain top k, and never in a way the rule does not call for."""
    for query in [*queries, tokenize("欠薪"), tokenize("工资 欠")]:
        scores = index.scores(query)
        longer = {token for token in query if len(token) > 1}
        keep = [row for row in range(len(scores)) if scores[row] > 0]
        tiered = sorted(keep, key=lambda row: (not longer & set(passages[row]), -scores[row], row))
        for k in (1, 10, 100):
            assert list(index.top_tiered(query, k)[0]) == tiered[:k]
