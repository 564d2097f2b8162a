"""Cited passages: citations, an extractive answer, passages by place, highlighted HTML from escaped text."""
from __future__ import annotations

import html
import re
from collections import defaultdict

from kb.metadata import place_label
from kb.records import AnswerSentence, Citation, Hit, PlaceGroup
from kb.tokenize import normalize, tokenize
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


def extractive_answer(query: str, hits: list[Hit], max_sentences: int = 3, from_top: int = 5) -> list[AnswerSentence]:
    """The few sentences of the top passages that best answer `query`, quoted, each citing its hit.

    A sentence scores by the share of the query's words (its character pairs, question words
    dropped: the BM25 tokens) that it contains, discounted by its passage's rank, so a sentence of
    the first passage wins a tie. Nothing is generated: every sentence is a span of a source.
    """
    wanted = {token for token in tokenize(query) if len(token) > 1} or set(tokenize(query))
    if not wanted:
        return []
    scored = []
    for hit in hits[:from_top]:
        for match in _SENTENCE.finditer(hit.text):
            sentence = match.group().strip()
            if len(sentence) < MIN_SENTENCE_CHARS:
                continue
            share = len(wanted & set(tokenize(sentence))) / len(wanted)
            if share == 0:
                continue
            offset = match.start() + (len(match.group()) - len(match.group().lstrip()))
            start = hit.start + offset
            scored.append((share / (1 + 0.1 * (hit.rank - 1)), hit.rank, start,
                           AnswerSentence(sentence, hit.rank, hit.doc_id, start, start + len(sentence))))
    best: list[AnswerSentence] = []
    seen: set[str] = set()
    for _, _, _, answer in sorted(scored, key=lambda item: (-item[0], item[1], item[2])):
        if answer.text not in seen:  # the same sentence in two overlapping passages counts once
            seen.add(answer.text)
            best.append(answer)
        if len(best) == max_sentences:
            break
    return best


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
