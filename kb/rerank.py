"""Re-rankers of a ranked list of passages: the articles a query cites, the document that matches the query as a
whole, the hierarchy of legal force, and each place's own text first when a query compares places. Pure functions
over (passage row, score) lists and a `Layout` of the index; kb.search composes them (see SearchSettings for when
each applies, docs/eval.md for what each is worth)."""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

import numpy as np

from kb.chunk import article_numbers, article_range
from kb.lexical import BM25Index
from kb.metadata import LEGAL_RANK_BELOW_LAW, LEGAL_TYPES, NATIONAL, is_comparison, might_name_place, resolve_place
from kb.records import Chunk, Document
from kb.tokenize import normalize

Ranked = list[tuple[int, float]]  # (passage row, score), best first


@dataclass(frozen=True, eq=False)
class Layout:
    """What the re-rankers know of an index: which document each passage belongs to, and per document its
    passages, place in the legal hierarchy and title as a query names it. Documents are numbered by their
    position in the index's document order; built once per index."""

    position: Mapping[str, int]  # document id -> its number
    doc_of_passage: np.ndarray  # int64, one per passage
    rows_of_doc: tuple[np.ndarray, ...]  # each document's passage rows, in order
    legal_rank: np.ndarray  # int8 per document: ranks below a national 法律 (metadata.LEGAL_RANK_BELOW_LAW)
    outside_hierarchy: np.ndarray  # bool per document: not a legal text (a notice, a report)
    national: np.ndarray  # bool per document: its place is 全国 (a national law, a central body's notice)
    articles: tuple[str, ...]  # each passage's article label (第X条, 第X条至第Y条 or "")
    docs_by_title: Mapping[str, tuple[int, ...]]  # law title as a query names it -> its documents
    average_doc_tokens: float  # BM25 tokens per document, for the document match's length norm

    @classmethod
    def build(cls, documents: Sequence[Document], chunks: Sequence[Chunk], passage_lengths: np.ndarray,
              law_title: Callable[[str], str]) -> Layout:
        """The layout of `documents` (in index order) and their `chunks`; `passage_lengths` are BM25's tokens
        per passage, `law_title` turns a document title into the name a query cites it by."""
        position = {doc.id: i for i, doc in enumerate(documents)}
        doc_of_passage = np.fromiter((position[chunk.doc_id] for chunk in chunks), dtype=np.int64, count=len(chunks))
        legal_rank = np.array([LEGAL_RANK_BELOW_LAW.get(doc.meta.doc_type, 0) for doc in documents] or [0],
                              dtype=np.int8)
        outside_hierarchy = np.array([doc.meta.doc_type not in LEGAL_TYPES for doc in documents] or [False])
        national = np.array([doc.meta.place == (NATIONAL,) for doc in documents] or [False])
        by_doc = np.argsort(doc_of_passage, kind="stable")
        rows_of_doc = np.split(by_doc, np.cumsum(np.bincount(doc_of_passage, minlength=len(documents)))[:-1])
        by_title: dict[str, list[int]] = {}
        for i, doc in enumerate(documents):
            title = law_title(doc.title)
            if len(title) >= 3:
                by_title.setdefault(title, []).append(i)
        return cls(MappingProxyType(position), doc_of_passage, tuple(rows_of_doc), legal_rank, outside_hierarchy, national,
                   tuple(chunk.article for chunk in chunks),
                   MappingProxyType({title: tuple(docs) for title, docs in by_title.items()}),
                   float(passage_lengths.sum()) / max(1, len(documents)))


def cited_articles_first(ranked: Ranked, query: str, layout: Layout, mask: np.ndarray | None) -> Ranked:
    """`ranked` with the passages of the articles the query cites by law and number first.

    劳动合同法第三十八条 asks for that article, whatever the words around it: the passages whose
    article range covers 38 in a document titled (中华人民共和国)劳动合同法. Only the longest
    titles found in the query count, so 劳动合同法实施条例第十条 is not also 劳动合同法's. Passages
    outside `mask` (the filters) are never added.
    """
    if "条" not in query:
        return ranked
    text = normalize(query)
    numbers = set(article_numbers(text))
    if not numbers:
        return ranked
    titles = [title for title in layout.docs_by_title if title in text]
    titles = [title for title in titles if not any(title != other and title in other for other in titles)]
    cited = []
    for title in titles:
        for doc in layout.docs_by_title[title]:
            for row in layout.rows_of_doc[doc].tolist():
                span = article_range(layout.articles[row])
                if span and any(span[0] <= n <= span[1] for n in numbers) and (mask is None or mask[row]):
                    cited.append(row)
    if not cited:
        return ranked
    top = ranked[0][1] if ranked else 0.0
    first = set(cited)
    # Scores just above the best other hit, in the cited order: ranks stay readable.
    return [(row, top + 1e-6 * (len(cited) - i)) for i, row in enumerate(cited)] + \
        [(row, score) for row, score in ranked if row not in first]


def add_document_match(fused: Ranked, query_tokens: list[str], layout: Layout, bm25: BM25Index, weight: float,
                       candidates: int, rrf_k: int) -> Ranked:
    """`fused` with a bonus for the passages of documents outside the legal hierarchy that match the query
    as a whole: among the documents of the first `candidates` passages, ranked by BM25 over each document's
    passages taken together, the one at rank r adds weight * d / (rrf_k + r), d the share of the query's
    bigrams found anywhere in it (see SearchSettings.document_weight)."""
    head = [row for row, _ in fused[:candidates]]
    docs = list(dict.fromkeys(layout.doc_of_passage[head].tolist()))
    bigrams = sorted({token for token in query_tokens if len(token) == 2})
    if not bigrams or not layout.outside_hierarchy[docs].any():
        return fused
    groups = [layout.rows_of_doc[doc] for doc in docs]
    # Ranked among all candidate documents, statutes included, so a lone notice among laws
    # does not come first by default.
    scores, counts = bm25.grouped_scores(query_tokens, groups, layout.average_doc_tokens)
    covered = sum((counts[bigram] > 0 for bigram in bigrams if bigram in counts), np.zeros(len(docs))) / len(bigrams)
    order = sorted(range(len(docs)), key=lambda i: -scores[i])
    bonus = {docs[i]: weight * covered[i] / (rrf_k + rank)
             for rank, i in enumerate(order, 1) if covered[i] > 0 and layout.outside_hierarchy[docs[i]]}
    rescored = [(row, score + bonus.get(doc, 0.0))
                for (row, score), doc in zip(fused, layout.doc_of_passage[[row for row, _ in fused]].tolist())]
    # Stable: equal scores keep fusion's tie order.
    return sorted(rescored, key=lambda item: -item[1])


def prefer_higher_law(fused: Ranked, query: str, layout: Layout, step: float) -> Ranked:
    """`fused` re-scored by the hierarchy of legal force: a legal text loses `step` per rank it stands below a
    national 法律; unchanged when the query names a place or compares places (see SearchSettings.hierarchy_step)."""
    ranks = layout.legal_rank[layout.doc_of_passage[[row for row, _ in fused]]].tolist()
    # A query about 杭州 wants 杭州's rules, not the national ones first, and a comparison (各地…的规定)
    # wants every place's. Checked only when the candidates include lower-ranked legal texts: place
    # lookup costs a millisecond.
    if not any(ranks) or is_comparison(query) or might_name_place(query) and resolve_place(query):
        return fused
    rescored = [(row, score - step * rank) for (row, score), rank in zip(fused, ranks)]
    # Stable: equal scores keep fusion's tie order.
    return sorted(rescored, key=lambda item: -item[1])


def prefer_local_texts(fused: Ranked, query: str, layout: Layout, step: float) -> Ranked:
    """`fused` with national texts (place 全国) `step` lower when the query compares places (metadata.is_comparison);
    unchanged otherwise (see SearchSettings.comparison_step)."""
    national = layout.national[layout.doc_of_passage[[row for row, _ in fused]]].tolist()
    if not any(national) or not is_comparison(query):
        return fused
    rescored = [(row, score - step * is_national) for (row, score), is_national in zip(fused, national)]
    # Stable: equal scores keep fusion's tie order.
    return sorted(rescored, key=lambda item: -item[1])
