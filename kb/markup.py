"""Text from documents and file names made safe for the renderer it goes to: an HTML block or Markdown.

A title, a path or an error naming a file is shown as the text it is: it never becomes a link, an
image, bold text, a heading, math or a colour directive, and never ends the HTML block around it.
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
