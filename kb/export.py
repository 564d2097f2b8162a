"""Search results as files: CSV, and Markdown with numbered citations and a GB/T 7714 reference list."""
from __future__ import annotations

import csv
import io

from kb.answer import cite, group_label
from kb.markup import markdown_escaped, markdown_text
from kb.metadata import place_label
from kb.records import Hit, PlaceGroup

CSV_FIELDS = ("rank", "score", "title", "citation", "place", "date", "issuer", "doc_number", "doc_type",
              "article", "page", "section", "doc_id", "start", "end", "text")
# GB/T 7714-2015 document type codes: 报告 is [R]; laws, regulations and official documents are
# cited as 其他 [Z].
_TYPE_CODES = {"报告": "R"}


# A cell starting with one of these is a formula to Excel, WPS and LibreOffice (=HYPERLINK(...) runs
# when the file is opened); OWASP's advice is to make such a cell text with a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    """A CSV cell that a spreadsheet shows as the text it is: numbers as numbers, text never as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _write_row(writer, row: list) -> None:
    writer.writerow([_cell(value) for value in row])


def hits_to_csv(hits: list[Hit]) -> str:
    """One row per passage, with its citation and the document's metadata (UTF-8; Excel wants the BOM)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for hit in hits:
        meta = hit.meta
        _write_row(writer, [hit.rank, round(hit.score, 6), hit.title, cite(hit).label(), place_label(meta.place),
                            meta.date, meta.issuer, meta.doc_number, meta.doc_type, hit.article, hit.page or "",
                            hit.section, hit.doc_id, hit.start, hit.end, hit.text])
    return out.getvalue()


def places_to_csv(groups: list[PlaceGroup]) -> str:
    """The compare-by-place table: one row per place with its best passages and their citations."""
    out = io.StringIO()
    writer = csv.writer(out)
    width = max((len(group.hits) for group in groups), default=0)
    header = ["place"]
    for n in range(1, width + 1):
        header += [f"passage_{n}", f"citation_{n}", f"date_{n}"]
    writer.writerow(header)
    for group in groups:
        row = [group_label(group)]
        for hit in group.hits:
            row += [hit.text, cite(hit).label(), hit.meta.date]
        _write_row(writer, row)
    return out.getvalue()


def reference(hit: Hit) -> str:
    """The GB/T 7714 entry of a hit's document: 责任者. 题名: 文号[Z]. 日期."""
    meta = hit.meta
    title = hit.title + (f": {meta.doc_number}" if meta.doc_number else "")
    entry = f"{meta.issuer}. " if meta.issuer else ""
    entry += f"{title}[{_TYPE_CODES.get(meta.doc_type, 'Z')}]."
    if meta.date:
        entry += f" {meta.date}."
    return entry


def hits_to_markdown(query: str, hits: list[Hit]) -> str:
    """The passages numbered by document in order of first citation, then the reference list."""
    numbers: dict[str, int] = {}
    firsts: list[Hit] = []
    for hit in hits:
        if hit.doc_id not in numbers:
            numbers[hit.doc_id] = len(numbers) + 1
            firsts.append(hit)
    lines = [f"# 检索：{markdown_text(query)}", ""]
    for hit in hits:
        where = " · ".join(part for part in (f"第{hit.page}页" if hit.page else "", hit.article, hit.section) if part)
        located = f" {markdown_text(where)}" if where else ""
        lines.append(f"{hit.rank}. 《{markdown_text(hit.title)}》{located} [{numbers[hit.doc_id]}]")
        lines.append("")
        lines.extend("   > " + line for line in markdown_escaped(hit.text).splitlines() if line.strip())
        lines.append("")
    lines += ["## 参考文献", ""]
    lines += [f"[{numbers[hit.doc_id]}] {markdown_text(reference(hit))}" for hit in firsts]
    return "\n".join(lines) + "\n"
