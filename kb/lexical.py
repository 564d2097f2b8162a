"""BM25 over an inverted index in CSR form; scores equal rank_bm25.BM25Okapi, much faster."""
from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import count
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

import numpy as np

# The arrays to_arrays() returns and from_arrays() expects, with their dtypes.
ARRAY_DTYPES: dict[str, type] = {
    "term_ptr": np.int64,  # postings of term t are [term_ptr[t], term_ptr[t + 1])
    "postings_doc": np.int32,  # passage number, increasing within a term
    "postings_tf": np.int32,  # occurrences of the term in that passage
    "doc_len": np.int32,  # tokens per passage
}


# top() sums in float32: half the memory traffic of float64 over a million scores, about 25 % faster
# at 1M passages. Each float32 sum is within SLACK (relative) of the exact one (2**-24 per addition,
# far fewer than 1,000 terms per query), so every comparison that drops a passage keeps that margin,
# and the few passages near the k-th best are scored again exactly in float64 before ranking.
SLACK = 1e-4

# The idf floor where rank_bm25's, epsilon times the average idf, is not positive: only in an index of a
# few passages, where most terms are in most passages (in one passage, every term is). Positive, so such
# an index still finds what it holds; small, so those terms weigh less than any term in fewer than half
# the passages there, as the floor's terms do in a larger index.
TINY_INDEX_IDF = 0.01


class BM25Index:
    """Okapi BM25 with rank_bm25's idf floor, kept positive: an idf not above 0 becomes epsilon * average idf,
    or TINY_INDEX_IDF where that is not positive."""

    k1: float = 1.5
    b: float = 0.75
    epsilon: float = 0.25
    # top() tries to skip a term's postings only when they are this long (and 1/64 of the passages):
    # below that, reading them is cheaper than checking whether they can be skipped.
    prune_postings: int = 16384  # of 4k, 16k and 32k, the fastest on the laws index at k 10 and 100

    def __init__(self, term_ptr: np.ndarray, postings_doc: np.ndarray, postings_tf: np.ndarray,
                 doc_len: np.ndarray, vocabulary: list[str], k1: float = 1.5, b: float = 0.75,
                 epsilon: float = 0.25, term_ids: Mapping[str, int] | None = None,
                 weights: np.ndarray | None = None):
        """Use build() or from_arrays(); this takes arrays already checked and typed (`term_ids`: the
        vocabulary's term -> position, when the caller has it; `weights`: stored per-posting weights)."""
        self.k1, self.b, self.epsilon = float(k1), float(b), float(epsilon)
        self._term_ptr = term_ptr
        self._doc = postings_doc
        self._tf = postings_tf
        self._doc_len = doc_len
        self._vocabulary = vocabulary
        self._term_ids = term_ids if term_ids is not None else {t: i for i, t in enumerate(vocabulary)}
        self._idf = self._compute_idf()
        self._weights = self._compute_weights() if weights is None else weights
        self._bounds: dict[int, float] = {}  # term id -> largest weight, filled as queries need it

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def build(cls, tokenized_passages: Iterable[Sequence[str]], k1: float = 1.5, b: float = 0.75,
              epsilon: float = 0.25) -> "BM25Index":
        """Index passages given as token lists (any iterable, so a generator keeps memory low)."""
        return cls.from_counts([count_terms(tokenized_passages)], k1=k1, b=b, epsilon=epsilon)

    @classmethod
    def from_counts(cls, parts: Sequence["TermCounts"], k1: float = 1.5, b: float = 0.75,
                    epsilon: float = 0.25) -> "BM25Index":
        """Index consecutive slices of passages counted separately (e.g. by worker processes).

        Terms are numbered in first-seen order over all slices, as build() numbers them, so the
        idf floor (an average in that order) is the same to the last bit.
        """
        term_ids: dict[str, int] = {}
        terms, tfs, unique, lengths = [], [], [], []
        for part in parts:
            for term in part.vocabulary:
                term_ids.setdefault(term, len(term_ids))
            remap = np.fromiter((term_ids[term] for term in part.vocabulary), dtype=np.int32,
                                count=len(part.vocabulary))
            terms.append(remap[part.terms])
            tfs.append(part.tfs)
            unique.append(part.unique_per_doc)
            lengths.append(part.doc_len)
        terms_all = np.concatenate(terms) if terms else np.zeros(0, np.int32)
        tfs_all = np.concatenate(tfs) if tfs else np.zeros(0, np.int32)
        doc_len = np.concatenate(lengths).astype(np.int32) if lengths else np.zeros(0, np.int32)
        unique_all = np.concatenate(unique) if unique else np.zeros(0, np.int64)
        docs = np.repeat(np.arange(len(doc_len), dtype=np.int32), unique_all)
        # A stable sort by term keeps passages increasing within each term's postings.
        order = np.argsort(terms_all, kind="stable")
        term_ptr = np.zeros(len(term_ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(terms_all, minlength=len(term_ids)), out=term_ptr[1:])
        return cls(term_ptr, docs[order], tfs_all[order], doc_len, list(term_ids), k1=k1, b=b,
                   epsilon=epsilon, term_ids=term_ids)

    def to_arrays(self) -> tuple[dict[str, np.ndarray], list[str]]:
        """Arrays to save with np.save(allow_pickle=False), and the vocabulary (term id order)."""
        arrays = {"term_ptr": self._term_ptr, "postings_doc": self._doc, "postings_tf": self._tf,
                  "doc_len": self._doc_len, "weights": self._weights}
        return arrays, list(self._vocabulary)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], vocabulary: list[str], k1: float = 1.5,
                    b: float = 0.75, epsilon: float = 0.25, check_postings: bool = True) -> "BM25Index":
        """Rebuild an index from to_arrays() output; ValueError if the arrays are inconsistent.

        Arrays may be memory-mapped. `check_postings=False` skips the checks that read every
        posting, for arrays whose checksums were just verified (kb wrote and checked them).
        Stored per-posting `weights` are used when present, so loading computes nothing large.
        """
        missing = sorted(set(ARRAY_DTYPES) - set(arrays))
        if missing:
            raise ValueError(f"BM25 arrays missing: {', '.join(missing)}")
        typed: dict[str, np.ndarray] = {}
        for name, dtype in ARRAY_DTYPES.items():
            value = np.asarray(arrays[name])
            if value.ndim != 1 or not np.issubdtype(value.dtype, np.integer):
                raise ValueError(f"BM25 array {name} must be a 1-d integer array")
            typed[name] = value.astype(dtype, copy=False)
        term_ptr, docs, tfs, doc_len = (typed[name] for name in ARRAY_DTYPES)
        n_docs = len(doc_len)
        if len(term_ptr) != len(vocabulary) + 1:
            raise ValueError(f"term_ptr has {len(term_ptr)} entries for {len(vocabulary)} terms")
        if term_ptr[0] != 0 or term_ptr[-1] != len(docs) or np.any(np.diff(term_ptr) < 0):
            raise ValueError("term_ptr is not a valid offset array for the postings")
        if len(tfs) != len(docs):
            raise ValueError("postings_doc and postings_tf differ in length")
        weights = arrays.get("weights")
        if weights is not None and (weights.dtype != np.float32 or weights.shape != docs.shape):
            raise ValueError("weights must be float32, one per posting")
        if not check_postings:
            return cls(term_ptr, docs, tfs, doc_len, list(vocabulary), k1=k1, b=b, epsilon=epsilon, weights=weights)
        if np.any(np.diff(term_ptr) == 0):
            raise ValueError("a vocabulary term has no postings")
        if len(docs) and (docs.min() < 0 or docs.max() >= n_docs):
            raise ValueError("a posting names a passage outside doc_len")
        if len(doc_len) and doc_len.min() < 0:
            raise ValueError("a passage has a negative length")
        # scores() adds a term's postings with one fancy-index +=, which needs them distinct;
        # build() writes them increasing.
        increasing = np.diff(docs) > 0
        term_starts = term_ptr[1:-1]
        increasing[term_starts[(term_starts > 0) & (term_starts < len(docs))] - 1] = True
        if not increasing.all():
            raise ValueError("a term's postings are not in increasing passage order")
        if len(tfs) and tfs.min() < 1:
            raise ValueError("a posting has a term frequency below 1")
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("the vocabulary has duplicate terms")
        built = cls(term_ptr, docs, tfs, doc_len, list(vocabulary), k1=k1, b=b, epsilon=epsilon)
        if weights is not None and not np.allclose(built._weights, weights, rtol=1e-6, atol=0):
            raise ValueError("stored weights disagree with the postings")
        return built

    def _compute_idf(self) -> np.ndarray:
        """rank_bm25's idf, in the same float64 arithmetic, including its floor for common terms, and above 0
        for every term: rank_bm25 leaves 0 to a term in exactly half the passages, and in a tiny index its
        floor is negative (a one-passage index matched nothing), so both take a positive floor here."""
        n_docs = self.n_passages
        df = np.diff(self._term_ptr).astype(np.float64)
        idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
        if len(idf):
            # A left-to-right sum in first-seen term order, as rank_bm25 adds, gives the same floor
            # to the last bit.
            average_idf = sum(idf.tolist()) / len(idf)
            floor = self.epsilon * average_idf
            idf[idf <= 0] = floor if floor > 0 else TINY_INDEX_IDF
        return idf

    def _compute_weights(self) -> np.ndarray:
        """Each posting's contribution to a passage's score: idf * tf (k1 + 1) / (tf + k1 norm)."""
        n_docs = self.n_passages
        total = float(self._doc_len.sum(dtype=np.int64))
        weights = np.zeros(len(self._doc), dtype=np.float32)
        if n_docs == 0 or total == 0:
            return weights
        average_len = total / n_docs
        norm = self.k1 * (1 - self.b + self.b * self._doc_len / average_len)
        # In slices, so the float64 temporaries stay small at a million passages; float32 results
        # halve the largest array of the index, their 1e-7 relative error far inside the
        # tolerance scores are compared with, and equal (tf, length) pairs stay exactly equal.
        step = 1 << 22
        for start in range(0, len(weights), step):
            end = min(start + step, len(weights))
            terms = np.searchsorted(self._term_ptr, np.arange(start, end), side="right") - 1
            tf = self._tf[start:end].astype(np.float64)
            weights[start:end] = self._idf[terms] * (tf * (self.k1 + 1) / (tf + norm[self._doc[start:end]]))
        return weights

    # -- queries --------------------------------------------------------------------------------

    @property
    def n_passages(self) -> int:
        return len(self._doc_len)

    @property
    def passage_lengths(self) -> np.ndarray:
        """Tokens per passage."""
        return self._doc_len

    @property
    def vocabulary_size(self) -> int:
        return len(self._vocabulary)

    @property
    def n_postings(self) -> int:
        """(term, passage) pairs indexed."""
        return len(self._doc)

    @property
    def term_ids(self) -> Mapping[str, int]:
        """Term -> term id (its position in the vocabulary), read-only."""
        return MappingProxyType(self._term_ids)

    def params(self) -> dict:
        """The scoring parameters, for the index manifest."""
        return {"k1": self.k1, "b": self.b, "epsilon": self.epsilon}

    def query_terms(self, query_tokens: Sequence[str]) -> list[tuple[int, int]]:
        """(term id, repeats) of the known query terms, rarest first: the order scores are summed in."""
        terms = [(self._term_ids[term], repeats) for term, repeats in Counter(query_tokens).items()
                 if term in self._term_ids]
        return sorted(terms, key=lambda item: (self._term_ptr[item[0] + 1] - self._term_ptr[item[0]], item[0]))

    def add_term(self, scores: np.ndarray, term_id: int, repeats: int) -> None:
        """Add one query term's weight (times `repeats`) to `scores` of every passage it occurs in: the
        step of scores() and top() that reads a term's postings whole."""
        start, end = self._term_ptr[term_id], self._term_ptr[term_id + 1]
        # A term's postings name each passage once, so fancy-index += cannot lose updates.
        weights = self._weights[start:end]
        scores[self._doc[start:end]] += weights if repeats == 1 else weights * repeats

    def _upper_bound(self, term_id: int) -> float:
        """The largest score one occurrence of the term adds to any passage (cached per term)."""
        bound = self._bounds.get(term_id)
        if bound is None:
            start, end = self._term_ptr[term_id], self._term_ptr[term_id + 1]
            bound = self._bounds[term_id] = float(self._weights[start:end].max())
        return bound

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every passage (float64); a repeated token counts again, unknown ones add 0."""
        scores = np.zeros(self.n_passages, dtype=np.float64)
        for term_id, repeats in self.query_terms(query_tokens):
            self.add_term(scores, term_id, repeats)
        return scores

    def _top_candidates(self, query_tokens: Sequence[str], k: int,
                        mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Scores and the passages that can still be in the top k, skipping work that cannot change it.

        Terms are added rarest first. Before a term with long postings (a frequent character), if the
        k-th best score so far exceeds the most that all remaining terms together can add to a passage
        (the sum of their largest weights: MaxScore), no passage untouched so far can reach the top k.
        The remaining terms are then added only to the passages that still can, found in each term's
        sorted postings by binary search instead of reading them whole. Scores of those passages are
        summed in the same order as in scores(), so the top k is exactly scores()'s top k.
        """
        scores = np.zeros(self.n_passages, dtype=np.float32)
        terms = self.query_terms(query_tokens)
        long_postings = max(self.prune_postings, self.n_passages // 64)
        # A failed check (k-th best K below the rest bound R) says when the next can succeed: the
        # terms added meanwhile raise any score, so the k-th best too, by at most the drop of the
        # rest bound, so the k-th best can pass the rest bound r only once r < (K + R) / 2.
        # Checking sooner costs a pass over all scores and cannot succeed.
        hopeless_above = np.inf
        for i, (term_id, repeats) in enumerate(terms):
            if i and k and self._term_ptr[term_id + 1] - self._term_ptr[term_id] >= long_postings:
                rest = self._rest_bound(terms[i:])
                if rest < hopeless_above:
                    candidates = self.scored(scores, mask)
                    candidate_scores = scores[candidates]
                    kth = self._kth_best(candidate_scores, k) * (1 - SLACK) if len(candidates) >= k else 0.0
                    if kth > rest:
                        survivors = candidates[candidate_scores + rest >= kth]
                        return scores, self._add_to_candidates(scores, survivors, terms[i:], k)
                    hopeless_above = (kth + rest) / 2 * (1 + SLACK)
            self.add_term(scores, term_id, repeats)
        return scores, self.scored(scores, mask)

    @staticmethod
    def scored(scores: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """Passages with a score above 0 (and inside `mask`), ascending: one pass over all scores, which
        top() makes only when it may let it skip postings."""
        return np.flatnonzero(scores > 0 if mask is None else (scores > 0) & mask)

    def _rest_bound(self, terms: list[tuple[int, int]]) -> float:
        """The most `terms` together can add to one passage's score."""
        # Only long terms get here: finding a bound reads its postings once, then it is cached.
        return sum(self._upper_bound(term_id) * repeats for term_id, repeats in terms)

    @staticmethod
    def _kth_best(scores: np.ndarray, k: int) -> float:
        """The k-th largest of `scores` (at least k of them)."""
        return float(np.partition(scores, len(scores) - k)[len(scores) - k])

    def _add_to_candidates(self, scores: np.ndarray, candidates: np.ndarray, terms: list[tuple[int, int]],
                           k: int) -> np.ndarray:
        """Add `terms` to the candidates' scores, dropping each candidate as soon as it cannot reach
        the top k; returns the candidates left. A term whose postings are long next to the candidates
        is looked up by binary search, otherwise added whole (extra passages' scores do not matter)."""
        for i, (term_id, repeats) in enumerate(terms):
            rest = self._rest_bound(terms[i:])
            if len(candidates) > k:
                candidate_scores = scores[candidates]
                candidates = candidates[candidate_scores + rest >= self._kth_best(candidate_scores, k) * (1 - SLACK)]
            start, end = self._term_ptr[term_id], self._term_ptr[term_id + 1]
            if len(candidates) * 16 >= end - start:
                self.add_term(scores, term_id, repeats)
                continue
            found, weights = self._lookup(term_id, candidates)
            scores[candidates[found]] += weights * repeats
        return candidates

    def _find(self, term_id: int, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which of `candidates` the term occurs in, and where those postings are, found by binary
        search in the term's sorted postings."""
        start, end = self._term_ptr[term_id], self._term_ptr[term_id + 1]
        postings = self._doc[start:end]
        at = np.searchsorted(postings, candidates)
        found = at < len(postings)
        found[found] = postings[at[found]] == candidates[found]
        return found, start + at[found]

    def _lookup(self, term_id: int, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which of `candidates` the term occurs in, and its weights there."""
        found, where = self._find(term_id, candidates)
        return found, self._weights[where]

    def grouped_scores(self, query_tokens: Sequence[str], groups: Sequence[np.ndarray],
                       average_length: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """BM25 of each group of passages read as one text (a document): term counts and lengths
        summed; and those counts, per query term the index knows (term -> occurrences per group).

        `average_length` is the average group length over the whole collection (for the length
        norm); idf stays the passages' own, so groups need no index of their own.
        """
        terms = self.query_terms(query_tokens)
        counts, lengths = self._group_counts([term_id for term_id, _ in terms], groups)
        scores = np.zeros(len(groups), dtype=np.float64)
        if average_length > 0:
            norm = self.k1 * (1 - self.b + self.b * lengths / average_length)
            for (term_id, repeats), tf in zip(terms, counts):
                scores += repeats * self._idf[term_id] * tf * (self.k1 + 1) / (tf + norm)
        return scores, {self._vocabulary[term_id]: tf for (term_id, _), tf in zip(terms, counts)}

    def _group_counts(self, term_ids: list[int], groups: Sequence[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        """Occurrences of each term in each group (one array per term), and each group's length in tokens."""
        if not len(groups):
            return [np.zeros(0) for _ in term_ids], np.zeros(0)
        rows = np.concatenate([np.asarray(group, dtype=np.int64) for group in groups])
        owner = np.repeat(np.arange(len(groups)), [len(group) for group in groups])
        lengths = np.bincount(owner, weights=self._doc_len[rows], minlength=len(groups))
        counts = []
        for term_id in term_ids:
            found, where = self._find(term_id, rows)
            counts.append(np.bincount(owner[found], weights=self._tf[where], minlength=len(groups)))
        return counts, lengths

    def top(self, query_tokens: Sequence[str], k: int,
            mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Indices and scores of the k best passages scoring > 0, best first, ties to lower index.

        The order is scores()' order down to float32 resolution (passages whose float32 sums are
        equal are ties); a score may differ from scores()' by float32 rounding, under 1e-6 relative.
        """
        if k < 0:
            raise ValueError("k must be >= 0")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.shape != (self.n_passages,):
                raise ValueError(f"mask must be a bool array of shape ({self.n_passages},)")
        scores, candidates = self._top_candidates(query_tokens, k, mask)
        if k == 0:
            candidates = candidates[:0]
        elif len(candidates) > k:
            # Everything that may score at least the k-th best once summed exactly: k, and more on
            # ties and float32 near-ties.
            candidate_scores = scores[candidates]
            kth = self._kth_best(candidate_scores, k)
            candidates = candidates[candidate_scores >= kth * (1 - SLACK) / (1 + SLACK)]
        approximate = scores[candidates].astype(np.float64)
        # lexsort's last key is primary; candidates are ascending, so equal scores keep index order.
        order = np.lexsort((candidates, -approximate))
        candidates, approximate = candidates[order], approximate[order]
        # Neighbours closer than the sums' error may be in the wrong order: score those exactly, in
        # float64 and in scores()' order of terms, and sort again. Equal float32 sums stay ties in
        # index order: copies of a passage are equal exactly, and other passages whose sums round
        # to the same float32 differ by less than the stored float32 weights' own rounding, so
        # rank_bm25's float64 order could be either.
        gaps = approximate[:-1] - approximate[1:]
        near = (gaps > 0) & (gaps <= 2 * SLACK * approximate[:-1])
        unsure = np.zeros(len(candidates), dtype=bool)
        unsure[:-1] |= near
        unsure[1:] |= near
        if unsure.any():
            approximate[unsure] = self._exact_scores(self.query_terms(query_tokens), candidates[unsure])
            order = np.lexsort((candidates, -approximate))
            candidates, approximate = candidates[order], approximate[order]
        return candidates[:k].astype(np.int64), approximate[:k]

    def top_tiered(self, query_tokens: Sequence[str], k: int, mask: np.ndarray | None = None,
                   single_characters: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """top(), except that passages holding one of the query's longer terms (two characters and up: a
        bigram, a word, a document number) come before every passage that holds only its single
        characters, each tier in top()'s order; scores are BM25's, so they fall within a tier only.
        With `single_characters=False` the second tier is left out whenever the first has a passage.

        A single character of a two-character word says little about the word (欠 of 欠薪 is as much
        欠税), yet a passage full of it can outscore one that holds the word once. A query with no
        longer term the index knows, or with nothing but longer terms, ranks as top() ranks.
        """
        best, scores = self.top(query_tokens, k, mask)
        terms = [term_id for term_id, _ in self.query_terms(query_tokens)]
        longer = [term_id for term_id in terms if len(self._vocabulary[term_id]) > 1]
        if not len(best) or not longer or len(longer) == len(terms):
            return best, scores
        holds = np.zeros(len(best), dtype=bool)
        for term_id in longer:
            holds |= self._find(term_id, best)[0]
        # The plain top k all in the first tier are its best k too: the common case (a question of
        # many words) costs one lookup per longer term in k passages.
        if holds.all():
            return best, scores
        if len(best) < k:
            # Every passage that scores is here already.
            first, rest = (best[holds], scores[holds]), (best[~holds], scores[~holds])
        else:
            first_tier = np.zeros(self.n_passages, dtype=bool)
            for term_id in longer:
                first_tier[self._doc[self._term_ptr[term_id]:self._term_ptr[term_id + 1]]] = True
            allowed = np.ones(self.n_passages, dtype=bool) if mask is None else mask
            first = self.top(query_tokens, k, allowed & first_tier)
            wanted = k - len(first[0]) if single_characters or not len(first[0]) else 0
            rest = self.top(query_tokens, wanted, allowed & ~first_tier) if wanted else (best[:0], scores[:0])
        if len(first[0]) and not single_characters:
            return first
        return np.concatenate([first[0], rest[0]]), np.concatenate([first[1], rest[1]])

    def _exact_scores(self, terms: list[tuple[int, int]], candidates: np.ndarray) -> np.ndarray:
        """float64 scores of `candidates`, summed term by term in the order scores() sums them."""
        exact = np.zeros(len(candidates), dtype=np.float64)
        for term_id, repeats in terms:
            found, weights = self._lookup(term_id, candidates)
            exact[found] += weights if repeats == 1 else weights * repeats
        return exact


@dataclass(frozen=True)
class TermCounts:
    """Term frequencies of a slice of passages, numbered by the slice's own vocabulary."""

    vocabulary: list[str]  # local term id -> term, in first-seen order
    terms: np.ndarray  # int32 local term id of each (passage, term) posting, passage by passage
    tfs: np.ndarray  # int32 occurrences of that term in that passage
    unique_per_doc: np.ndarray  # int64 postings per passage
    doc_len: np.ndarray  # int64 tokens per passage


def count_terms(tokenized_passages: Iterable[Sequence[str]]) -> TermCounts:
    """Count the terms of each passage: the part of building an index that can run in parallel."""
    # A missing term gets the next id from C code alone: no Python frame per token.
    vocab: defaultdict[str, int] = defaultdict(count().__next__)
    term_of_posting = array("i")
    tf_of_posting = array("i")
    unique_per_doc = array("q")
    doc_len = array("q")
    for tokens in tokenized_passages:
        counts = Counter(tokens)
        term_of_posting.extend(map(vocab.__getitem__, counts))
        tf_of_posting.extend(counts.values())
        unique_per_doc.append(len(counts))
        doc_len.append(len(tokens))
    if len(doc_len) and max(doc_len) > np.iinfo(np.int32).max:
        raise ValueError("a passage has more than 2**31 tokens")
    return TermCounts(list(vocab), np.array(term_of_posting, dtype=np.int32), np.array(tf_of_posting, dtype=np.int32),
                      np.array(unique_per_doc, dtype=np.int64), np.array(doc_len, dtype=np.int64))
