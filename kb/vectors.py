"""Vector search over normalised passage vectors: exact up to a size, faiss HNSW above it."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import cast

import numpy as np

from kb import settings


@dataclass(frozen=True)
class VectorIndexSettings:
    """Exact search up to `ann_threshold` passages, HNSW above it (measured in bench/vector_index.py)."""

    ann_threshold: int = field(default_factory=settings.ann_threshold)  # passages; below it search is exact
    hnsw_m: int = 32  # links per node: recall vs memory (M * 8 bytes per passage)
    ef_construction: int = 80
    ef_search: int = 256  # candidates per query: the recall target on the laws vectors (docs/performance.md)

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
        self._index: faiss.IndexHNSW | None
        if ann is not None:
            # ann_bytes() serialised an IndexHNSWFlat, and faiss hands back the class it read.
            self._index = cast("faiss.IndexHNSW", faiss.deserialize_index(np.ascontiguousarray(ann, dtype=np.uint8)))
            if self._index.ntotal != len(self.vectors) or self._index.d != dim:
                raise ValueError(f"HNSW index holds {self._index.ntotal} vectors of dimension {self._index.d},"
                                 f" not {len(self.vectors)} of {dim}")
        elif self.kind == "hnsw":
            self._index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efConstruction = settings.ef_construction
            faiss.omp_set_num_threads(os.cpu_count() or 1)  # building the graph parallelises well
            self._index.add(self.vectors)
        else:
            # Exact search is a matrix-vector product; numpy does it about as fast as faiss's flat
            # index for one query without a second copy of the vectors (docs/performance.md).
            self._index = None
        if self._index is not None:
            self._index.hnsw.efSearch = settings.ef_search

    def __len__(self) -> int:
        return len(self.vectors)

    def ann_bytes(self) -> np.ndarray | None:
        """The HNSW graph as a uint8 array to store beside the vectors (None for exact search)."""
        import faiss

        return faiss.serialize_index(self._index) if self._index is not None else None

    def top(self, query: np.ndarray, k: int, mask: np.ndarray | None = None,
            exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosine scores of the k nearest passages, best first; `mask` restricts the candidates."""
        if not len(self.vectors) or k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        if mask is not None or exact or self._index is None:
            # Filtered searches are exact too, so a narrow filter never comes back short as a
            # graph search over everything would.
            allowed = np.flatnonzero(mask) if mask is not None else np.arange(len(self.vectors))
            # einsum, not @: BLAS (OpenBLAS) spreads one product over its own threads, which under
            # concurrent searches wait on each other (docs/performance.md, "Concurrent queries").
            scores = np.einsum("ij,j->i", self.vectors[allowed] if mask is not None else self.vectors, query[0],
                               optimize=False)
            best = np.argpartition(-scores, k)[:k] if len(scores) > k else np.arange(len(scores))
            order = best[np.argsort(-scores[best], kind="stable")]
            return allowed[order], scores[order]
        # One query is memory-bound: a second OpenMP thread only adds wake-up cost (about twice the
        # time, docs/performance.md). The setting is per calling thread and
        # faiss has its own OpenMP runtime, so the embedding model's threads are not affected.
        self._faiss.omp_set_num_threads(1)
        scores, ids = self._index.search(query, min(k, len(self.vectors)))
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep]
