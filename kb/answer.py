"""Cited passages: citations for hits, and highlighted HTML built from escaped text."""
from __future__ import annotations

import html
import re
import unicodedata

from kb.metadata import place_label
from kb.records import Citation, Hit


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

    Matching is done on the raw text (case-insensitive, NFKC-equal forms) and each piece is escaped
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
    # Document text is already NFKC; casefold keeps offsets for CJK and ASCII alike.
    folded = text.casefold() if len(text.casefold()) == len(text) else text
    taken = [False] * len(text)
    spans = []
    for term in sorted({unicodedata.normalize("NFKC", t).casefold() for t in terms if t}, key=len, reverse=True):
        for match in re.finditer(re.escape(term), folded):
            start, end = match.span()
            if not any(taken[start:end]):
                taken[start:end] = [True] * (end - start)
                spans.append((start, end))
    return sorted(spans)
