"""Evaluation: BEIR loading keeps every relevant document; metrics on known rankings."""
import json
import math

import pytest

from kb.errors import BadEvalData
from kb.eval import EvalSet, evaluate, load_eval_set
from kb.records import Hit


def hit(doc_id: str, start: int = 0, end: int = 10, rank: int = 1) -> Hit:
    return Hit(rank=rank, score=1.0, doc_id=doc_id, title="", path="", text="", start=start, end=end, page=None,
               section="", article="", ordinal=0)


def fixed_search(rankings: dict[str, list[Hit]]):
    return lambda query, k: rankings[query][:k]


def test_laws_qrels_keep_all_relevant_documents(shared):
    folder = shared / "eval" / "laws"
    data = load_eval_set(folder / "queries.jsonl", folder / "qrels.tsv", folder / "evidence.jsonl")
    lines = [line.split("\t") for line in (folder / "qrels.tsv").read_text(encoding="utf-8").splitlines()[1:] if line]
    assert sum(len(rels) for rels in data.qrels.values()) == len({(q, c) for q, c, s in lines if float(s) > 0})
    assert max(len(rels) for rels in data.qrels.values()) > 1


def test_metrics_on_a_query_with_several_relevant_documents():
    documents = {"laws/a.md": "x" * 100, "laws/b.md": "答案在这里" * 10, "laws/c.md": "y" * 100, "laws/d.md": "z"}
    data = EvalSet(queries={"q": "问题"}, qrels={"q": {"a.md": 1.0, "b.md": 1.0, "missing.md": 1.0}},
                   evidence={"q": [("b.md", "答案在这里")]})
    ranking = [hit("laws/c.md"), hit("laws/b.md", 0, 5), hit("laws/c.md"), hit("laws/a.md"), hit("laws/d.md")]
    result = evaluate(fixed_search({"问题": ranking}), data, documents)
    # documents in order c, b, a, d: relevant at ranks 2 and 3, three relevant in all (one not indexed)
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert result["nDCG@10"] == pytest.approx(dcg / ideal)
    assert result["Recall@10"] == pytest.approx(2 / 3)
    assert result["MRR@10"] == pytest.approx(1 / 2)
    assert result["Success@1"] == 0 and result["Success@5"] == 1
    assert result["evidence_located"] == 1


def test_evidence_overlap_is_checked_by_span_not_by_document():
    documents = {"p/a.txt": "前言。" * 50 + "补贴标准为每人500元。"}
    data = EvalSet({"q": "补贴标准"}, {"q": {"a.txt": 1}}, {"q": [("a.txt", "补贴标准为每人500元。")]})
    elsewhere = evaluate(fixed_search({"补贴标准": [hit("p/a.txt", 0, 30)]}), data, documents)
    assert elsewhere["MRR@10"] == 1 and elsewhere["Success@10"] == 0
    on_it = evaluate(fixed_search({"补贴标准": [hit("p/a.txt", 140, 160)]}), data, documents)
    assert on_it["Success@1"] == 1


def test_bad_files_give_line_numbers(tmp_path):
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"_id": "1", "text": "欠薪"}) + "\n{oops\n", encoding="utf-8")
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\n1\ta.txt\t1\n", encoding="utf-8")
    with pytest.raises(BadEvalData, match="queries.jsonl:2"):
        load_eval_set(queries, qrels)
    queries.write_text(json.dumps({"_id": "1", "text": "欠薪"}) + "\n", encoding="utf-8")
    qrels.write_text("query-id\tcorpus-id\tscore\n1\ta.txt\n", encoding="utf-8")
    with pytest.raises(BadEvalData, match="qrels.tsv:2"):
        load_eval_set(queries, qrels)


def test_the_split_is_fixed_by_query_id_disjoint_and_about_one_in_five(tmp_path):
    ids = [f"q{n}" for n in range(500)]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"_id": qid, "text": "工资集体协商", "kind": "k" + qid[-1]},
                                                         ensure_ascii=False) + "\n" for qid in ids), encoding="utf-8")
    (tmp_path / "r.tsv").write_text("".join(f"{qid}\tdoc.md\t1\n" for qid in ids), encoding="utf-8")
    data = load_eval_set(tmp_path / "q.jsonl", tmp_path / "r.tsv")
    train, validation = data.split("train"), data.split("validation")
    assert set(train.queries).isdisjoint(validation.queries)
    assert set(train.queries) | set(validation.queries) == set(ids)
    assert 70 <= len(validation.queries) <= 130
    assert set(validation.qrels) == set(validation.queries) and validation.kinds.keys() == validation.queries.keys()
    # reordered and with new queries added, no query changes part
    (tmp_path / "q2.jsonl").write_text("".join(json.dumps({"_id": qid, "text": "欠薪"}) + "\n"
                                               for qid in reversed(ids + ["new1", "new2"])), encoding="utf-8")
    (tmp_path / "r2.tsv").write_text("".join(f"{qid}\tdoc.md\t1\n" for qid in ids + ["new1", "new2"]), encoding="utf-8")
    again = load_eval_set(tmp_path / "q2.jsonl", tmp_path / "r2.tsv").split("validation")
    assert set(validation.queries) <= set(again.queries)
    with pytest.raises(BadEvalData, match="split 'test'"):
        data.split("test")


def test_answer_at_1_counts_the_first_quoted_sentence_on_the_evidence_and_kinds_get_their_own_means():
    from kb.eval import ALL, evaluate_by_kind, kind_tables, markdown_table
    from kb.records import AnswerSentence

    documents = {"p/a.txt": "前言。" * 50 + "补贴标准为每人500元。", "p/b.txt": "各地标准不同。杭州为每人800元。"}
    data = EvalSet({"q1": "补贴标准", "q2": "各地标准"}, {"q1": {"a.txt": 1}, "q2": {"b.txt": 1}},
                   {"q1": [("a.txt", "补贴标准为每人500元。")], "q2": [("b.txt", "杭州为每人800元。")]},
                   {"q1": "colloquial", "q2": "compare"})
    search = fixed_search({"补贴标准": [hit("p/a.txt", 140, 162)], "各地标准": [hit("p/b.txt", 0, 16)]})
    quoted = {"补贴标准": AnswerSentence("补贴标准为每人500元。", 1, "p/a.txt", 150, 162),
              "各地标准": AnswerSentence("各地标准不同。", 1, "p/b.txt", 0, 7)}  # beside the evidence
    results = evaluate_by_kind(search, data, documents, answer=lambda query, hits: [quoted[query]])
    assert results[ALL]["Answer@1"] == 0.5 and results[ALL]["Success@1"] == 1
    assert results["colloquial"]["Answer@1"] == 1 and results["compare"]["Answer@1"] == 0
    assert results["compare"]["queries"] == 1 and set(results) == {ALL, "colloquial", "compare"}
    assert evaluate_by_kind(search, data, documents, answer=lambda query, hits: [])[ALL]["Answer@1"] == 0
    assert "Answer@1" not in evaluate(search, data, documents)
    table = markdown_table({"hybrid": results[ALL]})
    assert table[0].endswith("| Success@10 | Answer@1 |") and table[2].endswith("| 1.000 | 0.500 |")
    assert "kind `compare` (1 queries):" in kind_tables({"hybrid": results})
