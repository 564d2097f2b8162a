"""Latency of the extractive answer: by words alone (no model call, as before the model scored
sentences) against the default (the model's query-sentence similarity), on one eval set's questions.

Usage: python bench/answer.py --index DIR --set policies|laws [--limit 40] [--split validation]

For each question: the hybrid search (top 10, as the app shows), then each answer timed with the
query vector already cached by that search and the sentence cache empty, as for a new question in
the app. Prints median and 90th-percentile milliseconds and the candidate sentences embedded per
answer. Data comes from $KB_SHARED, else ../shared beside the project.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kb.answer import Answerer, AnswerSettings, candidate_sentences, extractive_answer  # noqa: E402
from kb.chunk import preamble_end  # noqa: E402
from kb.eval import load_eval_folder  # noqa: E402
from kb.knowledgebase import KnowledgeBase  # noqa: E402
from kb.search import prepare_query  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--set", required=True, choices=("policies", "laws"))
    parser.add_argument("--split", choices=("train", "validation"), default="validation")
    parser.add_argument("--limit", type=int, default=40)
    args = parser.parse_args()
    shared = Path(os.environ.get("KB_SHARED", ROOT.parent / "shared"))
    data = load_eval_folder(shared / "eval" / args.set).split(args.split).head(args.limit)
    kb = KnowledgeBase.load(args.index)
    settings = AnswerSettings()

    def preambles(doc_id: str) -> int:
        return preamble_end(kb.document(doc_id).text)

    words, model, embedded = [], [], []
    for text in data.queries.values():
        hits = kb.search(text, k=10)
        query = prepare_query(text)
        started = time.perf_counter()
        extractive_answer(query, hits, settings, preambles=preambles)
        words.append(time.perf_counter() - started)
        answerer = Answerer(kb.embedder, kb.searcher.query_vector, preambles)  # an empty sentence cache
        started = time.perf_counter()
        answerer.answer(query, hits, settings)
        model.append(time.perf_counter() - started)
        embedded.append(min(settings.candidates, len(candidate_sentences(query, hits, settings.from_top, preambles))))
    print(f"{len(words)} questions of {args.set} ({args.split}), index {args.index}, model {kb.embedder.model_id}")
    print("| answer | median ms | p90 ms | sentences embedded (median) |")
    print("|---|---|---|---|")
    for label, times, count in (("words only (no model)", words, 0), ("model + words (default)", model,
                                                                        statistics.median(embedded))):
        ordered = sorted(times)
        print(f"| {label} | {1000 * statistics.median(ordered):.0f} | {1000 * ordered[int(0.9 * (len(ordered) - 1))]:.0f}"
              f" | {count:g} |")


if __name__ == "__main__":
    main()
