"""Hybrid search settings side by side on one eval set, through the real search path.

Usage: python bench/hybrid_settings.py --index DIR --set policies|laws
                                       [--vary document_weight=0,0.5,1,1.5] [--vary hierarchy_step=0,0.03]
                                       [--limit N]

Each --vary names a field of kb.search.SearchSettings and the values to try; every value is run
alone against the defaults (not the cross product), and the defaults come first. Prints `kb eval`'s
metrics per row. Query vectors are embedded once and reused across rows. Data comes from $KB_SHARED,
else ../shared beside the project.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kb.eval import METRICS, evaluate, load_eval_folder  # noqa: E402
from kb.knowledgebase import KnowledgeBase  # noqa: E402
from kb.search import SearchSettings  # noqa: E402


def parse_vary(text: str) -> tuple[str, list]:
    name, _, values = text.partition("=")
    fields = {field.name: field for field in dataclasses.fields(SearchSettings)}
    if name not in fields or not values:
        raise SystemExit(f"--vary {text!r}: use FIELD=V1,V2 with a field of SearchSettings: {', '.join(fields)}")
    kind = type(getattr(SearchSettings(), name))
    return name, [kind(value) if kind is not bool else value.lower() in ("1", "true", "yes")
                  for value in values.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--set", required=True, choices=("policies", "laws"))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--vary", action="append", default=[], type=parse_vary)
    args = parser.parse_args()
    kb = KnowledgeBase.load(args.index)
    eval_folder = Path(os.environ.get("KB_SHARED", ROOT.parent / "shared")) / "eval" / args.set
    data = load_eval_folder(eval_folder).head(args.limit or None)
    documents = {doc.id: doc.text for doc in kb.documents}
    rows = [("defaults", SearchSettings())]
    rows += [(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}",
              dataclasses.replace(SearchSettings(), **{name: value}))
             for name, values in args.vary for value in values]
    print(f"{args.set}: {len(data.queries)} queries; index {args.index}: {len(kb.chunks)} passages")
    print("| hybrid | " + " | ".join(METRICS) + " |")
    print("|---" * (len(METRICS) + 1) + "|")
    for label, settings in rows:
        result = evaluate(lambda text, k, settings=settings: kb.search(text, k=k, settings=settings, terms=False),
                          data, documents)
        print(f"| {label} | " + " | ".join(f"{result[m]:.3f}" for m in METRICS) + " |", flush=True)


if __name__ == "__main__":
    main()
