"""Compare BM25 tokenizers on the shared eval sets: document-level nDCG@10, Recall@10, MRR@10, speed.

Usage: python bench/tokenizers.py [--set policies|laws|both] [--tokenizers a,b] [--experimental]
                                  [--overlap N] [--rank-bm25 N]

Each corpus document is cut into naive fixed windows (400 characters, no overlap) so the result
does not depend on the project's chunker; one BM25Index per tokenizer is built over them and every
query of the set is run. Passage hits are collapsed to their document, best rank kept: since a
document's windows are contiguous this is the ranking of documents by their best window's score,
ties to the earlier document. The data folder is $KB_SHARED, else ../shared beside the project.

--experimental adds variants that are not registered tokenizers (a stopword list, another union)
to measure whether they would help; --rank-bm25 N times rank_bm25.BM25Okapi against
BM25Index on the first N windows of each set.
"""
from __future__ import annotations

import argparse
import csv
import gc
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kb.lexical import BM25Index  # noqa: E402
from kb.tokenize import DEFAULT_TOKENIZER, TOKENIZERS, normalize, tokenize  # noqa: E402

WINDOW = 400
K = 10
SUFFIXES = {".txt", ".md"}

# A deliberately short list of the most frequent function characters, to measure a stopword list.
STOP_CHARS = frozenset("的了和是在与及或等对把被也就都而之其")


def _stopchars(text: str) -> list[str]:
    return [token for token in tokenize(text) if token not in STOP_CHARS]


def _cjk_jieba_concat(text: str) -> list[str]:
    # The union as plain concatenation: jieba's 1-2 character words double the grams' frequency.
    return tokenize(text, "cjk-bigram") + tokenize(text, "jieba")


# A policy-domain user dictionary of the kind the issue suggests (labour, union and relief-policy
# terms), written from the domain, not from the eval questions. Each occurrence in a text adds the
# whole term as one more token, so an exact multi-character term match scores above its grams.
DOMAIN_TERMS = (
    "产业工人", "产改", "产业工人队伍建设改革", "根治欠薪", "欠薪", "拖欠工资", "农民工工资", "工资支付",
    "集体协商", "工资集体协商", "集体合同", "劳动合同", "劳务派遣", "劳动争议", "劳动仲裁", "劳动保障监察",
    "社会保险", "失业保险", "失业保险金", "工伤保险", "医疗保险", "养老保险", "住房公积金", "最低工资",
    "加班费", "经济补偿", "稳岗补贴", "稳岗返还", "以工代训", "职业技能培训", "技能提升", "就业补贴",
    "创业担保贷款", "复工复产", "返岗复工", "灵活就业", "新就业形态", "职工代表大会", "厂务公开", "工会经费",
    "劳动模范", "高技能人才", "技能人才", "职业资格", "职称评审", "困难职工", "减税降费", "社会保险费",
    "延期缴纳", "阶段性减免",
)
_DOMAIN_PATTERNS = [re.compile(re.escape(term)) for term in DOMAIN_TERMS]


def _with_domain_terms(text: str) -> list[str]:
    normal = normalize(text)
    return tokenize(text) + [term for term, pattern in zip(DOMAIN_TERMS, _DOMAIN_PATTERNS)
                             for _ in pattern.finditer(normal)]


EXPERIMENTAL: dict[str, Callable[[str], list[str]]] = {
    f"x:{DEFAULT_TOKENIZER}-stopchars": _stopchars,
    "x:cjk-bigram+jieba-all": _cjk_jieba_concat,
    f"x:{DEFAULT_TOKENIZER}+domain-terms": _with_domain_terms,
}


@dataclass
class EvalSet:
    """Windows of one corpus, with the queries and relevance judgements of its eval set."""

    name: str
    doc_ids: list[str]
    windows: list[str]
    doc_starts: np.ndarray  # index of each document's first window; documents without text left out
    queries: dict[str, str]
    qrels: dict[str, dict[str, float]]  # query id -> {document id: gain}
    overlap: int = 0  # characters each window shares with the one before

    @property
    def chars(self) -> int:
        return sum(map(len, self.windows))


def shared_path() -> Path:
    return Path(os.environ.get("KB_SHARED", ROOT.parent / "shared")).resolve()


def load_set(shared: Path, name: str, overlap: int = 0) -> EvalSet:
    """Read corpus/<name> as windows (each starting `overlap` characters before the previous one
    ends) and eval/<name>; documents sorted by id for a stable order."""
    corpus = shared / "corpus"
    files = sorted((p for p in (corpus / name).rglob("*") if p.is_file() and p.suffix in SUFFIXES),
                   key=lambda p: p.relative_to(corpus).as_posix())
    doc_ids, windows, starts = [], [], []
    for path in files:
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            continue
        doc_ids.append(path.relative_to(corpus).as_posix())
        starts.append(len(windows))
        windows.extend(text[i:i + WINDOW] for i in range(0, len(text), WINDOW - overlap))
    eval_dir = shared / "eval" / name
    with open(eval_dir / "queries.jsonl", encoding="utf-8") as f:
        queries = {str(q["_id"]): q["text"] for q in map(json.loads, filter(str.strip, f))}
    qrels: dict[str, dict[str, float]] = {}
    with open(eval_dir / "qrels.tsv", encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        next(rows)  # header
        for query_id, corpus_id, score in rows:
            if float(score) > 0:
                qrels.setdefault(query_id, {})[corpus_id] = float(score)
    unknown = {d for rel in qrels.values() for d in rel} - set(doc_ids)
    if unknown:
        print(f"warning: {len(unknown)} judged documents not in corpus/{name}, e.g. {sorted(unknown)[:3]}",
              file=sys.stderr)
    return EvalSet(name, doc_ids, windows, np.asarray(starts, dtype=np.int64), queries, qrels, overlap)


def metrics(ranked: list[str], relevant: dict[str, float]) -> tuple[float, float, float]:
    """nDCG@K (linear gain), Recall@K, MRR@K of one ranked document list."""
    ranked = ranked[:K]
    dcg = sum(relevant.get(d, 0.0) / math.log2(rank + 2) for rank, d in enumerate(ranked))
    ideal = sorted(relevant.values(), reverse=True)[:K]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    found = sum(1 for d in ranked if d in relevant)
    first = next((rank for rank, d in enumerate(ranked, start=1) if d in relevant), None)
    return dcg / idcg, found / len(relevant), (1.0 / first if first else 0.0)


def run_tokenizer(data: EvalSet, name: str, tokenizer: Callable[[str], list[str]]) -> dict:
    """Build one index over the windows, run every judged query, return metrics and timings."""
    tokenize_seconds = 0.0

    def tokenized() -> Iterator[list[str]]:
        # A generator: the laws corpus as token lists would need gigabytes; the index keeps ids.
        nonlocal tokenize_seconds
        for window in data.windows:
            start = time.perf_counter()
            tokens = tokenizer(window)
            tokenize_seconds += time.perf_counter() - start
            yield tokens

    tokenizer("warm up")  # jieba loads its dictionary on first use; not a per-character cost
    start = time.perf_counter()
    index = BM25Index.build(tokenized())
    build_seconds = time.perf_counter() - start - tokenize_seconds

    totals = np.zeros(3)
    judged = [qid for qid in data.queries if qid in data.qrels]
    start = time.perf_counter()
    for qid in judged:
        scores = index.scores(tokenizer(data.queries[qid]))
        best = np.maximum.reduceat(scores, data.doc_starts) if len(scores) else scores
        order = np.lexsort((np.arange(len(best)), -best))[:K]
        ranked = [data.doc_ids[i] for i in order if best[i] > 0]
        totals += metrics(ranked, data.qrels[qid])
    query_seconds = time.perf_counter() - start
    result = {
        "tokenizer": name, "ndcg": totals[0] / len(judged), "recall": totals[1] / len(judged),
        "mrr": totals[2] / len(judged), "tokenize_s": tokenize_seconds,
        "mchars_s": data.chars / tokenize_seconds / 1e6, "build_s": build_seconds,
        "query_ms": 1000 * query_seconds / len(judged), "vocabulary": index.vocabulary_size,
        "postings": int(index.to_arrays()[0]["postings_doc"].size), "queries": len(judged),
    }
    del index
    gc.collect()
    return result


def print_table(data: EvalSet, results: list[dict]) -> None:
    print(f"\n## {data.name}: {len(data.doc_ids)} documents, {len(data.windows)} windows of {WINDOW} chars"
          f" ({data.overlap} overlapping), "
          f"{data.chars / 1e6:.1f} M chars, {results[0]['queries']} queries")
    header = (f"| {'tokenizer':<34} | nDCG@10 | Recall@10 | MRR@10 | tokenize s | M chars/s | build s "
              f"| query ms | vocabulary | postings |")
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for r in results:
        print(f"| {r['tokenizer']:<34} | {r['ndcg']:7.3f} | {r['recall']:9.3f} | {r['mrr']:6.3f} "
              f"| {r['tokenize_s']:10.1f} | {r['mchars_s']:9.2f} | {r['build_s']:7.1f} | {r['query_ms']:8.2f} "
              f"| {r['vocabulary']:10,} | {r['postings']:8.2e} |")
    sys.stdout.flush()


def compare_rank_bm25(data: EvalSet, n_windows: int, n_queries: int = 50) -> None:
    """Build and query time of rank_bm25.BM25Okapi against BM25Index, same tokens, same scores."""
    from rank_bm25 import BM25Okapi

    tokens = [tokenize(w) for w in data.windows[:n_windows]]
    queries = [tokenize(q) for q in list(data.queries.values())[:n_queries]]
    start = time.perf_counter()
    index = BM25Index.build(tokens)
    ours_build = time.perf_counter() - start
    start = time.perf_counter()
    reference = BM25Okapi(tokens)
    ref_build = time.perf_counter() - start
    start = time.perf_counter()
    ours = [index.scores(q) for q in queries]
    ours_query = (time.perf_counter() - start) / len(queries)
    start = time.perf_counter()
    theirs = [reference.get_scores(q) for q in queries]
    ref_query = (time.perf_counter() - start) / len(queries)
    equal = all(np.allclose(a, b, rtol=1e-5, atol=1e-9) for a, b in zip(ours, theirs))
    print(f"\nrank_bm25 vs BM25Index on {len(tokens)} {data.name} windows ({DEFAULT_TOKENIZER}), "
          f"{len(queries)} queries: build {ref_build:.2f} s vs {ours_build:.2f} s; "
          f"query {1000 * ref_query:.1f} ms vs {1000 * ours_query:.2f} ms ({ref_query / ours_query:.0f}x); "
          f"scores equal: {equal}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=["policies", "laws", "both"], default="both")
    parser.add_argument("--tokenizers", default=",".join(TOKENIZERS),
                        help="comma-separated registered tokenizers (default: all)")
    parser.add_argument("--experimental", action="store_true", help="also run the x: variants")
    parser.add_argument("--overlap", type=int, default=0, metavar="N",
                        help=f"windows start N characters before the previous one ends (0 to {WINDOW - 1})")
    parser.add_argument("--rank-bm25", type=int, default=0, metavar="N",
                        help="time rank_bm25 against BM25Index on the first N windows")
    args = parser.parse_args(argv)

    variants: dict[str, Callable[[str], list[str]]] = {}
    for name in filter(None, args.tokenizers.split(",")):
        if name not in TOKENIZERS:
            parser.error(f"unknown tokenizer {name!r}; known: {', '.join(TOKENIZERS)}")
        variants[name] = lambda text, name=name: tokenize(text, name)
    if args.experimental:
        variants.update(EXPERIMENTAL)

    shared = shared_path()
    if not (shared / "corpus").is_dir():
        sys.exit(f"real data not found at {shared} (set KB_SHARED)")
    for set_name in (["policies", "laws"] if args.set == "both" else [args.set]):
        data = load_set(shared, set_name, args.overlap)
        results = [run_tokenizer(data, name, fn) for name, fn in variants.items()]
        print_table(data, results)
        if args.rank_bm25:
            compare_rank_bm25(data, args.rank_bm25)


if __name__ == "__main__":
    main()
