"""Reciprocal rank fusion: combine ranked lists by rank alone, so BM25 and cosine scales never mix."""
from __future__ import annotations

from typing import Mapping, Sequence

RRF_K = 60  # Cormack et al. 2009; damps the weight of the very first ranks


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[int]], weights: Mapping[str, float] | None = None,
                           k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse named ranked lists into one: score(x) = sum of weight / (k + rank), best first.

    Keys are passage numbers. Ties are broken by the best single rank, then by the key, so the
    result does not depend on the order the lists are given in.
    """
    if k < 0:
        raise ValueError("k must be >= 0")
    scores: dict[int, float] = {}
    best_rank: dict[int, int] = {}
    for name in sorted(rankings):
        weight = 1.0 if weights is None else float(weights.get(name, 1.0))
        if weight < 0:
            raise ValueError(f"weight for {name!r} must be >= 0")
        for rank, key in enumerate(rankings[name], start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
            best_rank[key] = min(best_rank.get(key, rank), rank)
    return sorted(scores.items(), key=lambda item: (-item[1], best_rank[item[0]], item[0]))
