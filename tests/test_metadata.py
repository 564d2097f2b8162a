"""Metadata from real documents: place, date, issuer, document number and type; filters that use them."""
import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from kb import store
from kb.embed.fake import FakeEmbedder
from kb.errors import BadQuery
from kb.ingest import discover, read_document
from kb.knowledgebase import KnowledgeBase
from kb.metadata import METADATA_VERSION, extract, is_comparison, named_places, place_matches, resolve_place
from kb.records import Metadata
from kb.search import Filters
from tests.conftest import DEMO_REPORT

ZHEJIANG = "corpus/laws/DLC/浙江地方法规/地方性法规/浙江"
LOCAL_LAWS = [
    f"{ZHEJIANG}/杭州市企业工资集体协商条例(2014-04-11).md",
    f"{ZHEJIANG}/宁波市企业工资集体协商条例(2014-04-10).md",
    "corpus/laws/DLC/山东地方法规/地方性法规/山东/山东省企业工资集体协商条例(2016-11-26).md",
    "corpus/laws/DLC/河南地方法规/地方性法规/河南/河南省企业集体合同条例(1999-09-24).md",
    "corpus/laws/DLC/上海地方法规/地方性法规/上海/上海市集体合同条例.md",
]


def meta_of(shared: Path, relative: str) -> Metadata:
    sources, skipped = discover([shared / relative])
    assert len(sources) == 1 and not skipped
    document = read_document(sources[0])
    return extract(document.id, document.title, document.text)


def test_local_regulations_have_their_city_date_enacting_body_and_type(shared):
    hangzhou = meta_of(shared, LOCAL_LAWS[0])
    assert hangzhou == Metadata(place=("浙江省", "杭州市"), date="2014-04-11",
                                issuer="杭州市人民代表大会常务委员会", doc_type="地方性法规")
    ningbo = meta_of(shared, LOCAL_LAWS[1])
    # "宁波市第十四届人民代表大会常务委员会第8号公布": the body without its term.
    assert (ningbo.place, ningbo.issuer) == (("浙江省", "宁波市"), "宁波市人民代表大会常务委员会")
    assert meta_of(shared, LOCAL_LAWS[2]).place == ("山东省",)
    assert meta_of(shared, LOCAL_LAWS[3]).place == ("河南省",)
    shanghai = meta_of(shared, LOCAL_LAWS[4])
    # No date in its name or header: left empty, not guessed from dates in the articles.
    assert shanghai.place == ("上海市",) and shanghai.date == "" and shanghai.issuer == ""


def test_national_texts_are_national_whatever_they_mention(shared):
    labour_law = meta_of(shared, "corpus/laws/社会法/劳动合同法(2012-12-28).md")
    assert labour_law == Metadata(place=("全国",), date="2012-12-28", issuer="全国人民代表大会常务委员会",
                                  doc_type="法律")
    nurses = meta_of(shared, "corpus/laws/行政法规/护士条例(2020-03-27).md")
    assert (nurses.place, nurses.doc_type, nurses.issuer, nurses.doc_number) == (
        ("全国",), "行政法规", "国务院", "国务院令第517号")
    # A .docx outside any law folder: 国务院令 in its header makes a 条例 a 行政法规.
    injury = meta_of(shared, "corpus/pdf/工伤保险条例.docx")
    assert (injury.place, injury.doc_type, injury.doc_number, injury.date) == (
        ("全国",), "行政法规", "国务院令第375号", "2010-12-20")
    interpretation = next(p for p in (shared / "corpus/laws/司法解释").iterdir() if p.name.startswith("最高人民法院"))
    meta = meta_of(shared, str(interpretation.relative_to(shared)))
    assert (meta.place, meta.doc_type) == (("全国",), "司法解释")


def test_policy_documents_number_signature_and_place(shared):
    tianjin = meta_of(shared, "corpus/policies/009783e26fda3445b36c306a39066bea.txt")
    # Its own number, not the ones it cites in brackets after 《…》 (商办资函〔2020〕46号, 国发〔2019〕23号).
    assert tianjin.doc_number == "津商外资〔2020〕1号"
    # The title says only 市商务局; the opening text names 天津市.
    assert tianjin.place == ("天津市",) and tianjin.doc_type == "通知"
    # The last signature and date of the text (it forwards a 商务部 notice signed earlier).
    assert (tianjin.issuer, tianjin.date) == ("天津市商务局办公室", "2020-02-15")
    shenzhen = meta_of(shared, "corpus/policies/e54ea064692c322a88dca26d36410f3d.txt")
    assert shenzhen == Metadata(place=("广东省", "深圳市"), date="2020-02-18", issuer="国家税务总局深圳市税务局",
                                doc_type="通告")


def test_documents_that_say_nothing_get_nothing(shared):
    # A news item with no place in its title and a 新华社北京…电 dateline: Beijing is where it was
    # filed, not what it is about.
    bond = meta_of(shared, "corpus/policies/b8c7783dedfb39dd9573bcf4be573095.txt")
    assert bond == Metadata()
    assert meta_of(shared, "corpus/policies/edd32ef700773c48a299ff4038f7442e.txt") == Metadata()
    assert extract("notes/想法.txt", "几点想法", "今天讨论了三件事，没有结论。") == Metadata()


def test_demo_report_is_jiangmen(demo_text):
    meta = extract(DEMO_REPORT.name, "江门市:整体谋划 系统推进 打造高素质产业工人队伍", demo_text)
    assert meta.place == ("广东省", "江门市") and meta.date == "2022-01-21"


def test_document_number_variants_and_citations():
    for written in ("粤府〔2021〕12号", "粤府[2021]12号", "粤府(2021)12号", "粤府（2021）12号", "粤府［2021］012号"):
        assert extract("a.txt", "关于加强管理的通知", f"{written}\n各地级以上市人民政府：现通知如下。").doc_number \
            == "粤府〔2021〕12号", written
    cited = "各区：根据《国务院关于进一步做好稳就业工作的意见》（国发〔2019〕28号）精神，现通知如下。"
    assert extract("a.txt", "关于做好稳就业工作的通知", cited).doc_number == ""


def test_dates_from_name_header_label_and_signature():
    assert extract("x/报告(2021-03-05).md", "报告", "正文").date == "2021-03-05"
    header = "# 某条例\n\n2010年1月1日 某某会议通过\n\n2015年6月30日 修订\n\n2016年1月1日 施行\n\n<!-- INFO END -->\n第一条 正文"
    assert extract("x/某条例.md", "某条例", header).date == "2015-06-30"  # 施行 is not publication
    assert extract("a.txt", "通知", "发布日期：2020年2月3日 内容……").date == "2020-02-03"
    signed = "一、……二、……。 江门市人民政府办公室 2022年1月21日"
    meta = extract("a.txt", "关于推进产业工人队伍建设改革的通知", signed)
    assert (meta.date, meta.issuer) == ("2022-01-21", "江门市人民政府办公室")
    assert extract("a.txt", "通知", "会议定于2月3日召开。").date == ""  # no year: not a date we can give


def test_places_resolve_against_the_gazetteer():
    assert resolve_place("杭州市企业工资集体协商条例") == ("浙江省", "杭州市")
    assert resolve_place("杭州市西湖区人民政府") == ("浙江省", "杭州市", "西湖区")
    assert resolve_place("西湖区人民政府") == ()  # 西湖区 is in 杭州 and in 南昌: not guessed
    assert resolve_place("北京市朝阳区") == ("北京市", "朝阳区")
    assert resolve_place("宁夏:民政服务机构全面设立隔离区") == ("宁夏回族自治区",)
    assert resolve_place("横琴粤澳深度合作区发展促进条例") == ()  # 合作 is not 合作市
    assert resolve_place("关于加强管理的通知") == ()


def test_named_places_and_comparisons():
    assert named_places("失业保险金按什么标准发？广东、河南、郑州、重庆失业保险条例比较") == \
        (("广东省",), ("河南省",), ("河南省", "郑州市"), ("重庆市",))
    assert named_places("劳动保障监察条例 举报人保密 山东 浙江") == (("山东省",), ("浙江省",))
    assert named_places("大同和太原的最低工资标准") == (("山西省", "大同市"), ("山西省", "太原市"))
    assert named_places("和田地区的就业补贴") == (("新疆维吾尔自治区", "和田地区"),)  # 和 begins a name here
    assert named_places("劳动合同法和劳动法有什么区别") == ()
    assert is_comparison("上海和北京的集体合同条例有何不同")
    assert is_comparison("各地工会条例对建立女职工委员会的人数要求")
    assert not is_comparison("杭州市企业工资集体协商条例")  # one place: that place's rule, not a comparison
    assert not is_comparison("北京市朝阳区稳岗补贴")
    assert not is_comparison("女职工怀孕被辞退怎么办")


def test_place_filter_matches_levels_and_short_names():
    hangzhou = ("浙江省", "杭州市")
    for wanted in ("浙江", "浙江省", "杭州", "杭州市", "浙江省/杭州市", " 浙江 杭州 "):
        assert place_matches(hangzhou, wanted), wanted
    for wanted in ("宁波", "江苏", "全国", "浙江省/宁波市"):
        assert not place_matches(hangzhou, wanted), wanted
    assert place_matches(("全国",), "全国") and not place_matches((), "浙江")


@pytest.fixture
def laws_kb(tmp_path, shared) -> KnowledgeBase:
    folder = tmp_path / "laws"
    for relative in [*LOCAL_LAWS, "corpus/laws/社会法/劳动合同法(2012-12-28).md"]:
        source = shared / relative
        target = folder / Path(relative).relative_to("corpus/laws")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    shutil.copy(DEMO_REPORT, folder / DEMO_REPORT.name)
    kb = KnowledgeBase(tmp_path / "index", FakeEmbedder())
    kb.ingest([folder])
    return kb


def test_filters_restrict_search_by_place_date_and_type(laws_kb):
    query = "工资集体协商 职工方协商代表"
    everything = {hit.doc_id for hit in laws_kb.search(query, k=50)}
    assert len(everything) >= 5
    zhejiang = laws_kb.search(query, k=50, filters=Filters(place="浙江"))
    assert {hit.meta.place[1] for hit in zhejiang} == {"杭州市", "宁波市"}
    assert {hit.meta.place for hit in laws_kb.search(query, k=50, filters=Filters(place="杭州"))} == {("浙江省", "杭州市")}
    national = laws_kb.search(query, k=50, filters=Filters(place="全国"))
    assert national and all(hit.meta.doc_type == "法律" for hit in national)
    recent = laws_kb.search(query, k=50, filters=Filters(since="2014-04-11"))
    # 杭州 (2014-04-11) and 山东 (2016) are on or after; 宁波 (2014-04-10) is not; 上海 has no date.
    assert {hit.meta.date for hit in recent} <= {"2014-04-11", "2016-11-26", "2022-01-21"}
    assert "2014-04-11" in {hit.meta.date for hit in recent}
    up_to_2014 = laws_kb.search(query, k=50, filters=Filters(until="2014"))
    assert {hit.meta.date[:4] for hit in up_to_2014} <= {"1999", "2012", "2014"} and up_to_2014
    local = laws_kb.search(query, k=50, filters=Filters(doc_types=("地方性法规",)))
    assert {hit.meta.doc_type for hit in local} == {"地方性法规"} and len({h.doc_id for h in local}) >= 4
    assert laws_kb.search(query, k=50, filters=Filters(place="江苏")) == []
    with pytest.raises(BadQuery, match="since"):
        Filters(since="2020年")


def test_metadata_is_saved_and_versioned(laws_kb, tmp_path):
    build = laws_kb.save()
    manifest = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["metadata_version"] == METADATA_VERSION
    loaded = KnowledgeBase.load(tmp_path / "index", FakeEmbedder())
    assert {doc.id: doc.meta for doc in loaded.documents} == {doc.id: doc.meta for doc in laws_kb.documents}
    assert loaded.info()["places"]["浙江省"] == 2
    assert loaded.info()["doc_types"]["地方性法规"] == 5
    # An index written by an older extractor gets its documents' metadata extracted again on ingest,
    # without reading the files again.
    data = store.load(tmp_path / "index")
    store.save(tmp_path / "index", dataclasses.replace(
        data, manifest=dataclasses.replace(data.manifest, metadata_version=METADATA_VERSION - 1),
        documents=[dataclasses.replace(doc, meta=Metadata()) for doc in data.documents]))
    stale = KnowledgeBase.load(tmp_path / "index", FakeEmbedder())
    assert {doc.meta for doc in stale.documents} == {Metadata()}
    report = stale.ingest([])
    assert report.added == report.changed == ()
    assert {doc.id: doc.meta for doc in stale.documents} == {doc.id: doc.meta for doc in laws_kb.documents}


def test_hybrid_puts_higher_law_first_unless_the_query_names_a_place(laws_kb):
    from kb.search import SearchSettings

    flat = SearchSettings(hierarchy_step=0.0)

    def first_national(query, settings=SearchSettings()):
        hits = laws_kb.search(query, k=20, settings=settings)
        return next(hit.rank for hit in hits if hit.meta.doc_type == "法律")

    query = "集体合同争议 仲裁"  # without the hierarchy, local rules that repeat 劳动法 come first
    assert first_national(query) < first_national(query, flat)
    ranked = laws_kb.search(query, k=20)
    # Among the legal texts, nothing local comes before the first national law any more, and texts
    # outside the hierarchy (the demo report) are not pushed down.
    assert ranked[0].meta.doc_type == "法律" or ranked[0].meta.doc_type == ""
    with_place = "杭州市 集体合同争议 仲裁"
    assert [h.doc_id for h in laws_kb.search(with_place, k=20)] == \
        [h.doc_id for h in laws_kb.search(with_place, k=20, settings=flat)]
    bm25 = laws_kb.search(query, mode="bm25", k=20)  # only hybrid ranks by the hierarchy
    assert [h.doc_id for h in bm25] == [h.doc_id for h in laws_kb.search(query, mode="bm25", k=20, settings=flat)]


def test_hybrid_answers_a_comparison_with_local_rules_before_the_statute(laws_kb):
    from kb.search import SearchSettings

    old_rules = SearchSettings(comparison_step=0.0)

    def ranks(query, settings=SearchSettings()):
        docs = list(dict.fromkeys(hit.doc_id for hit in laws_kb.search(query, k=300, settings=settings)))
        law = next(i for i, doc in enumerate(docs) if doc.endswith("劳动合同法(2012-12-28).md"))
        return law, [i for i, doc in enumerate(docs) if "DLC" in doc]

    comparison = "各地企业工资集体协商条例 职工方协商代表 劳动合同 保护规定比较"
    law, local = ranks(comparison)
    assert len(local) >= 4 and max(local[:4]) < law  # each place's own rule before the national law
    old_law, _ = ranks(comparison, old_rules)
    assert law > old_law
    # The same words without 各地…比较 keep the statute-first order.
    law, local = ranks("企业工资集体协商 职工方协商代表 劳动合同 保护规定")
    assert law < min(local)


@pytest.mark.parametrize("mode", ["hybrid", "bm25"])
def test_a_cited_article_of_a_named_law_comes_first(laws_kb, mode):
    """劳动合同法第三十八条 (or 第38条, with words around it) answers with that article first; the
    same for a local regulation; a filter that excludes the law is respected, and an article number
    without a law name, or the vector mode, keeps the list's own order."""
    for query, title, number in (("劳动合同法第三十八条", "劳动合同法", "第三十八条"),
                                 ("劳动者依照劳动合同法第38条解除劳动合同", "劳动合同法", "第三十八条"),
                                 ("《杭州市企业工资集体协商条例》第十条", "杭州市企业工资集体协商条例", "第十条")):
        top = laws_kb.search(query, mode=mode, k=5)[0]
        assert title in top.title and f"\n{number}" in "\n" + top.text, (query, top.article)
    assert all("劳动合同法" not in hit.title for hit in
               laws_kb.search("劳动合同法第三十八条", mode=mode, k=5, filters=Filters(place="浙江")))
    # Without a law's name the number alone re-ranks nothing: the order is the mode's own list.
    assert [hit.ranks["bm25"] for hit in laws_kb.search("第三十八条", mode="bm25", k=5)] == [1, 2, 3, 4, 5]
    # The semantic mode is left alone too.
    assert [hit.ranks["vector"] for hit in laws_kb.search("劳动合同法第三十八条", mode="vector", k=5)] == [1, 2, 3, 4, 5]
