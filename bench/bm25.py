"""BM25 query speed and agreement: kb's BM25Index against rank_bm25.BM25Okapi, side by side in one run.

Usage: python bench/bm25.py [--set laws|policies] [--queries 30] [--passages N] [--repeat R] [--k 10]

Chunks the whole corpus of the set with kb's chunker and tokenizer (laws: ~71,000 passages),
builds both indexes over the same token lists, runs the set's first queries through both, and
prints build time, per-query time (median, p95), the speed ratio, and whether the top 10 of every
query is identical. kb's index runs twice: top() as shipped (MaxScore pruning of frequent terms)
and with pruning off (every posting of every query term read), which must give the same top 10;
and top_tiered() as hybrid search calls it (single_characters=False: BM25Index.top_tiered), whose
cost over top() is what the lexical-noise rule adds to a query.
--repeat R indexes the passages R times over (laws x 14 ≈ 1,000,000 passages) and leaves rank_bm25
out (it would need hours). The data folder is $KB_SHARED, else ../shared beside the project.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kb.chunk import chunk_document, indexed_text  # noqa: E402
from kb.ingest import discover, read_document  # noqa: E402
from kb.lexical import BM25Index, count_terms  # noqa: E402
from kb.tokenize import tokenize  # noqa: E402


def passages(corpus: Path, limit: int | None) -> list[list[str]]:
    sources, _ = discover([corpus])
    tokens = []
    for source in sources:
        doc = read_document(source)
        for chunk in chunk_document(doc):
            tokens.append(tokenize(indexed_text(chunk, doc.title)))
            if limit and len(tokens) >= limit:
                return tokens
    return tokens


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("laws", "policies"), default="laws")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--passages", type=int, default=None, help="only the first N passages")
    parser.add_argument("--k", type=int, default=10, help="passages per query (hybrid search asks BM25 for 100)")
    parser.add_argument("--repeat", type=int, default=1, help="index the passages R times (no rank_bm25)")
    args = parser.parse_args()
    shared = Path(os.environ.get("KB_SHARED", ROOT.parent / "shared"))
    from rank_bm25 import BM25Okapi

    started = time.perf_counter()
    corpus = passages(shared / "corpus" / args.set, args.passages)
    print(f"{args.set}: {len(corpus)} passages, {sum(map(len, corpus))} tokens "
          f"(parse+chunk+tokenize {time.perf_counter() - started:.1f} s)")
    queries = [json.loads(line)["text"] for line in
               (shared / "eval" / args.set / "queries.jsonl").read_text(encoding="utf-8").splitlines()[:args.queries]]

    started = time.perf_counter()
    ours = BM25Index.from_counts([count_terms(corpus)] * args.repeat)
    build_ours = time.perf_counter() - started
    arrays, vocabulary = ours.to_arrays()  # the same arrays, not copies
    unpruned = BM25Index(arrays["term_ptr"], arrays["postings_doc"], arrays["postings_tf"], arrays["doc_len"],
                         vocabulary, term_ids=ours.term_ids, weights=arrays["weights"])
    unpruned.prune_postings = 1 << 62
    print(f"indexed {ours.n_passages} passages, {ours.n_postings} postings")
    theirs = None
    if args.repeat == 1:
        started = time.perf_counter()
        theirs = BM25Okapi(corpus)
        build_theirs = time.perf_counter() - started

    times = {"kb BM25Index": [], "kb, tiered (hybrid)": [], "kb, pruning off": [], "rank_bm25 BM25Okapi": []}
    identical, same_as_unpruned = 0, 0
    for query in queries:
        tokens = tokenize(query)
        ours.top(tokens, args.k)  # untimed: both runs then find the postings in the CPU caches alike
        started = time.perf_counter()
        top_ids, _ = ours.top(tokens, args.k)
        times["kb BM25Index"].append(time.perf_counter() - started)
        started = time.perf_counter()
        ours.top_tiered(tokens, args.k, single_characters=False)
        times["kb, tiered (hybrid)"].append(time.perf_counter() - started)
        started = time.perf_counter()
        full_ids, _ = unpruned.top(tokens, args.k)
        times["kb, pruning off"].append(time.perf_counter() - started)
        same_as_unpruned += list(top_ids) == list(full_ids)
        if theirs is not None:
            started = time.perf_counter()
            scores = theirs.get_scores(tokens)
            reference = np.argsort(-scores, kind="stable")[:args.k]
            times["rank_bm25 BM25Okapi"].append(time.perf_counter() - started)
            identical += list(top_ids) == [i for i in reference if scores[i] > 0]

    builds = {"kb BM25Index": build_ours, "kb, tiered (hybrid)": build_ours, "kb, pruning off": build_ours,
              "rank_bm25 BM25Okapi": build_theirs if theirs is not None else float("nan")}
    print(f"{'':22} {'build s':>8} {'query p50 ms':>13} {'query p95 ms':>13}")
    for name, spent in times.items():
        if spent:
            print(f"{name:22} {builds[name]:8.1f} {1000 * statistics.median(spent):13.2f} "
                  f"{1000 * percentile(spent, 95):13.2f}")
    base = statistics.median(times["kb BM25Index"])
    print(f"tiered (what hybrid fuses: passages with only single characters of the query left out) against "
          f"top(), median query: {statistics.median(times['kb, tiered (hybrid)']) / base:.2f}x the time")
    print(f"pruning speed-up (median query): {statistics.median(times['kb, pruning off']) / base:.1f}x; "
          f"identical top-{args.k} with and without pruning: {same_as_unpruned}/{len(queries)} queries")
    if theirs is not None:
        print(f"speed-up over rank_bm25 (median query, incl. top-10 selection): "
              f"{statistics.median(times['rank_bm25 BM25Okapi']) / base:.0f}x")
        print(f"identical top-{args.k} with rank_bm25: {identical}/{len(queries)} queries")


if __name__ == "__main__":
    main()
