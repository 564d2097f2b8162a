"""Any sentence-transformers model (installed with the `st` extra): torch loads only when one is asked for."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from kb.embed.base import as_matrix
from kb.errors import ModelUnavailable


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
            self._model = SentenceTransformer(model, device="cpu", local_files_only=local)
        except Exception as exc:  # the library raises OSError, ValueError, HF errors...
            raise ModelUnavailable(f"cannot load sentence-transformers model {model!r}: {exc}") from exc
        dimension = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        size = dimension()
        if not size:
            raise ModelUnavailable(f"sentence-transformers model {model!r} does not say its embedding size")
        self.dim = int(size)
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
        return as_matrix(vectors, self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_prompt)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prompt)
