"""Query answering over one loaded index: BM25, vector and hybrid (RRF) modes, path filter, matched terms."""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from kb.chunk import article_numbers, article_range, indexed_text
from kb.embed import Embedder
from kb.errors import BadQuery
from kb.fusion import RRF_K, reciprocal_rank_fusion, vector_trust
from kb.lexical import BM25Index
from kb.metadata import LEGAL_RANK_BELOW_LAW, LEGAL_TYPES, might_name_place, place_matches, resolve_place
from kb.records import Chunk, Document, Hit
from kb.tokenize import normalize, to_simplified, tokenize
from kb.vectors import VectorIndex
from kb.zh import CONTROL_CHARS, normalize_chars, without_title_date

MODES = ("hybrid", "bm25", "vector")
MAX_K = 1000
MAX_QUERY_CHARS = 2000  # longer input is cut: no real query is longer, and cost grows with length
QUERY_CACHE_SIZE = 4096  # query vectors kept (1.5 KB each): an eval set or a day of app use


@dataclass(frozen=True)
class Filters:
    """Which documents a search may return; an empty field does not restrict.

    A document whose date or type is unknown is left out once that field is asked for: it cannot
    be shown to match.
    """

    prefix: str = ""  # a folder or file path: policies/, laws/DLC/浙江地方法规
    place: str = ""  # 浙江, 杭州市, 浙江省/杭州市 or 全国 (see metadata.place_matches)
    since: str = ""  # 2020, 2020-02 or 2020-02-21, inclusive
    until: str = ""
    doc_types: tuple[str, ...] = ()  # any of these: 地方性法规, 通知, …

    def __post_init__(self):
        for name in ("since", "until"):
            value = getattr(self, name)
            if value and not _DATE_BOUND.fullmatch(value):
                raise BadQuery(f"--{name} {value!r} is not a date: use 2020, 2020-02 or 2020-02-21")

    def admits(self, document: Document) -> bool:
        """Whether the metadata filters (not the prefix) let this document through."""
        meta = document.meta
        if self.place and not place_matches(meta.place, self.place):
            return False
        if self.since and not (meta.date and meta.date >= self.since):
            return False
        # "2020" until covers all of 2020: compare on the bound's own precision.
        if self.until and not (meta.date and meta.date[:len(self.until)] <= self.until):
            return False
        if self.doc_types and meta.doc_type not in self.doc_types:
            return False
        return True

    def restricts(self) -> bool:
        return bool(self.prefix or self.place or self.since or self.until or self.doc_types)


_DATE_BOUND = re.compile(r"(?:19|20)\d\d(?:-(?:0[1-9]|1[0-2])(?:-(?:0[1-9]|[12]\d|3[01]))?)?")


@dataclass(frozen=True)
class SearchSettings:
    """How hybrid mode fuses: list depth per mode, RRF constant, weight per mode.

    With `adaptive`, the vector weight is multiplied by fusion.vector_trust(coverage): the share of
    the query's character bigrams found in the best BM25 passage.
    """

    # Each list's depth for k <= depth. At k 10, depth 50 and 100 fuse to the same quality on both
    # eval sets (policies nDCG@10 0.894 / 0.894, laws Success@10 0.634 / 0.632; 30 loses a little),
    # and BM25's top 50 costs less than its top 100 at a million passages.
    depth: int = 50
    rrf_k: int = RRF_K
    weights: dict = field(default_factory=lambda: {"bm25": 1.0, "vector": 1.0})
    adaptive: bool = True
    # When the query names no place, a legal text loses this much fused score per rank it stands
    # below a national 法律 (metadata.LEGAL_RANK_BELOW_LAW): the statute answers a layperson's legal
    # question before the regulations, interpretations and local rules that implement it. Texts
    # outside the hierarchy keep their score, so policy documents in a mixed index are unaffected.
    # 0 turns it off. docs/eval.md: laws nDCG@10 0.617 -> 0.747, policies (mixed index) unchanged.
    hierarchy_step: float = 0.03
    # A document outside the legal hierarchy (a notice, a report) is about one matter, so a query
    # its text covers as a whole is about it: among the documents of the first
    # `document_candidates` fused passages, ranked by BM25 over each document's passages taken
    # together, the one at rank r adds document_weight * d / (rrf_k + r) to its passages, d the share
    # of the query's bigrams found anywhere in it (a document without the query's words gains
    # nothing). Statutes are left out: a law of 200 articles matches many words of any legal
    # question. 0 turns it off. docs/eval.md: policies nDCG@10 0.896 -> 0.912, laws unchanged.
    document_weight: float = 1.0
    document_candidates: int = 50


class Searcher:
    """Answers queries against documents, passages, a BM25 index and a vector index that line up."""

    def __init__(self, documents: dict[str, Document], chunks: list[Chunk], bm25: BM25Index,
                 vectors: VectorIndex, embedder: Embedder, tokenizer: str):
        self.documents = documents
        self.chunks = chunks
        self.bm25 = bm25
        self.vectors = vectors
        self.embedder = embedder
        self.tokenizer = tokenizer
        self._doc_list = list(documents.values())
        self._position = {doc.id: i for i, doc in enumerate(self._doc_list)}
        self._doc_of_chunk = np.fromiter((self._position[chunk.doc_id] for chunk in chunks), dtype=np.int64,
                                         count=len(chunks))
        self._legal_rank = np.array([LEGAL_RANK_BELOW_LAW.get(doc.meta.doc_type, 0) for doc in self._doc_list] or [0],
                                    dtype=np.int8)
        self._outside_hierarchy = np.array([doc.meta.doc_type not in LEGAL_TYPES for doc in self._doc_list] or [False])
        by_doc = np.argsort(self._doc_of_chunk, kind="stable")
        self._rows_of_doc = np.split(by_doc, np.cumsum(np.bincount(self._doc_of_chunk, minlength=len(self._doc_list)))[:-1])
        self._average_doc_tokens = float(bm25.passage_lengths.sum()) / max(1, len(self._doc_list))
        self._docs_by_title: dict[str, list[int]] = {}
        for position, doc in enumerate(self._doc_list):
            title = _law_title(doc.title)
            if len(title) >= 3:
                self._docs_by_title.setdefault(title, []).append(position)
        self._query_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    def rows_of(self, doc_id: str) -> np.ndarray:
        """Passage numbers of one document, in order (empty for a document not indexed)."""
        position = self._position.get(doc_id)
        return self._rows_of_doc[position] if position is not None else np.zeros(0, dtype=np.int64)

    def search(self, query: str, mode: str = "hybrid", k: int = 10, prefix: str | None = None,
               settings: SearchSettings = SearchSettings(), terms: bool = True,
               filters: Filters | None = None) -> list[Hit]:
        """The k best passages for `query`, best first, among the documents `filters` and `prefix` admit.

        `terms=False` leaves `matched_terms` empty: evaluation needs no highlights, and finding them
        costs more than the search itself at depth 300.
        """
        if mode not in MODES:
            raise BadQuery(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        if not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise BadQuery(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
        query = to_simplified(_clean_query(query))
        if not re.search(r"\w", query):
            raise BadQuery("the query has no words: type some words or a question")
        mask = self._mask(filters or Filters(), prefix)
        depth = max(k, settings.depth) if mode == "hybrid" else k
        results: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        query_tokens = tokenize(query, self.tokenizer)
        if mode in ("bm25", "hybrid"):
            results["bm25"] = self.bm25.top(query_tokens, depth, mask)
        if mode in ("vector", "hybrid"):
            results["vector"] = self.vectors.top(self._embed_query(query), depth, mask)
        rankings = {name: ids.tolist() for name, (ids, _) in results.items()}
        if mode == "hybrid":
            weights = dict(settings.weights)
            if settings.adaptive:
                coverage = self._coverage(query_tokens, rankings["bm25"][0]) if rankings["bm25"] else 0.0
                weights["vector"] = weights.get("vector", 1.0) * vector_trust(coverage)
            fused = reciprocal_rank_fusion(rankings, weights, settings.rrf_k)
            if settings.document_weight:
                fused = self._add_document_match(fused, query_tokens, settings)
            if settings.hierarchy_step:
                fused = self._prefer_higher_law(fused, query, settings.hierarchy_step)
            fused = fused[:k]
        else:
            ids, scores = results[mode]
            fused = list(zip(ids.tolist(), scores.tolist()))
        if mode != "vector":
            fused = self._cited_articles_first(fused, query, mask)[:k]
        positions = {name: {row: rank for rank, row in enumerate(ranked, 1)} for name, ranked in rankings.items()}
        return [self._hit(row, score, rank, query if terms else "",
                          {name: pos[row] for name, pos in positions.items() if row in pos})
                for rank, (row, score) in enumerate(fused, 1)]

    def _hit(self, row: int, score: float, rank: int, query: str, ranks: dict) -> Hit:
        chunk = self.chunks[row]
        doc = self.documents[chunk.doc_id]
        return Hit(rank=rank, score=float(score), doc_id=chunk.doc_id, title=doc.title, path=doc.path,
                   text=chunk.text, start=chunk.start, end=chunk.end, page=chunk.page, section=chunk.section,
                   article=chunk.article, ordinal=chunk.ordinal, matched_terms=matched_terms(query, chunk.text) if query else (),
                   ranks=ranks, meta=doc.meta)

    def _cited_articles_first(self, ranked: list[tuple[int, float]], query: str,
                              mask: np.ndarray | None) -> list[tuple[int, float]]:
        """`ranked` with the passages of the articles the query cites by law and number first.

        劳动合同法第三十八条 asks for that article, whatever the words around it: the passages whose
        article range covers 38 in a document titled (中华人民共和国)劳动合同法. Only the longest
        titles found in the query count, so 劳动合同法实施条例第十条 is not also 劳动合同法's.
        """
        if "条" not in query:
            return ranked
        text = normalize(query)
        numbers = set(article_numbers(text))
        if not numbers:
            return ranked
        titles = [title for title in self._docs_by_title if title in text]
        titles = [title for title in titles if not any(title != other and title in other for other in titles)]
        cited = []
        for title in titles:
            for doc in self._docs_by_title[title]:
                for row in self._rows_of_doc[doc].tolist():
                    span = article_range(self.chunks[row].article)
                    if span and any(span[0] <= n <= span[1] for n in numbers) and (mask is None or mask[row]):
                        cited.append(row)
        if not cited:
            return ranked
        top = ranked[0][1] if ranked else 0.0
        first = set(cited)
        # Scores just above the best other hit, in the cited order: ranks stay readable.
        return [(row, top + 1e-6 * (len(cited) - i)) for i, row in enumerate(cited)] + \
            [(row, score) for row, score in ranked if row not in first]

    def _add_document_match(self, fused: list[tuple[int, float]], query_tokens: list[str],
                            settings: SearchSettings) -> list[tuple[int, float]]:
        """`fused` with a bonus for the passages of documents outside the legal hierarchy that match
        the query as a whole (see SearchSettings.document_weight)."""
        head = [row for row, _ in fused[:settings.document_candidates]]
        docs = list(dict.fromkeys(self._doc_of_chunk[head].tolist()))
        bigrams = sorted({token for token in query_tokens if len(token) == 2})
        if not bigrams or not self._outside_hierarchy[docs].any():
            return fused
        groups = [self._rows_of_doc[doc] for doc in docs]
        # Ranked among all candidate documents, statutes included, so a lone notice among laws
        # does not come first by default.
        scores, counts = self.bm25.grouped_scores(query_tokens, groups, self._average_doc_tokens)
        covered = sum((counts[bigram] > 0 for bigram in bigrams if bigram in counts), np.zeros(len(docs))) / len(bigrams)
        order = sorted(range(len(docs)), key=lambda i: -scores[i])
        bonus = {docs[i]: settings.document_weight * covered[i] / (settings.rrf_k + rank)
                 for rank, i in enumerate(order, 1) if covered[i] > 0 and self._outside_hierarchy[docs[i]]}
        rescored = [(row, score + bonus.get(doc, 0.0))
                    for (row, score), doc in zip(fused, self._doc_of_chunk[[row for row, _ in fused]].tolist())]
        # Stable: equal scores keep fusion's tie order.
        return sorted(rescored, key=lambda item: -item[1])

    def _prefer_higher_law(self, fused: list[tuple[int, float]], query: str, step: float) -> list[tuple[int, float]]:
        """`fused` re-scored by the hierarchy of legal force, unless the query names a place."""
        ranks = self._legal_rank[self._doc_of_chunk[[row for row, _ in fused]]].tolist()
        # A query about 杭州 wants 杭州's rules, not the national ones first. Checked only when the
        # candidates include lower-ranked legal texts: place lookup costs a millisecond.
        if not any(ranks) or might_name_place(query) and resolve_place(query):
            return fused
        rescored = [(row, score - step * rank) for (row, score), rank in zip(fused, ranks)]
        # Stable: equal scores keep fusion's tie order.
        return sorted(rescored, key=lambda item: -item[1])

    def _coverage(self, query_tokens: list[str], row: int) -> float:
        """Share of the query's bigrams that occur in passage `row` as BM25 indexed it."""
        bigrams = {token for token in query_tokens if len(token) == 2}
        if not bigrams:
            return 0.0
        chunk = self.chunks[row]
        passage = set(tokenize(indexed_text(chunk, self.documents[chunk.doc_id].title), self.tokenizer))
        return len(bigrams & passage) / len(bigrams)

    def _mask(self, filters: Filters, prefix: str | None) -> np.ndarray | None:
        """Passages of the documents the filters admit, or None when nothing is filtered."""
        prefixes = [p for p in (prefix, filters.prefix) if p and p.strip().strip("/")]
        if not prefixes and not filters.restricts():
            return None
        admitted = np.fromiter((all(_under(doc.id, p) for p in prefixes) and filters.admits(doc)
                                for doc in self._doc_list), dtype=bool, count=len(self._doc_list))
        return admitted[self._doc_of_chunk]

    def _embed_query(self, query: str) -> np.ndarray:
        # Comparing modes, evaluating and re-rendering the app ask the same query again and again.
        with self._cache_lock:
            if query in self._query_vectors:
                self._query_vectors.move_to_end(query)
                return self._query_vectors[query]
        vector = self.embedder.embed_queries([query])[0]
        with self._cache_lock:
            self._query_vectors[query] = vector
            while len(self._query_vectors) > QUERY_CACHE_SIZE:
                self._query_vectors.popitem(last=False)
        return vector


def _law_title(title: str) -> str:
    """A title as a query names the law: 中华人民共和国劳动合同法(2012-12-28) -> 劳动合同法."""
    title = without_title_date(normalize(title)).strip().strip("《》")
    return title.removeprefix("中华人民共和国")


def _under(doc_id: str, prefix: str) -> bool:
    prefix = prefix.strip().strip("/").removeprefix("./")
    return doc_id == prefix or doc_id.startswith(prefix + "/")


def _clean_query(query: str) -> str:
    if not isinstance(query, str):
        raise BadQuery("the query must be text")
    # Control characters carry no meaning in a query and confuse the model's tokenizer.
    query = CONTROL_CHARS.sub(" ", query)
    # The characters of documents are normalised at ingest by the same function, for the model as
    # for BM25: a Kangxi radical (⼯), a radical look-alike (⻅) or a full-width letter (Ａ) then means
    # the ordinary character.
    return normalize_chars(query).strip()[:MAX_QUERY_CHARS]


_TERM_SPLIT = re.compile(r"[\W_]+")


def matched_terms(query: str, text: str, longest: int = 16) -> tuple[str, ...]:
    """The longest pieces of the query (2+ characters, or a one-character query) found in `text`, longest first.

    Greedy longest match over each query segment, in normalised (NFKC, case-folded) form: what a
    highlighter needs, whatever the BM25 tokens were.
    """
    haystack = normalize(text)
    found: dict[str, None] = {}
    for segment in _TERM_SPLIT.split(normalize(query)):
        shortest = 1 if len(segment) == 1 else 2
        i = 0
        while i < len(segment):
            for j in range(min(len(segment), i + longest), i + shortest - 1, -1):
                if segment[i:j] in haystack:
                    found.setdefault(segment[i:j])
                    i = j
                    break
            else:
                i += 1
    return tuple(sorted(found, key=lambda term: (-len(term), term)))
