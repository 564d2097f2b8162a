"""Text from documents and file names made safe for where it is shown: an HTML block, Markdown, a
terminal, a file name.

A title, a path or an error naming a file is shown as the text it is: it never becomes a link, an
image, bold text, a heading, math or a colour directive, never ends the HTML block around it, and
never moves a terminal's cursor, recolours it or reorders what it shows.
"""
from __future__ import annotations

import html
import re

# CommonMark lets a backslash escape exactly the ASCII punctuation characters; this covers Markdown,
# GFM, Streamlit's $math$ and :color[...] directives and raw HTML alike.
_ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def one_line(text: object) -> str:
    """`text` with every run of white space, line breaks included, made one space."""
    return " ".join(str(text).split())


def html_text(text: object) -> str:
    """Text for inside an HTML block: escaped and on one line, since a blank line ends the block and
    what follows would be read as Markdown."""
    return html.escape(one_line(text))


def markdown_text(text: object) -> str:
    """Text for a Markdown element (st.caption, st.warning, …), shown literally and on one line."""
    return markdown_escaped(one_line(text))


def markdown_escaped(text: str) -> str:
    """Text whose every character Markdown would act on is escaped; line breaks are kept."""
    return _ASCII_PUNCTUATION.sub(r"\\\1", text)


# C0 and C1 controls (ESC, CR, BEL, CSI …), DEL, the bidirectional overrides and marks, and lone
# surrogates (a file name that is not UTF-8): nothing a reader should get from a document or a name.
UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def terminal_text(text: str) -> str:
    """Text safe to print: line breaks and tabs kept, everything UNPRINTABLE dropped."""
    return UNPRINTABLE.sub("", text)


def terminal_line(text: str) -> str:
    """One printable line (a message or a file name)."""
    return one_line(terminal_text(text))


def escape_unprintable(text: str) -> str:
    """JSON or other escaped output: each UNPRINTABLE character as a \\uXXXX escape, so the data stays whole."""
    return UNPRINTABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
