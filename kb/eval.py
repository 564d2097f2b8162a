"""Retrieval evaluation in BEIR form: queries.jsonl, qrels.tsv (all relevant documents kept), evidence.jsonl."""
from __future__ import annotations

import datetime
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from kb.errors import BadEvalData, BadQuery
from kb.records import AnswerSentence, Hit
from kb.search import SearchSettings
from kb.zh import normalize_text

if TYPE_CHECKING:
    from kb.store import Manifest

PASSAGE_DEPTH = 300  # passages fetched per query, so ~100 distinct documents remain for Recall@100
SPLITS = ("train", "validation")
VALIDATION_SHARE = 5  # one query in five is validation: an 80/20 split
METRICS = ("nDCG@10", "Recall@10", "Recall@100", "MRR@10", "Success@1", "Success@5", "Success@10")
# The first sentence of the extractive answer overlaps an evidence span (as Success@1 for the first passage).
ANSWER_METRIC = "Answer@1"


@dataclass(frozen=True)
class EvalSet:
    """Queries with their relevant documents (graded) and, where given, the evidence passages."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, float]]  # query id -> corpus id -> relevance
    evidence: dict[str, list[tuple[str, str]]]  # query id -> [(corpus id, evidence text)]
    kinds: dict[str, str] = field(default_factory=dict)  # query id -> its "kind", for queries that carry one

    def head(self, count: int | None) -> "EvalSet":
        """The first `count` queries (all when count is None), with their qrels and evidence."""
        if count is None:
            return self
        return self._only(list(self.queries)[:count])

    def split(self, part: str | None) -> "EvalSet":
        """The queries of one part of the fixed train/validation split (all when part is None)."""
        if part is None:
            return self
        if part not in SPLITS:
            raise BadEvalData(f"split {part!r}: use one of {', '.join(SPLITS)}")
        kept = [qid for qid in self.queries if split_of(qid) == part]
        if not kept:
            raise BadEvalData(f"no query of these files falls in the {part} part")
        return self._only(kept)

    def _only(self, ids: list[str]) -> "EvalSet":
        return EvalSet({qid: self.queries[qid] for qid in ids}, {qid: self.qrels[qid] for qid in ids},
                       {qid: self.evidence[qid] for qid in ids if qid in self.evidence},
                       {qid: self.kinds[qid] for qid in ids if qid in self.kinds})


def split_of(query_id: str) -> str:
    """The part of the fixed train/validation split a query belongs to, from its id alone.

    A hash of the id, not its position, so that adding or reordering queries never moves one from
    validation into training: whatever is tuned on `train` (`kb tune`) is measured on `validation`.
    """
    digest = hashlib.sha256(f"kb-split:{query_id}".encode()).digest()
    return "validation" if int.from_bytes(digest[:8], "big") % VALIDATION_SHARE == 0 else "train"


def load_eval_set(queries: str | Path, qrels: str | Path, evidence: str | Path | None = None) -> EvalSet:
    """Read the three BEIR files; only queries that have qrels are kept."""
    rows = _read_jsonl(queries, ("_id", "text"))
    query_texts = {str(row["_id"]): str(row["text"]) for row in rows}
    kinds = {str(row["_id"]): str(row["kind"]) for row in rows if row.get("kind")}
    relevance: dict[str, dict[str, float]] = {}
    try:
        lines = Path(qrels).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BadEvalData(f"{qrels}: cannot read ({exc.strerror or exc})") from None
    for number, line in enumerate(lines, 1):
        fields = line.split("\t") if "\t" in line else line.split()
        if not line.strip() or (number == 1 and fields[0] == "query-id"):
            continue
        if len(fields) != 3:
            raise BadEvalData(f"{qrels}:{number}: expected 'query-id corpus-id score', got {line!r}")
        try:
            score = float(fields[2])
        except ValueError:
            raise BadEvalData(f"{qrels}:{number}: score {fields[2]!r} is not a number") from None
        if score > 0:
            relevance.setdefault(fields[0], {})[fields[1]] = score
    found: dict[str, list[tuple[str, str]]] = {}
    if evidence is not None:
        for row in _read_jsonl(evidence, ("query-id", "corpus-id", "text")):
            found.setdefault(str(row["query-id"]), []).append((str(row["corpus-id"]), str(row["text"])))
    kept = {qid: text for qid, text in query_texts.items() if qid in relevance}
    if not kept:
        raise BadEvalData(f"{queries}: no query has a relevant document in {qrels}")
    return EvalSet(kept, {qid: relevance[qid] for qid in kept}, found,
                   {qid: kind for qid, kind in kinds.items() if qid in kept})


def load_eval_folder(folder: str | Path) -> EvalSet:
    """A BEIR folder: queries.jsonl, qrels.tsv and, when there, evidence.jsonl."""
    folder = Path(folder)
    evidence = folder / "evidence.jsonl"
    return load_eval_set(folder / "queries.jsonl", folder / "qrels.tsv", evidence if evidence.exists() else None)


Answer = Callable[[str, list[Hit]], list[AnswerSentence]]


def evaluate(search: Callable[[str, int], list[Hit]], data: EvalSet, documents: dict[str, str],
             progress: Callable[[int, int], None] | None = None, answer: Answer | None = None) -> dict[str, float]:
    """Mean metrics over `data` for one search function; `documents` maps indexed doc id -> text.

    Document level: hits collapse to their document at its best rank; a document matches a qrels
    corpus-id when its id ends with that path. Passage level: Success@k counts a query when one of its
    top-k passages overlaps the evidence span; queries whose evidence cannot be located are left out of it.
    With `answer` (query, hits -> quoted sentences), ANSWER_METRIC counts a query whose first quoted
    sentence overlaps an evidence span, over the same queries.
    """
    return evaluate_by_kind(search, data, documents, progress, answer)[ALL]


def evaluate_by_kind(search: Callable[[str, int], list[Hit]], data: EvalSet, documents: dict[str, str],
                     progress: Callable[[int, int], None] | None = None,
                     answer: Answer | None = None) -> dict[str, dict[str, float]]:
    """evaluate's metrics over all queries (key ALL) and over the queries of each `kind`, when they carry one."""
    relevant, spans = judgements(data, documents)
    scores: dict[str, dict[str, float]] = {}
    for done, (qid, text) in enumerate(data.queries.items(), 1):
        scores[qid] = _query_scores(search, text, list(data.qrels[qid].values()), relevant[qid], spans[qid], answer)
        if progress:
            progress(done, len(data.queries))
    parts = {ALL: list(scores.values())}
    for kind in sorted(set(data.kinds.values())):
        parts[kind] = [scores[qid] for qid, of in data.kinds.items() if of == kind]
    return {part: _means(rows, answer is not None) for part, rows in parts.items()}


ALL = "all"  # evaluate_by_kind's key for every query


def _query_scores(search, text: str, grades: list[float], relevant: dict[str, float],
                  spans: list[tuple[str, int, int]], answer: Answer | None) -> dict[str, float]:
    """One query's metrics; the passage-level ones only when its evidence is located. `grades` holds every
    qrels entry, also those not indexed; `relevant` and `spans` are its judgements (see `judgements`)."""
    try:
        hits = search(text, PASSAGE_DEPTH)
    except BadQuery:
        hits = []
    values = _document_metrics(_collapse(hits), relevant, grades)
    if spans:
        def on_evidence(doc_id: str, start: int, end: int) -> bool:
            return any(doc_id == doc and start < stop and begin < end for doc, begin, stop in spans)

        for k in (1, 5, 10):
            values[f"Success@{k}"] = float(any(on_evidence(hit.doc_id, hit.start, hit.end) for hit in hits[:k]))
        if answer is not None:
            quoted = answer(text, hits) if hits else []
            values[ANSWER_METRIC] = float(bool(quoted) and on_evidence(quoted[0].doc_id, quoted[0].start,
                                                                       quoted[0].end))
    return values


def _means(rows: list[dict[str, float]], answers: bool) -> dict[str, float]:
    """Mean of each metric: document-level ones over all rows, passage-level ones over the rows that have them."""
    located = [row for row in rows if "Success@1" in row]
    result = {name: sum(row[name] for row in rows) / len(rows) for name in METRICS if not name.startswith("Success")}
    passage_metrics = [name for name in METRICS if name.startswith("Success")] + ([ANSWER_METRIC] if answers else [])
    result.update({name: (sum(row[name] for row in located) / len(located) if located else float("nan"))
                   for name in passage_metrics})
    result["queries"] = len(rows)
    result["evidence_located"] = len(located)
    return result


def judgements(data: EvalSet, documents: dict[str, str]
               ) -> tuple[dict[str, dict[str, float]], dict[str, list[tuple[str, int, int]]]]:
    """Per query, its relevant indexed documents (id -> grade) and its located evidence spans
    (doc id, start, end): what `evaluate` scores against, and what kb tune trains on."""
    corpus_ids = {cid for rels in data.qrels.values() for cid in rels}
    corpus_ids |= {cid for items in data.evidence.values() for cid, _ in items}
    resolve = _resolver(corpus_ids, documents)
    relevant = {qid: {doc_id: grade for cid, grade in data.qrels[qid].items() if (doc_id := resolve(cid))}
                for qid in data.queries}
    spans = {qid: _evidence_spans(data.evidence.get(qid, []), resolve, documents) for qid in data.queries}
    return relevant, spans


def markdown_table(results: dict[str, dict[str, float]], label: str = "mode") -> list[str]:
    """One Markdown table row per mode, METRICS as columns, and ANSWER_METRIC when measured (— for a
    metric that could not be measured)."""
    columns = METRICS + ((ANSWER_METRIC,) if any(ANSWER_METRIC in values for values in results.values()) else ())
    lines = [f"| {label} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for mode, values in results.items():
        cells = ["—" if math.isnan(values.get(m, math.nan)) else f"{values[m]:.3f}" for m in columns]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return lines


def kind_tables(results: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """For each kind of query, its table over the modes (results: mode -> part -> metrics); nothing
    when the queries carry no kind."""
    modes = list(results)
    kinds = [part for part in results[modes[0]] if part != ALL] if modes else []
    lines: list[str] = []
    for kind in kinds:
        count = results[modes[0]][kind]["queries"]
        lines += ["", f"kind `{kind}` ({count:,} queries):", "",
                  *markdown_table({mode: results[mode][kind] for mode in modes})]
    return lines


def report(name: str, results: dict[str, dict[str, dict[str, float]]], info: dict, manifest: Manifest | None,
           settings: SearchSettings = SearchSettings()) -> str:
    """The Markdown block `kb eval --write` keeps in a document: what was measured, on what, the table
    and, when the queries carry a kind, a table per kind (results: mode -> evaluate_by_kind's parts)."""
    first = next(iter(results.values()))[ALL]
    chunking = info["chunking"]
    build_bytes = sum(entry.bytes for entry in manifest.files.values()) if manifest else 0
    bm25 = manifest.bm25 if manifest else {}
    lines = [
        f"Measured {datetime.date.today().isoformat()} by `kb eval` (kb {info['kb_version']}): "
        f"{first['queries']:,} queries, evidence located for {first['evidence_located']:,}.",
        f"Index: {info['documents']:,} documents, {info['passages']:,} passages, build directory "
        f"{build_bytes / 1e6:.1f} MB; last ingest {info['created']}, {info['build_seconds']} s "
        "(vectors already in the embedding cache are reused, so a first build takes longer).",
        f"Settings: passages ≤ {chunking['size']} characters, law articles packed to "
        f"{chunking['article_size']}, tails ≥ {chunking['min_size']}; tokenizer "
        f"`{info['tokenizer']}`; BM25 k1 {bm25.get('k1')}, b {bm25.get('b')}; model `{info['model']}` "
        f"({info['dim']}-dim), {info['vector_index']} vector search; hybrid: RRF k {settings.rrf_k} over each "
        f"mode's top max(k, {settings.depth}), vector weight "
        f"{'adaptive' if settings.adaptive else settings.weights.get('vector', 1.0)}, document match "
        f"{settings.document_weight:g} (× each document's share of the query's pairs) over the first "
        f"{settings.document_candidates} passages when the best BM25 passage holds ≥ "
        f"{settings.document_min_coverage:.2f} of the query's bigrams, hierarchy step "
        f"{settings.hierarchy_step:g}, comparison step {settings.comparison_step:g}.",
        "",
        *markdown_table({mode: parts[ALL] for mode, parts in results.items()}),
        *kind_tables(results),
    ]
    return "\n".join(lines)


_NAME = re.compile(r"[\w.-]+")


def write_report(path: str | Path, name: str, block: str) -> None:
    """Put `block` between the `<!-- kb eval NAME -->` markers of the Markdown file at `path`,
    replacing what was there; appended under a heading when the markers are not there yet.

    Everything outside the markers is kept, so a hand-written analysis can sit around the tables.
    """
    from kb.store import write_atomic  # only `kb eval --write` needs the store

    if not _NAME.fullmatch(name):
        raise BadEvalData(f"report name {name!r}: use letters, digits, '.', '_' or '-'")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise BadEvalData(f"{path}: cannot read ({exc})") from None
    start, end = f"<!-- kb eval {name} -->", f"<!-- /kb eval {name} -->"
    replacement = f"{start}\n{block}\n{end}"
    if start in text and end in text.split(start, 1)[1]:
        before, rest = text.split(start, 1)
        text = before + replacement + rest.split(end, 1)[1]
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + f"## {name}\n\n{replacement}\n"
    write_atomic(path, text.encode("utf-8"))


def _document_metrics(ranking: list[str], relevant: dict[str, float], grades: list[float]) -> dict[str, float]:
    # `grades` holds every qrels entry, also those not in the index: a missing document is a miss.
    gains = [relevant.get(doc, 0.0) for doc in ranking[:10]]
    dcg = sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, 1))
    ideal = sum(gain / math.log2(rank + 1) for rank, gain in enumerate(sorted(grades, reverse=True)[:10], 1))
    first = next((rank for rank, doc in enumerate(ranking[:10], 1) if doc in relevant), None)
    return {
        "nDCG@10": dcg / ideal if ideal else 0.0,
        "Recall@10": sum(doc in relevant for doc in ranking[:10]) / len(grades),
        "Recall@100": sum(doc in relevant for doc in ranking[:100]) / len(grades),
        "MRR@10": 1.0 / first if first else 0.0,
    }


def _collapse(hits: list[Hit]) -> list[str]:
    """Document ids in order of their best-ranked passage."""
    return list(dict.fromkeys(hit.doc_id for hit in hits))


def _resolver(corpus_ids: set[str], documents: dict[str, str]) -> Callable[[str], str | None]:
    """Map a qrels corpus-id to the indexed document whose id ends with that path."""
    by_suffix: dict[str, str] = {}
    for doc_id in documents:
        parts = doc_id.split("/")
        for i in range(len(parts)):
            by_suffix.setdefault("/".join(parts[i:]), doc_id)
    return lambda cid: by_suffix.get(cid.strip("/"))


def _evidence_spans(items, resolve, documents: dict[str, str]) -> list[tuple[str, int, int]]:
    spans = []
    for cid, text in items:
        doc_id = resolve(cid)
        needle = normalize_text(text).strip()
        if doc_id is None or not needle:
            continue
        start = documents[doc_id].find(needle)
        if start >= 0:
            spans.append((doc_id, start, start + len(needle)))
    return spans


def _read_jsonl(path, required: tuple[str, ...]) -> list[dict]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BadEvalData(f"{path}: cannot read ({exc.strerror or exc})") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise BadEvalData(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(row, dict) or any(key not in row for key in required):
            raise BadEvalData(f"{path}:{number}: needs the fields {', '.join(required)}")
        rows.append(row)
    return rows
