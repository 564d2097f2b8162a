"""The rules of Chinese text that several modules share: which characters are ideographs, where a
sentence ends, numerals, document numbers (文号), law-title conventions, the words by which a query asks
across places, and the one character normalisation that documents and queries both go through, so
that they always meet.

It sits at the bottom of kb's imports: nothing here imports from kb.
"""
from __future__ import annotations

import re
import unicodedata

# ------------------------------------------------------------------------------------- characters

# The basic CJK block (URO). OpenCC's t2s table, GB2312 and the names of places and issuing bodies
# live here, so the tests that weigh or match such characters look no further.
BASIC_IDEOGRAPHS = "\u4e00-\u9fff"
# Every ideograph, as a regex class body: URO, extension A, the compatibility block (the few NFKC
# keeps), extensions B-G, and 〇, which writes zero in dates (二〇二一).
IDEOGRAPHS = "\u3007\u3400-\u4dbf" + BASIC_IDEOGRAPHS + "\uf900-\ufaff\U00020000-\U0003134f"
# The ideographs of the Basic Multilingual Plane but 〇: what ingest's rules for PDF lines (where a
# broken line joins the next, whether text is garbled, whether a line or a file name reads as a title)
# count as Chinese. They were tuned on this class; 〇 at a line end or a line of 〇〇 is a date or a
# placeholder more often than prose.
BMP_IDEOGRAPHS = "\u3400-\u4dbf" + BASIC_IDEOGRAPHS + "\uf900-\ufaff"
_BASIC_IDEOGRAPH = re.compile(f"[{BASIC_IDEOGRAPHS}]")


def is_bmp_ideograph(char: str) -> bool:
    """True when `char` (one character) is an ideograph of BMP_IDEOGRAPHS. Comparisons, not the regex:
    ingest asks this of every character of a PDF's text sample."""
    return "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf" or "\uf900" <= char <= "\ufaff"


def basic_ideographs(text: str) -> str:
    """The characters of `text` in the basic CJK block (U+4E00–U+9FFF), in order."""
    return "".join(_BASIC_IDEOGRAPH.findall(text))


# ------------------------------------------------------------------------------------- normalisation

# NFKC maps Kangxi radicals (⼯ U+2F2F -> 工) but not most of the CJK Radicals Supplement, whose forms
# PDF fonts also use for whole characters (⻅ for 见); ⺟ and ⻳ NFKC maps itself.
_RADICAL_LOOKALIKES = str.maketrans(
    "⺟⺠⻄⻅⻆⻉⻋⻓⻔⻘⻙⻚⻛⻜⻝⻢⻣⻤⻥⻦⻧⻨⻩⻪⻬⻮⻰⻳",
    "母民西见角贝车长门青韦页风飞食马骨鬼鱼鸟卤麦黄黾齐齿龙龟")
# Finds a look-alike, so that text without any (all document text once normalised) skips the
# translation, which costs more than NFKC itself on CJK text.
_LOOKALIKE = re.compile("[" + "".join(map(chr, _RADICAL_LOOKALIKES)) + "]")
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # C0 controls but tab and line feed, and DEL
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)


def normalize_chars(text: str) -> str:
    """The character mapping of documents and queries alike: NFKC, then the radical look-alikes NFKC
    leaves alone. Idempotent, so text normalised at ingest is unchanged when matched again.

    NFKC maps Kangxi radicals to ideographs (⽤ -> 用), full-width ASCII to half-width and U+3000 to a
    space. It also turns full-width punctuation ，：（）；？！ into ASCII , : ( ) ; ? ! and … into "...",
    while 。、“”《》 stay: hence the ASCII forms in SENTENCE_ENDS.
    """
    text = unicodedata.normalize("NFKC", text)
    return text.translate(_RADICAL_LOOKALIKES) if _LOOKALIKE.search(text) else text


def normalize_text(text: str) -> str:
    """A document's text as kb keeps it: normalize_chars, line ends unified to \\n, control characters
    and trailing spaces dropped."""
    text = normalize_chars(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = CONTROL_CHARS.sub("", text)
    return _TRAILING_SPACE.sub("", text)


# ------------------------------------------------------------------------------------- sentences

# Where a sentence ends: passages are cut and answer sentences quoted there. Full-width and the
# ASCII forms NFKC leaves behind.
SENTENCE_ENDS = "。！？；!?;"
# What ends a line that stands alone, for joining the lines a PDF broke: a sentence end, or a colon
# (a salutation 各位代表:, the lead-in of a list). A colon does not end a passage's sentence: what
# follows it belongs to it.
PARAGRAPH_ENDS = SENTENCE_ENDS + "：:"

# ------------------------------------------------------------------------------------- numerals

# The numerals of 第X条, 第X章 and the like, as chinese_number reads them.
NUMERALS = "零〇一二三四五六七八九十百千万两"
# The numerals of a heading that starts a PDF line (第X章): NUMERALS but 万, which no chapter or
# article number reaches; a line starting 第一万 is prose.
HEADING_NUMERALS = NUMERALS.replace("万", "")
# The numerals of item marks (一、, (三)): lists do not reach a hundred.
ITEM_NUMERALS = "一二三四五六七八九十"
_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}


def chinese_number(text: str) -> int | None:
    """三十八 -> 38, 一百零二 -> 102, 十 -> 10, 38 -> 38; None when `text` is not a number."""
    if text.isdigit():
        return int(text)
    total, section, digit = 0, 0, None
    for char in text:
        if char in _DIGITS:
            digit = _DIGITS[char]
        elif char in _UNITS:
            unit = _UNITS[char]
            if unit == 10000:
                total, section, digit = (total + section + (digit or 0)) * unit, 0, None
            else:
                section, digit = section + (1 if digit is None else digit) * unit, None
        else:
            return None
    return total + section + (digit or 0)


# ------------------------------------------------------------------------------------- documents

# A document number's bracketed year and serial (groups 1 and 2), in any bracket style: 〔2020〕4号,
# [2020]4号, (2021)12号, 【2020】7号, and the full-width ［］（） of text not yet normalised. The
# issuer code before it is left to the caller: how far back it reaches differs.
DOC_NUMBER_TAIL = r"[〔\[［(（【]\s*((?:19|20)\d\d)\s*[〕\]］)）】]\s*(\d{1,5})\s*号"


def doc_number(issuer: str, year: str, serial: str) -> str:
    """A document number in its one written form: 粤府〔2021〕12号 (brackets 〔〕, no leading zeros)."""
    return f"{issuer}〔{year}〕{int(serial)}号"


# The laws archive names a law's file, and so its title, with its version date: 劳动合同法(2012-12-28).
_TITLE_DATE = re.compile(r"\(\d{4}-\d\d-\d\d\)$")


def without_title_date(title: str) -> str:
    """A title without the version date that closes it: 劳动合同法(2012-12-28) -> 劳动合同法."""
    return _TITLE_DATE.sub("", title)


# In the laws archive's markdown, the enactment history (通过, 修订, 公布 dates) stands above this
# line and the law's text below it.
INFO_END = "<!-- INFO END -->"


# ------------------------------------------------------------------------------------- queries

# A question put to every place at once: 各地 / 各省市 / 各城市 …, or to several (不同地区, 多地). 各市场 and
# 各市民 are not 各市; 地方 after 不同 is as often "respect" as "place", so only 各地方 counts.
_ACROSS_PLACES = re.compile(
    "各(?:省市|省份|省区|地区|地方|城市|市县|区县|省|地|市(?![场民]))"
    "|(?:不同|多个)(?:省市|省份|省区|地区|城市)"
    "|多(?:地|省)(?![点方区址位])")
# 各地 as the addressee of an instruction rather than the places compared: a body of every place
# (各地人社部门, 各省交通运输主管部门, 各地税务机关) or the object of a directive (要求各地, 指导各市, 各地要),
# as in the questions about a national notice that tells every place what to do.
_BODIES_AFTER = re.compile(r"[^\s，。；？！,;?!]{0,12}?(?:部门|机关|机构)")
_DIRECTIVE_BEFORE = ("要求", "指导", "督促", "组织", "推动", "部署", "鼓励", "支持", "引导", "指示", "号召", "责成")
_DIRECTIVE_AFTER = ("要", "应")
# Words that compare: with them, 各地人社部门的稳岗政策比较 is a comparison all the same.
_COMPARING = re.compile("比较|对比|异同|不同|区别|差异")


def asks_across_places(query: str) -> bool:
    """Whether the query's words ask how every place, or several, rule on a matter (各地…的规定有何不同):
    such a comparison wants each place's own text, not one national answer. 各地 addressed by an
    instruction (要求各地税务机关…) does not count unless the query also says it compares (比较, 异同).
    Naming several places is the other form of a comparison (metadata.is_comparison)."""
    matches = list(_ACROSS_PLACES.finditer(query))
    if matches and _COMPARING.search(query):
        return True
    for match in matches:
        before, after = query[:match.start()], query[match.end():]
        if not (_BODIES_AFTER.match(after) or before.endswith(_DIRECTIVE_BEFORE) or after.startswith(_DIRECTIVE_AFTER)):
            return True
    return False
