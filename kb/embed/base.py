"""What every embedder shares: the Embedder protocol, row normalisation and the thread count."""
from __future__ import annotations

from typing import Protocol, Sequence

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
