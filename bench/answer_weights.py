"""Choose the extractive answer's weights offline: embed each question's candidate sentences once,
then score any AnswerSettings weights over the saved similarities (docs/eval.md, Answers).

Usage:
  python bench/answer_weights.py dump --index DIR --set laws|policies [--split train] [--limit 80] --out F.jsonl
  python bench/answer_weights.py grid F.jsonl [F.jsonl ...]

`dump` runs the hybrid search (as kb eval does) and, for the `pool` candidates with the best score
without the model, saves whether the sentence lies on the evidence and the model's similarity of the
question to the sentence alone (`lone`) and to the sentence under its document title and section
(`context`, Candidate.embedded: the shape the index embeds passages in, which the answer embeds).
It appends to --out and skips questions already there, so an interrupted run resumes. `grid` prints
Answer@1 per file for a small grid of weights and both shapes, the default weights first.
Data comes from $KB_SHARED, else ../shared beside the project.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kb.answer import AnswerSettings, candidate_sentences, query_words  # noqa: E402
from kb.eval import PASSAGE_DEPTH, judgements, load_eval_folder  # noqa: E402
from kb.knowledgebase import KnowledgeBase  # noqa: E402
from kb.search import prepare_query  # noqa: E402

SHAPES = ("lone", "context")


def dump(args: argparse.Namespace) -> None:
    shared = Path(os.environ.get("KB_SHARED", ROOT.parent / "shared"))
    data = load_eval_folder(shared / "eval" / args.set).split(args.split).head(args.limit)
    kb = KnowledgeBase.load(args.index)
    _, spans = judgements(data, {doc.id: doc.text for doc in kb.documents})
    out = Path(args.out)
    done = {json.loads(line)["qid"] for line in out.read_text().splitlines()} if out.exists() else set()
    settings = AnswerSettings()
    with out.open("a", encoding="utf-8") as sink:
        for qid, text in data.queries.items():
            if qid in done or not spans[qid]:
                continue  # like kb eval: Answer@1 is over the questions whose evidence is located
            hits = kb.search(text, k=PASSAGE_DEPTH, terms=False)
            query = prepare_query(text)
            rows = []
            if hits and query_words(query):
                candidates = sorted(candidate_sentences(query, hits, settings.from_top),
                                    key=lambda candidate: -candidate.prior(settings))[:args.pool]
                texts = {"lone": [c.sentence.text for c in candidates], "context": [c.embedded for c in candidates]}
                vector = kb.searcher.query_vector(query)
                similarity = {shape: (kb.embedder.embed_passages(texts[shape]) @ vector).tolist() if candidates else []
                              for shape in SHAPES}
                for i, candidate in enumerate(candidates):
                    sentence = candidate.sentence
                    rows.append({"rank": sentence.citation, "overlap": candidate.overlap, "opens": candidate.opens,
                                 "evidence": any(sentence.doc_id == doc and sentence.start < stop and begin < sentence.end
                                                 for doc, begin, stop in spans[qid]),
                                 **{shape: round(similarity[shape][i], 5) for shape in SHAPES}})
            sink.write(json.dumps({"qid": qid, "candidates": rows}, ensure_ascii=False) + "\n")
            sink.flush()


@dataclass(frozen=True)
class Weights:
    overlap: float
    opening: float
    rank: float


def answer_at_1(questions: list[dict], weights: Weights, shape: str, candidates: int) -> float:
    """Answer@1 as extractive_answer would score it: the `candidates` best by words and rank, then the model."""
    right = 0
    for question in questions:
        rows = question["candidates"]
        prior = [weights.overlap * row["overlap"] + weights.opening * row["opens"] - weights.rank * (row["rank"] - 1)
                 for row in rows]
        kept = sorted(range(len(rows)), key=lambda i: -prior[i])[:candidates]
        if kept:
            # max keeps the first of equal scores: extractive_answer's stable tie-break
            right += rows[max(kept, key=lambda i: prior[i] + rows[i][shape])]["evidence"]
    return right / len(questions) if questions else float("nan")


def grid(args: argparse.Namespace) -> None:
    sets = {Path(name).stem: [json.loads(line) for line in Path(name).read_text().splitlines()] for name in args.files}
    default = AnswerSettings()
    print("| shape | overlap | opening | rank | " + " | ".join(f"{name} ({len(q)})" for name, q in sets.items()) + " |")
    print("|---" * (4 + len(sets)) + "|")
    combos = [(default.overlap_weight, default.opening_bonus, default.rank_discount)]
    combos += [combo for combo in itertools.product((0.05, 0.1, 0.2, 0.3), (0.0, 0.02, 0.04), (0.0, 0.005, 0.01))
               if combo != combos[0]]
    for shape in SHAPES:
        for combo in combos:
            weights = Weights(*combo)
            cells = [f"{answer_at_1(questions, weights, shape, default.candidates):.3f}" for questions in sets.values()]
            print(f"| {shape} | {combo[0]:g} | {combo[1]:g} | {combo[2]:g} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dumping = commands.add_parser("dump")
    dumping.add_argument("--index", required=True)
    dumping.add_argument("--set", required=True, choices=("policies", "laws"))
    dumping.add_argument("--split", choices=("train", "validation"), default="train")
    dumping.add_argument("--limit", type=int, default=80)
    dumping.add_argument("--pool", type=int, default=48, help="candidates saved per question (>= candidates)")
    dumping.add_argument("--out", required=True)
    scoring = commands.add_parser("grid")
    scoring.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.command == "dump":
        dump(args)
    else:
        grid(args)


if __name__ == "__main__":
    main()
