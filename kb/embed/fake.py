"""A deterministic embedder without a model, for fast tests of everything around it."""
from __future__ import annotations

import hashlib
import re
from typing import Sequence

import numpy as np

from kb.embed.base import normalise_rows

DEFAULT_DIM = 256


class FakeEmbedder:
    """Deterministic hashed character-bigram vectors: no model, for fast tests of everything around it."""

    def __init__(self, dim: int = DEFAULT_DIM):
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
