"""Query answering over one loaded index: BM25, vector and hybrid (RRF) modes, filters, matched terms."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from kb.chunk import indexed_text
from kb.embed import Embedder
from kb.embed.base import VectorMemo
from kb.errors import BadQuery
from kb.fusion import RRF_K, reciprocal_rank_fusion, vector_trust
from kb.lexical import BM25Index
from kb.metadata import place_matches
from kb.records import Chunk, Document, Hit
from kb.rerank import Layout, add_document_match, cited_articles_first, prefer_higher_law, prefer_local_texts
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

    @cached_property
    def folder(self) -> str:
        """The prefix as a document id starts: policies/ and ./policies are policies; a prefix of only
        slashes or spaces names no folder ("")."""
        return self.prefix.strip().strip("/").removeprefix("./")

    def admits(self, document: Document) -> bool:
        """Whether the filters let this document through."""
        folder = self.folder
        if folder and not (document.id == folder or document.id.startswith(folder + "/")):
            return False
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
        # A prefix that names no folder is the whole index: no filter, so HNSW still serves it.
        return bool(self.folder or self.place or self.since or self.until or self.doc_types)


_DATE_BOUND = re.compile(r"(?:19|20)\d\d(?:-(?:0[1-9]|1[0-2])(?:-(?:0[1-9]|[12]\d|3[01]))?)?")


@dataclass(frozen=True)
class SearchSettings:
    """How hybrid mode fuses: list depth per mode, RRF constant, weight per mode.

    With `adaptive`, the vector weight is multiplied by fusion.vector_trust(coverage): the share of
    the query's character bigrams found in the best BM25 passage.
    """

    # Each list's depth for k <= depth. At k 10, depth 50 fuses to the same quality as 100 on both
    # eval sets (30 loses a little; docs/eval.md, Fusion), and BM25's top 50 costs less than its top
    # 100 at a million passages.
    depth: int = 50
    rrf_k: int = RRF_K
    weights: dict = field(default_factory=lambda: {"bm25": 1.0, "vector": 1.0})
    adaptive: bool = True
    # When the query names no place, a legal text loses this much fused score per rank it stands
    # below a national 法律 (metadata.LEGAL_RANK_BELOW_LAW): the statute answers a layperson's legal
    # question before the regulations, interpretations and local rules that implement it. Texts
    # outside the hierarchy keep their score, so policy documents in a mixed index are unaffected.
    # 0 turns it off. What it gains on laws, and that policies (mixed index) are unchanged: docs/eval.md,
    # Hierarchy of legal force.
    hierarchy_step: float = 0.03
    # A document outside the legal hierarchy (a notice, a report) is about one matter, so a query
    # its text covers as a whole is about it: among the documents of the first
    # `document_candidates` fused passages, ranked by BM25 over each document's passages taken
    # together, the one at rank r adds document_weight * d / (rrf_k + r) to its passages, d the share
    # of the query's bigrams found anywhere in it (a document without the query's words gains
    # nothing). Statutes are left out: a law of 200 articles matches many words of any legal
    # question. 0 turns it off. What it gains on policies, and that laws are unchanged: docs/eval.md,
    # Document match.
    document_weight: float = 1.0
    document_candidates: int = 50
    # The document match is lexical evidence, so it waits, like the BM25 list, for a query whose words
    # are found as such: it applies only when the best BM25 passage holds at least this share of the
    # query's bigrams. At 1/3 fusion.vector_trust weighs the vector list as much as BM25's; below it the
    # query is a paraphrase (老板拖着不签合同), and a notice that shares its everyday words is no answer.
    # 0 applies it always. docs/eval.md, Comparisons and the re-ranking rules.
    document_min_coverage: float = 1 / 3
    # A query that compares places (各地…的规定, 上海、北京、河南…比较: metadata.is_comparison) asks for each
    # place's own rule; the national law or notice they all implement is the baseline, not an answer. So
    # the hierarchy step does not apply to it, and a national text (place 全国) loses this much fused
    # score instead: three hierarchy steps, the distance statute-first ordering puts between a 法律 and a
    # local rule, turned the other way. 0 turns it off. What each is worth: docs/eval.md, Comparisons and
    # the re-ranking rules.
    comparison_step: float = 0.09
    # Whether the BM25 list fused holds passages that share only single characters with a query whose
    # longer terms (bigrams, words) some passage holds: 欠 alone brings 欠税 to a search for 欠薪. Off,
    # such passages reach hybrid results only through the vector list. bm25 mode ranks them last
    # (BM25Index.top_tiered). What it changes on the eval sets: docs/eval.md, Lexical noise.
    fuse_single_characters: bool = False


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
        self._layout = Layout.build(self._doc_list, chunks, bm25.passage_lengths, _law_title)
        self._query_vectors = VectorMemo(QUERY_CACHE_SIZE)

    def rows_of(self, doc_id: str) -> np.ndarray:
        """Passage numbers of one document, in order (empty for a document not indexed)."""
        position = self._layout.position.get(doc_id)
        return self._layout.rows_of_doc[position] if position is not None else np.zeros(0, dtype=np.int64)

    def clear_query_cache(self) -> None:
        """Forget the query vectors embedded so far, so the next searches embed their queries again (a
        benchmark timing searches end to end)."""
        self._query_vectors.clear()

    def search(self, query: str, mode: str = "hybrid", k: int = 10, *, filters: Filters | None = None,
               settings: SearchSettings = SearchSettings(), terms: bool = True) -> list[Hit]:
        """The k best passages for `query`, best first, among the documents `filters` admit.

        `terms=False` leaves `matched_terms` empty: evaluation needs no highlights, and finding them
        costs more than the search itself at depth 300.
        """
        if mode not in MODES:
            raise BadQuery(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        if not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise BadQuery(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
        query = prepare_query(query)
        if not re.search(r"\w", query):
            raise BadQuery("the query has no words: type some words or a question")
        mask = self._mask(filters or Filters())
        depth = max(k, settings.depth) if mode == "hybrid" else k
        results: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        query_tokens = tokenize(query, self.tokenizer)
        if mode in ("bm25", "hybrid"):
            results["bm25"] = self.bm25.top_tiered(query_tokens, depth, mask, single_characters=(
                mode == "bm25" or settings.fuse_single_characters))
        if mode in ("vector", "hybrid"):
            results["vector"] = self.vectors.top(self._embed_query(query), depth, mask)
        rankings = {name: ids.tolist() for name, (ids, _) in results.items()}
        if mode == "hybrid":
            weights = dict(settings.weights)
            coverage = self._coverage(query_tokens, rankings["bm25"][0]) if rankings["bm25"] else 0.0
            if settings.adaptive:
                weights["vector"] = weights.get("vector", 1.0) * vector_trust(coverage)
            fused = reciprocal_rank_fusion(rankings, weights, settings.rrf_k)
            if settings.document_weight and coverage >= settings.document_min_coverage:
                fused = add_document_match(fused, query_tokens, self._layout, self.bm25, settings.document_weight,
                                           settings.document_candidates, settings.rrf_k)
            if settings.hierarchy_step:
                fused = prefer_higher_law(fused, query, self._layout, settings.hierarchy_step)
            if settings.comparison_step:
                fused = prefer_local_texts(fused, query, self._layout, settings.comparison_step)
            fused = fused[:k]
        else:
            ids, scores = results[mode]
            fused = list(zip(ids.tolist(), scores.tolist()))
        if mode != "vector":
            fused = cited_articles_first(fused, query, self._layout, mask)[:k]
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

    def _coverage(self, query_tokens: list[str], row: int) -> float:
        """Share of the query's bigrams that occur in passage `row` as BM25 indexed it."""
        bigrams = {token for token in query_tokens if len(token) == 2}
        if not bigrams:
            return 0.0
        chunk = self.chunks[row]
        passage = set(tokenize(indexed_text(chunk, self.documents[chunk.doc_id].title), self.tokenizer))
        return len(bigrams & passage) / len(bigrams)

    def _mask(self, filters: Filters) -> np.ndarray | None:
        """Passages of the documents the filters admit, or None when nothing is filtered."""
        if not filters.restricts():
            return None
        admitted = np.fromiter((filters.admits(doc) for doc in self._doc_list), dtype=bool, count=len(self._doc_list))
        return admitted[self._layout.doc_of_passage]

    def query_vector(self, query: str) -> np.ndarray:
        """The model's vector of `query` as a search takes it (prepare_query), from the cache of
        queries searched when it is there."""
        return self._embed_query(prepare_query(query))

    def _embed_query(self, query: str) -> np.ndarray:
        # Comparing modes, evaluating and re-rendering the app ask the same query again and again.
        return self._query_vectors.vectors([query], self.embedder.embed_queries)[0]


def _law_title(title: str) -> str:
    """A title as a query names the law: 中华人民共和国劳动合同法(2012-12-28) -> 劳动合同法."""
    title = without_title_date(normalize(title)).strip().strip("《》")
    return title.removeprefix("中华人民共和国")


def prepare_query(query: str) -> str:
    """A query as search reads it: control characters dropped, characters normalised as documents are,
    cut to MAX_QUERY_CHARS, traditional characters made simplified (BadQuery for what is not text)."""
    return to_simplified(_clean_query(query))


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
