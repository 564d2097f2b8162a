"""Hybrid fusion settings side by side: RRF weight of the vector list and RRF k, on one eval set.

Usage: python bench/fusion.py --index DIR --set policies|laws [--weights 0.3 0.5 1] [--rrf-k 20 60]
                              [--depth 300] [--limit N]

Runs every query once in bm25 and once in vector mode (top `depth` passages each, as `kb eval` asks
for 300), then fuses the two lists with kb.fusion.reciprocal_rank_fusion for every combination of
vector weight (BM25's weight is 1) and RRF k, and prints `kb eval`'s metrics for each, plus bm25 and
vector alone. Data comes from $KB_SHARED, else ../shared beside the project.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kb.eval import METRICS, evaluate, load_eval_folder  # noqa: E402
from kb.fusion import reciprocal_rank_fusion  # noqa: E402
from kb.knowledgebase import KnowledgeBase  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--set", required=True, choices=("policies", "laws"))
    parser.add_argument("--weights", type=float, nargs="+", default=[0.2, 0.3, 0.5, 0.7, 1.0, 1.5])
    parser.add_argument("--rrf-k", type=int, nargs="+", default=[10, 30, 60, 100])
    parser.add_argument("--depth", type=int, default=300)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    shared = Path(os.environ.get("KB_SHARED", ROOT.parent / "shared"))
    data = load_eval_folder(shared / "eval" / args.set).head(args.limit or None)
    kb = KnowledgeBase.load(args.index)
    documents = {doc.id: doc.text for doc in kb.documents}
    runs = {mode: {text: kb.search(text, mode=mode, k=args.depth, terms=False) for text in data.queries.values()}
            for mode in ("bm25", "vector")}
    print(f"{args.set}: {len(data.queries)} queries; index {args.index}: {len(kb.chunks)} passages; depth {args.depth}")
    print("| fusion | " + " | ".join(METRICS) + " |")
    print("|---" * (len(METRICS) + 1) + "|")

    def row(label: str, search) -> None:
        result = evaluate(search, data, documents)
        print(f"| {label} | " + " | ".join(f"{result[m]:.3f}" for m in METRICS) + " |", flush=True)

    for mode in ("bm25", "vector"):
        row(mode, lambda text, k, mode=mode: runs[mode][text][:k])
    for rrf_k in args.rrf_k:
        for weight in args.weights:
            def fused(text: str, k: int, weight=weight, rrf_k=rrf_k):
                by_key = {}
                rankings = {}
                for mode in ("bm25", "vector"):
                    hits = runs[mode][text]
                    rankings[mode] = [(hit.doc_id, hit.ordinal) for hit in hits]
                    by_key.update(((hit.doc_id, hit.ordinal), hit) for hit in hits)
                order = reciprocal_rank_fusion(rankings, {"bm25": 1.0, "vector": weight}, rrf_k)[:k]
                return [by_key[key] for key, _ in order]
            row(f"RRF k {rrf_k}, vector weight {weight:g}", fused)


if __name__ == "__main__":
    main()
