"""Document metadata: place, date, issuer, document number and type, read from path, title and text.

Every value comes from something the document says (its folder and file name, its title, the header
of a law, a 来源/发文机关 label, the signature and date that close an official document); what is not
said stays empty. Places are resolved against cpca's gazetteer of PRC administrative divisions.
"""
from __future__ import annotations

import csv
import re
import threading
import warnings
from collections import Counter
from dataclasses import replace
from functools import lru_cache
from importlib import resources
from pathlib import PurePosixPath

from kb.records import Document, Metadata
from kb.zh import (
    BASIC_IDEOGRAPHS,
    DOC_NUMBER_TAIL,
    INFO_END,
    ITEM_NUMERALS,
    asks_across_places,
    doc_number,
    without_title_date,
)

NATIONAL = "全国"
# Bump whenever extract() changes its output for any input: the index records it, and an ingest
# re-extracts the metadata of unchanged documents when it differs.
METADATA_VERSION = 2

# The categories of the national laws database (flk.npc.gov.cn), as folder names of an archive.
_FOLDER_TYPES = {
    "宪法": "宪法", "宪法相关法": "法律", "民法典": "法律", "民法商法": "法律", "行政法": "法律",
    "经济法": "法律", "社会法": "法律", "刑法": "法律", "诉讼与非诉讼程序法": "法律",
    "行政法规": "行政法规", "司法解释": "司法解释", "部门规章": "部门规章",
    "地方性法规": "地方性法规", "地方政府规章": "地方政府规章", "自治条例": "自治条例",
    "单行条例": "单行条例", "案例": "案例",
}
# Enacted or issued for the whole country, wherever the text happens to mention a place.
_NATIONAL_TYPES = {"宪法", "法律", "行政法规", "司法解释", "部门规章"}
# Ranks below a national 法律 in the hierarchy of legal force (上位法优先); 0 for 宪法 and 法律, and for
# everything that is not a legal text (policy notices, reports), which the hierarchy does not order.
# Cases bind no one: they show how courts applied the texts above, so they come last with local rules.
LEGAL_RANK_BELOW_LAW = {"行政法规": 1, "司法解释": 2, "部门规章": 2, "地方性法规": 3, "地方政府规章": 3,
                        "自治条例": 3, "单行条例": 3, "案例": 3}
# Texts of the legal hierarchy: the statutes and what implements or applies them.
LEGAL_TYPES = frozenset({"宪法", "法律", *LEGAL_RANK_BELOW_LAW})
# The genre word that ends a title (关于印发《…办法》的通知 is a 通知), longest first.
_TITLE_GENRES = (
    "实施细则", "实施意见", "实施方案", "工作报告", "指导意见", "条例", "规定", "办法", "细则", "决定",
    "决议", "通知", "意见", "方案", "报告", "公告", "通告", "公报", "批复", "规划", "纲要", "指引",
    "指南", "措施", "规则", "章程", "计划", "要点", "清单", "解释", "函", "法",
)
_GENRE_TYPES = {"实施细则": "细则", "实施意见": "意见", "指导意见": "意见", "实施方案": "方案", "工作报告": "报告"}
# Central bodies: a title or signature that starts with one (and names no place) is national.
_NATIONAL_ISSUERS = re.compile(
    "^(?:中华人民共和国|全国人民代表大会|全国人大|国务院|最高人民法院|最高人民检察院|中共中央|中央"
    f"|中华全国总工会|全国总工会|中国人民银行|海关总署|证监会|银保监会|国家[{BASIC_IDEOGRAPHS}]{{1,10}}?(?:总局|局|委员会|委|署)"
    "|(?:外交|国防|教育|科学技术|科技|工业和信息化|工信|公安|国家安全|民政|司法|财政|人力资源社会保障|人力资源和社会保障"
    "|人社|自然资源|生态环境|住房和城乡建设|住房城乡建设|交通运输|水利|农业农村|商务|文化和旅游|卫生健康|退役军人事务"
    "|应急管理|审计)部)")
# A news dateline (新华社北京2月6日电) says where a report was filed, not what it is about.
_DATELINE = re.compile(f"[{BASIC_IDEOGRAPHS}]{{0,12}}?\\d{{1,2}}月\\d{{1,2}}日(?:电|讯)")

_DATE_IN_NAME = re.compile(r"((?:19|20)\d\d)-(\d\d)-(\d\d)")
_CN_DATE = re.compile(r"((?:19|20)\d\d)\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
_DATE_LABEL = re.compile(r"(?:发布日期|成文日期|发文日期|印发日期|公布日期|发布时间)\s*[:：]\s*")
_ISSUER_LABEL = re.compile(r"(?:发文机关|发布机关|发文单位|发布单位|制定机关|来源)\s*[:：]\s*([^\s，。；、:：|]{2,30})")
# A body that signs a document: the run of characters before the closing date.
_BODY_SUFFIX = re.compile(
    "(?:人民政府|政府|办公厅|办公室|委员会|常务委员会|人民代表大会|总工会|工会|人民法院|人民检察院|法院|检察院"
    "|指挥部|领导小组|小组|中心|公司|联合会|协会|局|厅|部|院|会|署|所|处|委|办)$")
_SIGNATURE = re.compile(f"([{BASIC_IDEOGRAPHS}（）()]{{2,40}})\\s*" + _CN_DATE.pattern + r"\s*(?:印发|发布|公布)?")
# Where a body's name may begin: after a non-ideograph, or right after the 日 of a date.
_NAME_START = f"(?:^|(?<=[^{BASIC_IDEOGRAPHS}\\d])|(?<=\\d日))"
_CONGRESS = re.compile(
    _NAME_START + f"([{BASIC_IDEOGRAPHS}]{{0,20}}?)第?(?:[{ITEM_NUMERALS}百]+届)?(全国人民代表大会常务委员会|全国人民代表大会|"
    f"人民代表大会常务委员会|人民代表大会)第[{ITEM_NUMERALS}百]+次(?:全体)?会议")
# 杭州市人民代表大会常务委员会第25号公布: the promulgating body, named in full.
_PROMULGATED = re.compile(
    _NAME_START + f"([{BASIC_IDEOGRAPHS}]{{2,30}}?(?:人民代表大会常务委员会|人民代表大会|人民政府))(?:公告)?"
    r"\s*第\s*\d{1,5}\s*号\s*公布")
_ORDER = re.compile(_NAME_START + f"((?:中华人民共和国)?[{BASIC_IDEOGRAPHS}]{{1,16}}?令)" + r"\s*第\s*(\d{1,5})\s*号")
_HEADER_ISSUERS = re.compile(r"(最高人民法院|最高人民检察院|国务院)")
_DOC_NUMBER = re.compile(f"([{BASIC_IDEOGRAPHS}]{{1,12}})\\s*" + DOC_NUMBER_TAIL)
# A law's first chapter or article (or its table of contents) ends its header.
_FIRST_HEADING = re.compile(f"^\\s*(?:#+\\s*)?(?:第[{ITEM_NUMERALS}百零]+[章条]|目\\s*录)", re.MULTILINE)
_SESSION = re.compile(f"第?[{ITEM_NUMERALS}百]+届")  # 第十三届: which congress, not part of the body's name
_HAS_BASIC_IDEOGRAPH = re.compile(f"[{BASIC_IDEOGRAPHS}]")
_OPENING = 300  # characters of a document's beginning searched for its number and place
_CLOSING = 300  # characters of its end searched for the signature


def with_metadata(document: Document) -> Document:
    """The document with its metadata extracted afresh."""
    return replace(document, meta=extract(document.id, document.title, document.text))


def extract(doc_id: str, title: str, text: str) -> Metadata:
    """Metadata of one document from its id (relative path), title and normalised text."""
    folders = list(PurePosixPath(doc_id).parts[:-1])
    name = PurePosixPath(doc_id).name
    header = _law_header(text)
    issuer = _issuer(header, text)
    doc_type = _doc_type(folders, title, issuer)
    place = _place(folders, title, issuer, doc_type, text)
    if doc_type == "条例" and place and place != (NATIONAL,) and resolve_place(title):
        # Under the Legislation Law only people's congresses make local 条例 (governments make
        # 规定 and 办法): a 条例 that names its place in the title is a local regulation.
        doc_type = "地方性法规"
    return Metadata(place=place, date=_date(name, header, text), issuer=issuer,
                    doc_number=_doc_number(title, header, text), doc_type=doc_type)


def _law_header(text: str) -> str:
    """The lines between a law's title and its first chapter or article (通过/修订/公布 dates)."""
    end = text.find(INFO_END)
    if 0 <= end < 2000:
        return text[:end]
    match = _FIRST_HEADING.search(text[:2000])
    return text[:match.start()] if match else ""


# ------------------------------------------------------------------------------------- dates

def _date(name: str, header: str, text: str) -> str:
    """Publication or enactment date, ISO: file name, law header, a date label, the closing date."""
    match = _DATE_IN_NAME.search(name)
    if match:
        return _iso(*match.groups())
    # A law header lists 通过, 修正, 修订 and 公布 dates; the latest is the text's own, 施行 is not.
    dates = [_iso(*m.groups()) for m in _CN_DATE.finditer(header)
             if not re.match(r"\s*(?:起)?施行", header[m.end():m.end() + 4])]
    dates = [date for date in dates if date]
    if dates:
        return max(dates)
    label = _DATE_LABEL.search(text[:_OPENING])
    if label:
        found = _CN_DATE.match(text, label.end()) or _DATE_IN_NAME.match(text, label.end())
        if found:
            return _iso(*found.groups())
    signature = _last_signature(text)
    return _iso(*signature.groups()[1:4]) if signature else ""


def _iso(year: str, month: str, day: str) -> str:
    y, m, d = int(year), int(month), int(day)
    if not (1 <= m <= 12 and 1 <= d <= 31):
        return ""
    return f"{y:04d}-{m:02d}-{d:02d}"


# ------------------------------------------------------------------------------------- issuer

def _issuer(header: str, text: str) -> str:
    """The enacting or issuing body: a label, the law header, or the signature above the closing date."""
    label = _ISSUER_LABEL.search(text[:_OPENING])
    if label:
        return label.group(1)
    if header:
        promulgated = _PROMULGATED.search(header)
        if promulgated:
            return _SESSION.sub("", promulgated.group(1))
        congress = _CONGRESS.search(header)
        if congress:
            place, body = congress.group(1), congress.group(2)
            return body if body.startswith("全国") else place + body
        order = _ORDER.search(header)
        if order:
            return re.sub(r"^中华人民共和国", "", order.group(1))[:-1]
        body = _HEADER_ISSUERS.search(header)
        if body:
            return body.group(1)
        return ""
    signature = _last_signature(text)
    return signature.group(1) if signature else ""


def _last_signature(text: str) -> re.Match | None:
    """The last "body, date" near the end of the text whose body ends like an issuing body."""
    closing = [m for m in _SIGNATURE.finditer(text[-_CLOSING:]) if _BODY_SUFFIX.search(m.group(1))]
    return closing[-1] if closing else None


# ------------------------------------------------------------------------------------- number

def _doc_number(title: str, header: str, text: str) -> str:
    """The document's own number (粤府〔2021〕12号, 国务院令第517号); numbers it cites are skipped."""
    order = _ORDER.search(header)
    if order:
        return re.sub(r"^中华人民共和国", "", order.group(1)) + f"第{order.group(2)}号"
    opening = title + "\n" + text[:_OPENING]
    for match in _DOC_NUMBER.finditer(opening):
        before = opening[max(0, match.start() - 12):match.start()].rstrip()
        # A number in brackets after a cited title, or after 根据/依据/按照, belongs to that document.
        if before.endswith(("（", "(", "》", "<", "《")) or re.search("(?:根据|依据|按照|参照|转发)[^。，]*$", before):
            continue
        return doc_number(*match.groups())
    return ""


# ------------------------------------------------------------------------------------- type

def _doc_type(folders: list[str], title: str, issuer: str) -> str:
    """法律, 行政法规, 地方性法规, 司法解释, 部门规章, 通知, 意见, 方案, 报告, …: folder, then title."""
    for folder in reversed(folders):
        if folder in _FOLDER_TYPES:
            return _FOLDER_TYPES[folder]
    clean = re.sub(r"[\s（(].*?[）)]\s*$", "", title).strip()
    if re.match("(?:最高人民法院|最高人民检察院)", clean) and re.search("(?:解释|规定|批复|决定|规则)$", clean):
        return "司法解释"
    if clean.startswith("中华人民共和国") and clean.endswith("法"):
        return "法律"
    genre = next((word for word in _TITLE_GENRES if clean.endswith(word)), "")
    issuer = re.sub("^中华人民共和国", "", issuer)
    if genre == "条例" and (issuer.startswith("国务院") or clean.startswith("中华人民共和国")):
        return "行政法规"
    # What a local people's congress enacts (条例, 办法, 规定, 决定) is a local regulation.
    if "人民代表大会" in issuer and not issuer.startswith("全国") and genre not in ("", "法", "报告", "公告"):
        return "地方性法规"
    if genre == "法":
        return ""  # 办法 is caught above; a bare 法 ending without 中华人民共和国 proves nothing
    return _GENRE_TYPES.get(genre, genre)


# ------------------------------------------------------------------------------------- place

def _place(folders: list[str], title: str, issuer: str, doc_type: str, text: str) -> tuple[str, ...]:
    """(province, city, county) as far as known, ("全国",) for national texts, () when unknown."""
    if doc_type in _NATIONAL_TYPES:
        return (NATIONAL,)
    clean_title = without_title_date(title)
    found = resolve_place(clean_title)
    if found:
        return _refine(found, folders, issuer)
    if _NATIONAL_ISSUERS.match(clean_title) or (issuer and _NATIONAL_ISSUERS.match(issuer)):
        return (NATIONAL,)
    for source in [*reversed(folders), issuer, _DATELINE.sub(" ", text[:_OPENING // 3])]:
        found = resolve_place(source) if source else ()
        if found:
            return _refine(found, folders, issuer) if source not in (issuer,) else found
    return ()


def _refine(place: tuple[str, ...], folders: list[str], issuer: str) -> tuple[str, ...]:
    """A province alone gains the city of the issuer or a folder inside it (广东 + 深圳市…)."""
    if len(place) > 1:
        return place
    for source in (issuer, *reversed(folders)):
        deeper = resolve_place(source) if source else ()
        if len(deeper) > 1 and deeper[0] == place[0]:
            return deeper
    return place


_gazetteer_lock = threading.Lock()


def _cpca():
    """cpca, imported here: loading the gazetteer costs 0.2 s, paid only when metadata is extracted.

    cpca reads its data through pkg_resources, whose import warns on stderr with setuptools 80; the
    warning is cpca's business, not the user's, and would be the only line of an otherwise clean run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import cpca
    return cpca


@lru_cache(maxsize=65536)
def resolve_place(text: str) -> tuple[str, ...]:
    """The first place named in `text`, as (province, city, county) truncated to what it names.

    A county alone names its city and province only when no other county has its name (西湖区 is
    in both 杭州 and 南昌); a direct-administered municipality is its own province (北京市).
    """
    if not text or not _HAS_BASIC_IDEOGRAPH.search(text):
        return ()
    cpca = _cpca()

    with _gazetteer_lock:  # cpca's matcher is shared module state
        row = cpca.transform([text], pos_sensitive=True).iloc[0]
    province, city, county = (_value(row[key]) for key in ("省", "市", "区"))
    named = {key: int(row[f"{key}_pos"]) >= 0 for key in ("省", "市", "区")}
    # A county alone must be written in full (合作 in 粤澳合作区 is not 合作市) and be the only one
    # of its name.
    if county and (not named["区"] or (not (named["省"] or named["市"])
                                       and (county not in text or county in _ambiguous_counties()))):
        county = ""
    if not county and not named["市"]:
        city = ""  # cpca's guess from a county we dropped
        if not named["省"]:
            province = ""
    if city in ("市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"):
        city = ""
    if not province:
        return ()
    if province == city:
        city = ""
    return tuple(part for part in (province, city, county) if part)


def might_name_place(text: str) -> bool:
    """False only when `text` surely names no place: no pair of its characters starts a division's name.

    A cheap test before resolve_place, which costs a millisecond; every name and short name
    resolve_place can find starts with such a pair.
    """
    pairs = _name_openings()
    return any(text[i:i + 2] in pairs for i in range(len(text) - 1))


# Where a list of places breaks: punctuation and spaces (上海、北京、河南; 山东 浙江 河南 青岛) and, inside
# a piece, the conjunctions of 上海和北京 or 广东与河南, which also begin place names (和田, 和平区): a piece
# is read whole as well as split at them.
_PLACE_LIST_BREAK = re.compile(r"[\s、，,；;：:/|（）()《》“”\"'—\-·.。？?！!]+")
_PLACE_CONJUNCTION = re.compile("[和与及]")


@lru_cache(maxsize=4096)
def named_places(text: str) -> tuple[tuple[str, ...], ...]:
    """The distinct places `text` names, in order (上海、北京、河南的工会条例比较 names three); each
    piece between list breaks names at most its first place, as resolve_place finds it."""
    places: list[tuple[str, ...]] = []
    for piece in _PLACE_LIST_BREAK.split(text):
        parts = [piece, *_PLACE_CONJUNCTION.split(piece)] if _PLACE_CONJUNCTION.search(piece) else [piece]
        for part in parts:
            place = resolve_place(part) if len(part) >= 2 and might_name_place(part) else ()
            if place and place not in places:
                places.append(place)
    return tuple(places)


@lru_cache(maxsize=4096)
def is_comparison(query: str) -> bool:
    """Whether a query compares places: it asks across them (各地, 各省市, 不同地区: zh.asks_across_places)
    or names more than one (山东 浙江 河南 青岛). Such a query wants each place's own rule."""
    return asks_across_places(query) or (might_name_place(query) and len(named_places(query)) > 1)


@lru_cache(maxsize=1)
def _name_openings() -> frozenset[str]:
    return frozenset(name[:2] for _, name in _divisions() if len(name) >= 2)


def _value(cell) -> str:
    return cell if isinstance(cell, str) else ""


@lru_cache(maxsize=1)
def _divisions() -> tuple[tuple[str, str], ...]:
    """(adcode, name) of every division in cpca's gazetteer."""
    with resources.files("cpca").joinpath("resources/adcodes.csv").open(encoding="utf-8") as handle:
        return tuple((row["adcode"], row["name"]) for row in csv.DictReader(handle))


@lru_cache(maxsize=1)
def _ambiguous_counties() -> frozenset[str]:
    """County-level names that more than one division carries."""
    counts = Counter(name for adcode, name in _divisions() if adcode[4:6] != "00")
    return frozenset(name for name, count in counts.items() if count > 1)


def place_label(place: tuple[str, ...]) -> str:
    """"广东省/江门市", "全国", or "" for an unknown place."""
    return "/".join(place)


def place_matches(place: tuple[str, ...], wanted: str) -> bool:
    """Whether a document's place lies in `wanted`: 广东, 广东省, 江门, 广东省/江门市 or 全国."""
    wanted = wanted.strip().strip("/")
    if not wanted:
        return True
    if not place:
        return False
    parts = [part for part in re.split(r"[/\s]+", wanted) if part]
    names = list(place)
    for part in parts:
        short = re.sub("(?:省|市|自治区|特别行政区|区|县)$", "", part) or part
        if not any(name == part or name.startswith(short) for name in names):
            return False
    return True
