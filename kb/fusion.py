"""Reciprocal rank fusion: combine ranked lists by rank alone, so BM25 and cosine scales never mix."""
from __future__ import annotations

from typing import Mapping, Sequence

RRF_K = 10  # Cormack et al. use 60; 10 trusts each list's first ranks more, better on both eval sets


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


def vector_trust(coverage: float) -> float:
    """Weight of the vector list given how much of the query the best BM25 passage covers (0 to 1).

    A question that copies a document's wording (most of its bigrams in the best lexical match) is
    answered by exact terms, and vectors mostly add noise; a paraphrase that shares few terms with
    any passage ("老板拖了三个月工资不发怎么办") needs the vectors. Linear between the two: 1.5 with
    no overlap, 0.1 from full overlap down to 93 %. Chosen on the policies and laws development sets
    (docs/eval.md), where fixed weights had to favour one set over the other.
    """
    return max(0.1, 1.5 * (1.0 - coverage))
