"""Cited passages: citations, an extractive answer, passages by place, highlighted HTML from escaped text."""
from __future__ import annotations

import html
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from kb.chunk import in_context, text_parts
from kb.embed import Embedder
from kb.embed.base import VectorMemo
from kb.metadata import place_label
from kb.records import AnswerSentence, Citation, Hit, PlaceGroup
from kb.tokenize import normalize, to_simplified, tokenize
from kb.zh import SENTENCE_ENDS


def cite(hit: Hit) -> Citation:
    """The citation of a hit: document, page or article, section and character span."""
    return Citation(title=hit.title, doc_id=hit.doc_id, path=hit.path, page=hit.page, article=hit.article,
                    section=hit.section, start=hit.start, end=hit.end, place=place_label(hit.meta.place),
                    date=hit.meta.date, doc_number=hit.meta.doc_number)


def hit_to_json(hit: Hit) -> dict:
    """A hit as plain JSON fields (the `kb search --json` shape)."""
    return {
        "rank": hit.rank, "score": round(hit.score, 6), "doc": hit.doc_id, "title": hit.title, "path": hit.path,
        "page": hit.page, "article": hit.article or None, "section": hit.section or None, "start": hit.start,
        "end": hit.end, "text": hit.text, "matched_terms": list(hit.matched_terms), "citation": cite(hit).label(),
        "ranks": hit.ranks, "place": place_label(hit.meta.place) or None, "date": hit.meta.date or None,
        "issuer": hit.meta.issuer or None, "doc_number": hit.meta.doc_number or None,
        "doc_type": hit.meta.doc_type or None,
    }


def highlight_html(text: str, terms: tuple[str, ...] | list[str], tag: str = "mark") -> str:
    """`text` as HTML with every occurrence of `terms` wrapped in <mark>; everything else is escaped.

    Matching is done on the raw text (case-insensitive, in kb.zh's normalised forms) and each piece is escaped
    on its own, so no markup in a document can ever reach the page.
    """
    spans = _term_spans(text, terms)
    pieces, position = [], 0
    for start, end in spans:
        pieces.append(html.escape(text[position:start]))
        pieces.append(f"<{tag}>{html.escape(text[start:end])}</{tag}>")
        position = end
    pieces.append(html.escape(text[position:]))
    return "".join(pieces)


def _term_spans(text: str, terms) -> list[tuple[int, int]]:
    """Non-overlapping (start, end) spans of the terms in `text`, longest term winning."""
    # Document text is already normalised (kb.zh.normalize_text); casefold keeps offsets for CJK and ASCII alike.
    folded = text.casefold() if len(text.casefold()) == len(text) else text
    taken = [False] * len(text)
    spans = []
    for term in sorted({normalize(t) for t in terms if t}, key=len, reverse=True):
        for match in re.finditer(re.escape(term), folded):
            start, end = match.span()
            if not any(taken[start:end]):
                taken[start:end] = [True] * (end - start)
                spans.append((start, end))
    return sorted(spans)


# A quoted sentence ends where the chunker may cut one, or at a line end (a 第X条 starts a line).
_SENTENCE = re.compile(f"[^{SENTENCE_ENDS}\\n]+[{SENTENCE_ENDS}]?")
MIN_SENTENCE_CHARS = 8
SENTENCE_CACHE_SIZE = 4096  # sentence vectors kept: the app asks again for the answer it just showed


@dataclass(frozen=True)
class AnswerSettings:
    """How an extractive answer is chosen: from which passages, how many sentences are weighed by the
    model, and how a sentence's score mixes the model's similarity with the query's words.

    A sentence scores similarity(query, sentence) + overlap_weight * (share of the query's words it
    holds) + opening_bonus when it opens its article or paragraph (where a rule is stated; what follows
    qualifies it) - rank_discount * (its passage's rank - 1). The weights were chosen on the training
    part of the eval sets (docs/eval.md, Answers).
    """

    max_sentences: int = 3
    from_top: int = 5  # passages quoted from
    # Sentences embedded per answer at most (those with the best score without the model); the model
    # takes tens of short texts per second on two cores, and a sentence under its title and section
    # costs more than a lone one (docs/performance.md, Answers). With the words weighing as they do,
    # more candidates did not change the answer on the training part (docs/eval.md, Answers).
    candidates: int = 24
    overlap_weight: float = 0.2
    opening_bonus: float = 0.02
    rank_discount: float = 0.02

    def __post_init__(self) -> None:
        for name in ("max_sentences", "from_top", "candidates"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        for name in ("overlap_weight", "opening_bonus", "rank_discount"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class Candidate:
    """A sentence of a top passage that may be quoted, with what is known of it before the model."""

    sentence: AnswerSentence
    overlap: float  # share of the query's words (its BM25 tokens of two characters) in the sentence
    opens: bool  # the first sentence of its article or paragraph
    # What the model embeds: the sentence under its document's title and section, the shape in which
    # the index embeds passages and kb tune trains the model (chunk.indexed_text), not a lone sentence.
    embedded: str

    def prior(self, settings: AnswerSettings) -> float:
        """Its score without the model's similarity."""
        return (settings.overlap_weight * self.overlap + settings.opening_bonus * self.opens
                - settings.rank_discount * (self.sentence.citation - 1))


def query_words(query: str) -> set[str]:
    """What a sentence shares with the query: its character pairs, question words dropped (the BM25
    tokens), in simplified characters; its single characters when it has no pair."""
    tokens = tokenize(to_simplified(query))
    return {token for token in tokens if len(token) > 1} or set(tokens)


# A document id -> where its title and enactment history end in its text (chunk.preamble_end).
Preambles = Callable[[str], int]


def candidate_sentences(query: str, hits: list[Hit], from_top: int = 5,
                        preambles: Preambles | None = None) -> list[Candidate]:
    """The sentences of the first `from_top` hits that an answer may quote, in order of hit and place.

    Never a heading (第X章, a Markdown heading, a short numbered title: the chunker's rules,
    chunk.text_parts), the enactment history above a law's text (known from `preambles`; without it,
    only a hit whose text holds the INFO END line shows it), or the document's title; a sentence
    found in two overlapping passages counts once, in the better one.
    """
    wanted = query_words(query)
    if not wanted:
        return []
    found: list[Candidate] = []
    seen: set[str] = set()
    for hit in hits[:from_top]:
        title = normalize(hit.title)
        preamble = None if preambles is None else preambles(hit.doc_id) - hit.start
        for part in text_parts(hit.text, preamble):
            if part.heading or part.preamble:
                continue
            for number, match in enumerate(_SENTENCE.finditer(hit.text, part.start, part.end)):
                sentence = match.group().strip()
                if len(sentence) < MIN_SENTENCE_CHARS or sentence in seen or normalize(sentence) in title:
                    continue
                seen.add(sentence)
                start = hit.start + match.start() + len(match.group()) - len(match.group().lstrip())
                share = len(wanted & set(tokenize(sentence))) / len(wanted)
                found.append(Candidate(AnswerSentence(sentence, hit.rank, hit.doc_id, start, start + len(sentence)),
                                       share, number == 0, in_context(sentence, hit.title, hit.section)))
    return found


Embed = Callable[[list[str]], np.ndarray]


def extractive_answer(query: str, hits: list[Hit], settings: AnswerSettings = AnswerSettings(), *,
                      query_vector: np.ndarray | None = None, embed: Embed | None = None,
                      preambles: Preambles | None = None) -> list[AnswerSentence]:
    """The few sentences of the top passages that best answer `query`, quoted, each citing its hit.

    With the query's vector and `embed` (the index's model on passages), a sentence scores by the
    model's similarity to the query (of the sentence under its title and section: Candidate.embedded)
    plus the share of the query's words it holds, less a little per rank of its passage
    (AnswerSettings); only the `candidates` best by words and rank go to the model. Without them, by
    words and rank alone, and a sentence must share a word. Nothing is generated: every sentence is a
    span of a source. `preambles` tells enactment histories (candidate_sentences).
    """
    candidates = candidate_sentences(query, hits, settings.from_top, preambles)
    if query_vector is None or embed is None:
        embed = None
        candidates = [candidate for candidate in candidates if candidate.overlap > 0]
    # Stable sorts: a tie goes to the better passage, then to the earlier sentence.
    candidates = sorted(candidates, key=lambda candidate: -candidate.prior(settings))[:settings.candidates]
    if not candidates:
        return []
    scores = np.array([candidate.prior(settings) for candidate in candidates])
    if embed is not None and query_vector is not None:
        scores += embed([candidate.embedded for candidate in candidates]) @ query_vector
    order = sorted(range(len(candidates)), key=lambda i: -scores[i])
    return [candidates[i].sentence for i in order[:settings.max_sentences]]


class Answerer:
    """Extractive answers with an index's model; the vectors of sentences quoted lately are kept."""

    def __init__(self, embedder: Embedder, query_vector: Callable[[str], np.ndarray], preambles: Preambles):
        self._embedder = embedder
        self._query_vector = query_vector
        self._preambles = preambles
        self._vectors = VectorMemo(SENTENCE_CACHE_SIZE)

    def answer(self, query: str, hits: list[Hit], settings: AnswerSettings = AnswerSettings()) -> list[AnswerSentence]:
        """extractive_answer with the model: `query` as the search took it (see KnowledgeBase.answer)."""
        if not query_words(query) or not hits:
            return []
        return extractive_answer(query, hits, settings, query_vector=self._query_vector(query), embed=self._embed,
                                 preambles=self._preambles)

    def _embed(self, sentences: list[str]) -> np.ndarray:
        return self._vectors.vectors(sentences, self._embedder.embed_passages)


def group_label(group: PlaceGroup) -> str:
    """A compare row's place: 浙江省/杭州市, 全国, or 未标明地区 for documents that name none."""
    return place_label(group.place) or "未标明地区"


def group_by_place(hits: list[Hit], level: str = "city", per_place: int = 2) -> list[PlaceGroup]:
    """Hits grouped by the place of their document, at province or city level, best place first.

    A place's rank is that of its best passage; each group keeps its `per_place` best passages.
    National texts form one group (全国); documents that name no place form the last group.
    """
    if level not in ("province", "city"):
        raise ValueError("level must be 'province' or 'city'")
    depth = 1 if level == "province" else 2
    groups: dict[tuple[str, ...], list[Hit]] = defaultdict(list)
    for hit in hits:
        groups[hit.meta.place[:depth]].append(hit)
    ordered = sorted(groups.items(), key=lambda item: (not item[0], min(hit.rank for hit in item[1])))
    return [PlaceGroup(place, tuple(sorted(group, key=lambda hit: hit.rank)[:per_place])) for place, group in ordered]
