"""Approximate vector search on real vectors: HNSW Recall@10 against exact search, build time, latency.

Usage: python bench/vector_index.py --index INDEX --queries ../shared/eval/laws/queries.jsonl
                                    [--ef 32 64 128 256] [--m 32] [--limit 300]

Takes the passage vectors of a built index (real model vectors, e.g. the laws index), builds an
HNSW graph over them with kb's VectorIndex, embeds the queries with the index's own model, and
prints for each efSearch: Recall@10 of HNSW against exact search over the same vectors, and the
p50/p95 search time of both, side by side in one run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kb.knowledgebase import KnowledgeBase  # noqa: E402
from kb.vectors import VectorIndex, VectorIndexSettings  # noqa: E402


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--ef", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--limit", type=int, default=300)
    args = parser.parse_args()

    kb = KnowledgeBase.load(args.index)
    vectors = np.asarray(kb.vectors.vectors)
    texts = [json.loads(line)["text"] for line in Path(args.queries).read_text(encoding="utf-8").splitlines()]
    queries = kb.embedder.embed_queries(texts[:args.limit])
    print(f"{len(vectors)} passage vectors ({kb.embedder.model_id}), {len(queries)} queries")

    exact = VectorIndex(vectors, VectorIndexSettings(ann_threshold=len(vectors) + 1))
    truth, exact_times = [], []
    for query in queries:
        (ids, _), seconds = timed(exact.top, query, 10)
        truth.append(set(ids.tolist()))
        exact_times.append(seconds)

    settings = VectorIndexSettings(ann_threshold=0, hnsw_m=args.m)
    approximate, build_seconds = timed(VectorIndex, vectors, settings)
    graph = approximate.ann_bytes()
    print(f"HNSW M={args.m} efConstruction={settings.ef_construction}: built in {build_seconds:.1f} s, "
          f"graph {graph.nbytes / 1e6:.0f} MB")
    print("| search | Recall@10 vs exact | p50 ms | p95 ms |\n|---|---|---|---|")
    print(f"| exact | 1.000 | {1000 * statistics.median(exact_times):.2f} | {1000 * np.percentile(exact_times, 95):.2f} |")
    for ef in args.ef:
        approximate = VectorIndex(vectors, replace(settings, ef_search=ef), ann=graph)  # the same graph
        recall, times = [], []
        for query, expected in zip(queries, truth):
            (ids, _), seconds = timed(approximate.top, query, 10)
            recall.append(len(expected & set(ids.tolist())) / 10)
            times.append(seconds)
        print(f"| HNSW efSearch {ef} | {np.mean(recall):.3f} | {1000 * statistics.median(times):.2f} |"
              f" {1000 * np.percentile(times, 95):.2f} |")


if __name__ == "__main__":
    main()
