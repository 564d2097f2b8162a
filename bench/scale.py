"""How cost grows with index size: build time per stage, size on disk, memory, query latency per mode.

Usage: python bench/scale.py --passages 10000 100000 [1000000] [--queries 200] [--workers 2]
       python bench/scale.py --passages N --keep DIR    (then measure again with --index DIR/index)
       python bench/scale.py --index DIR [--queries 200]

With --index it builds nothing and measures an existing index (its own model, its real vectors):
load, memory and the latencies below, e.g. on the full laws index.

For each size N it writes a corpus of real law texts (../shared/corpus/laws, repeated under
copy-K/ folders until N passages exist, the last copy cut short) into a temporary folder, runs
`KnowledgeBase.ingest` and `save` and reports each stage's seconds, then loads the index in a fresh
process and measures peak RSS at load and after the queries, and p50/p95 latency of end-to-end
queries (real query embedding with the default model, BM25, vector search, fusion, hits with matched terms;
no rendering) per mode, sequentially and as 100 queries from 4 threads. For HNSW indexes it also
measures Recall@10 of the approximate vector search against exact search.

Passage vectors are not computed with the model for every passage (a million would take hours on
2 cores): the model embeds a pool of 256 real passages once, and each passage gets a pool vector
chosen by its text hash plus a little deterministic noise, renormalised. The index is labelled with
an embedder id "bench/<model>-reused-vectors" so it can never pass for a real one. Queries are the
laws eval questions, embedded for real.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kb.embed import DEFAULT_MODEL, make_embedder  # noqa: E402
from kb.settings import ann_threshold  # noqa: E402
from kb.vectors import VectorIndexSettings  # noqa: E402

POOL = 256
NOISE = 0.35  # relative to a unit vector: near-duplicates stay near, but distinct


class ReusedVectorEmbedder:
    """The default model for queries; passages get real pool vectors plus noise (see the module docstring)."""

    def __init__(self, pool: np.ndarray):
        self.model = make_embedder(DEFAULT_MODEL)
        self.pool = pool
        self.dim = self.model.dim
        self.model_id = f"bench/{self.model.model_id}-reused-vectors"
        self.spec = self.model.spec

    def embed_queries(self, texts):
        return self.model.embed_queries(texts)

    def embed_passages(self, texts):
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            rng = np.random.default_rng(seed)
            vector = self.pool[seed % len(self.pool)] + rng.normal(0, NOISE / np.sqrt(self.dim), self.dim)
            out[row] = vector / np.linalg.norm(vector)
        return out


def make_corpus(shared: Path, target: Path, passages: int) -> None:
    """Copies of the laws folder until about `passages` passages (≈ chars / 283)."""
    from kb.chunk import chunk_document
    from kb.ingest import discover, read_document

    sources, _ = discover([shared / "corpus" / "laws"])
    counted, copy = 0, 0
    while counted < passages:
        for source in sources:
            if counted >= passages:
                return
            destination = target / f"copy-{copy}" / source.doc_id
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source.path, destination)
            counted += len(chunk_document(read_document(source)))
        copy += 1


def build(shared: Path, work: Path, passages: int, workers: int, ann_threshold: int) -> dict:
    from kb.knowledgebase import KnowledgeBase
    from kb.store import current_build

    corpus = work / "corpus"
    make_corpus(shared, corpus, passages)
    pool_texts = [line for line in (shared / "corpus" / "laws" / "民法典" / "合同编.md").read_text(
        encoding="utf-8").splitlines() if len(line) > 40][:POOL]
    pool = make_embedder(DEFAULT_MODEL).embed_passages(pool_texts)
    kb = KnowledgeBase(work / "index", ReusedVectorEmbedder(pool),
                       vector_index=VectorIndexSettings(ann_threshold=ann_threshold))
    report = kb.ingest([corpus], workers=workers)
    started = time.perf_counter()
    build_dir = kb.save()
    stages = dict(report.stage_seconds, save=time.perf_counter() - started)
    size = sum(path.stat().st_size for path in build_dir.iterdir())
    np.save(work / "pool.npy", pool, allow_pickle=False)
    return {"passages": report.passages, "documents": len(kb.documents), "stages": stages,
            "disk_mb": size / 1e6, "vector_index": kb.info()["vector_index"], "build": str(current_build(work / "index"))}


def memory_mb() -> dict[str, float]:
    """This process's resident memory now and at its peak, in MB.

    Not getrusage's ru_maxrss: Linux carries a parent's peak into a child through fork and exec, so
    the measuring process would report the peak of the process that built the index. VmHWM in
    /proc/self/status belongs to this process's own address space."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024
    return {"rss": fields["VmRSS"], "peak": fields["VmHWM"]}


def measure(index: Path, queries: list[str]) -> dict:
    """Runs in a fresh process: load, then latency per mode; RSS in MB. An index that `build` made
    (a pool.npy beside it) gets its reused-vector embedder, any other its own model."""
    from kb.knowledgebase import KnowledgeBase

    pool_path = index.parent / "pool.npy"
    embedder = ReusedVectorEmbedder(np.load(pool_path, allow_pickle=False)) if pool_path.exists() else None
    started = time.perf_counter()
    kb = KnowledgeBase.load(index, embedder)
    load_seconds = time.perf_counter() - started
    rss_load = memory_mb()["rss"]
    for query in queries:  # query vectors are cached per process: warm them so modes compare fairly
        kb.embedder.embed_queries([query])
    result = {"load_s": load_seconds, "rss_load_mb": rss_load, "modes": {}, "passages": kb.info()["passages"],
              "model": kb.embedder.model_id}
    embed_times = []
    for query in queries[:50]:
        started = time.perf_counter()
        kb.embedder.embed_queries([query])
        embed_times.append(time.perf_counter() - started)
    result["query_embedding_ms_p50"] = 1000 * statistics.median(embed_times)
    for mode in ("bm25", "vector", "hybrid"):
        times = []
        for query in queries:
            kb.searcher.clear_query_cache()  # end to end: the query is embedded every time
            started = time.perf_counter()
            kb.search(query, mode=mode, k=10)
            times.append(time.perf_counter() - started)
        result["modes"][mode] = {"p50_ms": 1000 * np.percentile(times, 50), "p95_ms": 1000 * np.percentile(times, 95)}

    def one(query: str) -> float:
        started = time.perf_counter()
        kb.search(query, mode="hybrid", k=10)
        return time.perf_counter() - started

    kb.searcher.clear_query_cache()
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool_threads:
        times = list(pool_threads.map(one, (queries * 2)[:100]))
    result["concurrent_4_threads"] = {"p50_ms": 1000 * np.percentile(times, 50),
                                      "p95_ms": 1000 * np.percentile(times, 95),
                                      "wall_s": time.perf_counter() - started}
    if kb.info()["vector_index"] == "hnsw":
        overlap = []
        for query in queries:
            vector = kb.embedder.embed_queries([query])[0]
            approximate, _ = kb.vectors.top(vector, 10)
            exact, _ = kb.vectors.top(vector, 10, exact=True)
            overlap.append(len(set(approximate) & set(exact)) / 10)
        result["hnsw_recall_at_10"] = float(np.mean(overlap))
    result["rss_peak_mb"] = memory_mb()["peak"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ann-threshold", type=int, default=ann_threshold(),
                        help="passages above which the vector index is HNSW (default: kb's)")
    parser.add_argument("--index", help="measure this existing index instead of building corpora")
    parser.add_argument("--keep", help="build in this folder (one size) and keep it, to measure again with --index")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: the fresh measuring process
    args = parser.parse_args()
    shared = Path(os.environ.get("KB_SHARED", ROOT.parent / "shared"))
    queries = [json.loads(line)["text"] for line in
               (shared / "eval" / "laws" / "queries.jsonl").read_text(encoding="utf-8").splitlines()[:args.queries]]
    if args.measure:
        print(json.dumps(measure(Path(args.measure), queries)))
        return
    rows = []
    if args.index:
        sizes = []
        rows.append({"stages": None, **_measure_fresh(Path(args.index), args.queries)})
        print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    else:
        sizes = args.passages
    if args.keep and len(sizes) != 1:
        parser.error("--keep builds one size: give one --passages value")
    for size in sizes:
        with (contextlib.nullcontext(args.keep) if args.keep
              else tempfile.TemporaryDirectory(prefix=f"kb-scale-{size}-")) as folder:
            work = Path(folder)
            work.mkdir(parents=True, exist_ok=True)
            built = build(shared, work, size, args.workers, args.ann_threshold)
            row = {**built, **_measure_fresh(work / "index", args.queries)}
            rows.append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    print()
    print("| passages | parse s | chunk s | tokenize s | embed s* | index s | save s | disk MB | load s | RSS load MB |"
          " RSS peak MB | bm25 p50/p95 ms | vector p50/p95 ms | hybrid p50/p95 ms | 4 threads p50/p95 ms | HNSW R@10 |")
    print("|" + "---|" * 16)
    for row in rows:
        s, m = row["stages"], row["modes"]
        stages = (f" {s['parse']:.1f} | {s['chunk']:.1f} | {s['tokenize']:.1f} | {s['embed']:.1f} | {s['index']:.1f} |"
                  f" {s['save']:.1f} | {row['disk_mb']:.0f} |") if s else " — | — | — | — | — | — | — |"
        print(f"| {row['passages']:,} |{stages} {row['load_s']:.1f} |"
              f" {row['rss_load_mb']:.0f} | {row['rss_peak_mb']:.0f} |"
              + "".join(f" {m[mode]['p50_ms']:.1f} / {m[mode]['p95_ms']:.1f} |" for mode in ("bm25", "vector", "hybrid"))
              + f" {row['concurrent_4_threads']['p50_ms']:.1f} / {row['concurrent_4_threads']['p95_ms']:.1f} |"
              f" {row.get('hnsw_recall_at_10', float('nan')):.3f} |")
    print("* embed: reused pool vectors (see docstring), not the model's cost; query embedding p50 "
          + ", ".join(f"{row['query_embedding_ms_p50']:.0f} ms" for row in rows))


def _measure_fresh(index: Path, queries: int) -> dict:
    """measure() in a new process, so that load time and memory are its own."""
    measured = subprocess.run([sys.executable, __file__, "--measure", str(index), "--queries", str(queries)],
                              capture_output=True, text=True, check=True)
    return json.loads(measured.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
