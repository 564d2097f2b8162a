"""BM25 query speed and agreement: kb's BM25Index against rank_bm25.BM25Okapi, side by side in one run.

Usage: python bench/bm25.py [--set laws|policies] [--queries 30] [--passages N]

Chunks the whole corpus of the set with kb's chunker and tokenizer (laws: ~71,000 passages),
builds both indexes over the same token lists, runs the set's first queries through both, and
prints build time, per-query time (median, p95), the speed ratio, and whether the top 10 of every
query is identical. The data folder is $KB_SHARED, else ../shared beside the project.
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

from kb.chunk import chunk_document  # noqa: E402
from kb.ingest import discover, read_document  # noqa: E402
from kb.knowledgebase import indexed_text  # noqa: E402
from kb.lexical import BM25Index  # noqa: E402
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
    ours = BM25Index.build(corpus)
    build_ours = time.perf_counter() - started
    started = time.perf_counter()
    theirs = BM25Okapi(corpus)
    build_theirs = time.perf_counter() - started

    times_ours, times_theirs, identical = [], [], 0
    for query in queries:
        tokens = tokenize(query)
        started = time.perf_counter()
        top_ids, _ = ours.top(tokens, 10)
        times_ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        scores = theirs.get_scores(tokens)
        reference = np.argsort(-scores, kind="stable")[:10]
        times_theirs.append(time.perf_counter() - started)
        identical += list(top_ids) == [i for i in reference if scores[i] > 0]

    print(f"{'':22} {'build s':>8} {'query p50 ms':>13} {'query p95 ms':>13}")
    for name, build, times in (("kb BM25Index", build_ours, times_ours), ("rank_bm25 BM25Okapi", build_theirs,
                                                                          times_theirs)):
        print(f"{name:22} {build:8.1f} {1000 * statistics.median(times):13.2f} {1000 * percentile(times, 95):13.2f}")
    print(f"speed-up (median query, incl. top-10 selection): {statistics.median(times_theirs) / statistics.median(times_ours):.0f}x")
    print(f"identical top-10: {identical}/{len(queries)} queries")


if __name__ == "__main__":
    main()
