"""Tokenizers for BM25: one tokenize() for documents and queries, so both sides always match."""
from __future__ import annotations

import logging
import re
import threading
from operator import add

from kb.zh import DOC_NUMBER_TAIL, IDEOGRAPHS, basic_ideographs, doc_number, normalize_chars

# Name -> version. Bump a version whenever that tokenizer's output changes for any input: the
# version is stored in index manifests (tokenizer_id) so an index is never queried with tokens
# it was not built with. (Mapping the CJK radical look-alikes in tokenize too, as kb.zh.normalize_chars
# does, kept version 2: document text is mapped at ingest already, so indexed tokens are the same;
# only a title taken from a file name that holds a look-alike is tokenised differently.)
TOKENIZERS: dict[str, int] = {"cjk-bigram": 2, "cjk-bigram-noquestion": 2, "jieba": 2, "cjk-bigram+jieba": 2}

# The best of bench/tokenizers.py on both eval sets: removing question words beats plain cjk-bigram;
# jieba and the union were no better and much slower (docs/eval.md, "Tokenizer choice").
DEFAULT_TOKENIZER: str = "cjk-bigram-noquestion"

_CJK_RUN = re.compile(f"[{IDEOGRAPHS}]+")
# Letters and digits of every other script: ASCII words, numbers, and e.g. Greek or Latin with
# accents. Underscore is a \w character but separates words in practice.
_WORD_RUN = re.compile(f"[^\\W_{IDEOGRAPHS}]+")
_HAS_WORD_CHAR = re.compile(r"[^\W_]")
# Interrogatives of layperson questions ("老板拖欠工资怎么办？", "有哪些补贴"). Documents rarely use
# them, so their characters and pairs get a high idf and pull in passages that share only the
# question form. Longest first (怎么办 before 怎么); the particles 吗 and 呢 only at a clause end,
# so 吗啡 and 呢绒 keep their characters.
_QUESTION_WORDS = re.compile(
    "怎么办|怎么样|为什么|怎么|怎样|如何|哪些|哪个|哪里|哪儿|什么|是否|能否|可否|有何|为何|多少"
    "|[吗呢](?=\\W|$)"
)


# Document numbers (文号) are tokens of their own: grams alone cannot tell 国办发〔2020〕4号 from
# 国办发明电〔2020〕1号.
_DOC_NUMBER = re.compile(DOC_NUMBER_TAIL)
_ISSUER_END = re.compile(f"[{IDEOGRAPHS}]{{1,6}}$")


def normalize(text: str) -> str:
    """The matching form of text: kb.zh.normalize_chars (NFKC, radical look-alikes) then casefold."""
    return normalize_chars(text).casefold()


_t2s_lock = threading.Lock()
_t2s_converter = None


def _converter():
    global _t2s_converter
    if _t2s_converter is None:
        with _t2s_lock:
            if _t2s_converter is None:
                import opencc  # here, so that only texts that need it load its dictionaries

                _t2s_converter = opencc.OpenCC("t2s")
    return _t2s_converter


def traditional_share(text: str) -> float:
    """Share of the CJK ideographs of `text` that are traditional forms on their own (勞 → 劳)."""
    ideographs = basic_ideographs(text)
    if not ideographs:
        return 0.0
    return sum(a != b for a, b in zip(ideographs, simplify(ideographs))) / len(ideographs)


def simplify(text: str) -> str:
    """`text` in simplified characters by OpenCC's t2s rules, character for character: same length,
    so offsets into it still hold (where a phrase rule would change the length, each character is
    converted alone).

    A long text goes to OpenCC in pieces cut at line ends (its phrases never span lines): in one
    call it takes about 80 bytes per character (measured: 1.3 GB for a 50 MB text).
    """
    return "".join(_simplify_piece(piece) for piece in _pieces(text, _PIECE))


_PIECE = 100_000


def _simplify_piece(text: str) -> str:
    converted = _converter().convert(text)
    if len(converted) != len(text):
        converted = "".join(_converter().convert(ch) for ch in text)
    return converted


def _pieces(text: str, size: int):
    """`text` in consecutive pieces of about `size` characters, each ending at a line end where there
    is one within another `size` characters (else cut there: a phrase across the cut stays as it was)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + size, start + 2 * size)
        end = min(len(text), start + size) if end < 0 else end + 1
        yield text[start:end]
        start = end


def to_simplified(query: str) -> str:
    """A query in traditional characters (勞動合同) in simplified form (劳动合同); others unchanged.

    The corpora are simplified, so a traditional query then finds what its simplified form finds,
    by BM25 and by vectors alike. OpenCC's phrase rules also touch a few simplified phrases
    (未破坏 → 未破坯), so the conversion is taken only when the query holds a character that is
    traditional on its own.
    """
    converter = _converter()
    converted = converter.convert(query)
    if converted == query or not any(converter.convert(ch) != ch for ch in set(query)):
        return query
    return converted


def tokenizer_id(name: str = DEFAULT_TOKENIZER) -> str:
    """Name and version as recorded in an index manifest: the name, "@", its number in TOKENIZERS."""
    return f"{_check(name)}@{TOKENIZERS[name]}"


def tokenize(text: str, tokenizer: str = DEFAULT_TOKENIZER) -> list[str]:
    """Tokens of `text` for BM25 (documents and queries alike); punctuation and spaces dropped."""
    _check(tokenizer)
    text = normalize(text)
    if tokenizer == "cjk-bigram":
        tokens = _cjk_bigram(text)
    elif tokenizer == "cjk-bigram-noquestion":
        # Replaced by a space, not deleted, so no bigram forms across the removed word. Documents
        # lose them too: a question copied from an FAQ passage still matches it on the rest.
        tokens = _cjk_bigram(_QUESTION_WORDS.sub(" ", text))
    elif tokenizer == "jieba":
        tokens = _jieba_words(text)
    else:
        # Jieba's one- and two-character words are already unigrams and bigrams at the same place;
        # adding them again would double their term frequency. Only its longer words (产业工人,
        # 个体工商户) carry information the grams do not.
        tokens = _cjk_bigram(text) + [word for word in _jieba_words(text) if len(word) > 2]
    return tokens + _doc_numbers(text) if "号" in text else tokens


def _doc_numbers(text: str) -> list[str]:
    """Each document number whole, once per ending of its issuer code from two characters up.

    国办发〔2020〕4号 gives 办发〔2020〕4号 and 国办发〔2020〕4号: the query's full number matches the
    document that carries it, while 京政办发〔2020〕4号 shares only the shorter, more common form.
    The issuer is the run of ideographs right before the bracket (at most six: 的通知国办发 is cut).
    """
    tokens: list[str] = []
    for match in _DOC_NUMBER.finditer(text):
        number = doc_number("", match.group(1), match.group(2))
        end = match.start()
        while end and text[end - 1].isspace():
            end -= 1
        issuer = _ISSUER_END.search(text, max(0, end - 6), end)
        code = issuer.group() if issuer else ""
        tokens.extend(code[-length:] + number for length in range(min(2, len(code)), len(code) + 1))
    return tokens


def _check(name: str) -> str:
    if name not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {name!r}; known: {', '.join(sorted(TOKENIZERS))}")
    return name


def _cjk_bigram(text: str) -> list[str]:
    """Each CJK character and each adjacent pair within a run of CJK; other words whole."""
    tokens = _WORD_RUN.findall(text)
    for run in _CJK_RUN.findall(text):
        tokens.extend(run)
        if len(run) > 1:
            tokens.extend(map(add, run[:-1], run[1:]))
    return tokens


_jieba_lock = threading.Lock()
_jieba_tokenizer = None


def _jieba_words(text: str) -> list[str]:
    """Jieba search-mode words, keeping only tokens with a letter or digit."""
    global _jieba_tokenizer
    if _jieba_tokenizer is None:
        with _jieba_lock:
            if _jieba_tokenizer is None:
                # Imported here so that the default tokenizer never pays jieba's import and
                # dictionary load. A private Tokenizer, because jieba.add_word on the global one
                # elsewhere would silently change our tokens.
                import jieba

                jieba.setLogLevel(logging.WARNING)
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                _jieba_tokenizer = tokenizer
    return [word for word in _jieba_tokenizer.lcut_for_search(text) if _HAS_WORD_CHAR.search(word)]
