"""What every embedder shares: the Embedder protocol, row normalisation, the thread count, and a memo of
recent vectors."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Protocol, Sequence

import numpy as np

from kb import settings


class BadSpec(ValueError):
    """A model spec's argument that its embedder cannot take (the text after "NAME:"); make_embedder names the spec."""


class Embedder(Protocol):
    """Turns queries and passages into L2-normalised float32 vectors of `dim` dimensions."""

    model_id: str  # names the vectors: an index refuses an embedder with another id
    dim: int
    spec: str  # what make_embedder() takes to recreate this embedder

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


def embedding_threads(threads: int | None) -> int:
    """The threads an embedder runs on: `threads` when given, else $KB_THREADS or all cores."""
    return threads or settings.threads()


def as_matrix(vectors, dim: int) -> np.ndarray:
    """A model's output as a normalised float32 [n, dim] matrix."""
    matrix = np.asarray(vectors, dtype=np.float32).reshape(-1, dim)
    return normalise_rows(matrix)


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length; all-zero rows stay zero."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


class VectorMemo:
    """The vectors of the texts embedded lately, at most `size`, the least recently used dropped first;
    safe to share between threads (the app's sessions search and answer at once). The model runs
    outside the lock, so two threads may embed the same new text: both get the same vector."""

    def __init__(self, size: int):
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def vectors(self, texts: Sequence[str], embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """The vectors of `texts` in order ([n, dim]); `embed` runs once, on those not kept."""
        known: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                if text in self._vectors:
                    self._vectors.move_to_end(text)
                    known[text] = self._vectors[text]
        missing = list(dict.fromkeys(text for text in texts if text not in known))
        if missing:
            fresh = dict(zip(missing, embed(missing)))
            known.update(fresh)
            with self._lock:
                self._vectors.update(fresh)
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return np.stack([known[text] for text in texts])

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()
