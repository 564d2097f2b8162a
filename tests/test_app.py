"""The Streamlit app through AppTest: query, filters, modes, cited answer, compare view, exports, uploads.

The index holds the demo report, the invented local regulations on wages of tests/corpus (杭州, 宁波, 山东,
河南, 郑州), its national law, and files whose text or title is markup.
"""
import csv
import html
import io
import os
import re
import shutil
import weakref
from pathlib import Path

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from kb.answer import cite
from kb.embed.fake import FakeEmbedder
from kb.knowledgebase import KnowledgeBase, update_index
from kb.markup import markdown_text
from kb.store import current_build
from tests.conftest import DEMO_REPORT, ROOT, SYNTHETIC_CORPUS
from tests.test_compare_export import HANGZHOU_DATE, LONG_TITLE, regulation_files

QUESTION = "企业工资集体协商中职工方协商代表受到哪些保护"
SINCE = "2018-01-01"  # between the dates of the documents in the index
MARKUP_TITLE = "![t](http://127.0.0.1:9/x.png) **欠薪** $x^2$ :red[工资] <b>通知</b>"


@pytest.fixture
def index(tmp_path, monkeypatch):
    docs = tmp_path / "corpus"
    (docs / "DLC").mkdir(parents=True)
    shutil.copy(DEMO_REPORT, docs)
    for path in regulation_files():
        shutil.copy(path, docs / "DLC" / path.name)
    (docs / "national").mkdir()
    shutil.copy(SYNTHETIC_CORPUS / "labour-law-excerpt.md", docs / "national")
    (docs / "注入.txt").write_text("关于欠薪的测试文件\n\n<script>alert('欠薪')</script>拖欠工资<img src=x onerror=alert(1)>。",
                                   encoding="utf-8")
    (docs / "**标题**.md").write_text(f"# {MARKUP_TITLE}\n\n用人单位拖欠工资的,由劳动行政部门责令限期支付。", encoding="utf-8")
    kb = KnowledgeBase(tmp_path / "index", FakeEmbedder())
    kb.ingest([docs])
    kb.save()
    monkeypatch.setenv("KB_INDEX", str(tmp_path / "index"))
    monkeypatch.setenv("KB_UPLOADS", str(tmp_path / "uploads"))
    return tmp_path / "index"


def start() -> AppTest:
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    assert not app.exception, app.exception
    return app


def ask(app: AppTest, query: str) -> AppTest:
    app.text_input[0].input(query).run()
    assert not app.exception, app.exception
    return app


def card_titles(app: AppTest) -> list[str]:
    return [m.value.split("<b>")[1].split("</b>")[0] for m in app.markdown if "<div id='hit-" in m.value]


def as_read(markdown: str) -> str:
    """What a reader sees of escaped Markdown text: the escaped characters without their backslashes."""
    return re.sub(r"\\(.)", r"\1", markdown)


def citations(app: AppTest) -> list[str]:
    return [as_read(c.value) for c in app.caption if c.value.startswith("《")]


def test_query_shows_cited_highlighted_passages(index):
    app = ask(start(), "江门 产业工人 发展党员")
    assert any("《江门市:整体谋划" in c and "广东省/江门市 · 2022-01-21" in c and "字符 " in c for c in citations(app))
    bodies = [m.value for m in app.markdown]
    assert any("<mark>产业工人</mark>" in body for body in bodies)
    assert card_titles(app)[0].startswith("[1] 江门市")
    assert app.tabs[0].label == "检索结果" and app.tabs[1].label == "对比各地"


def test_cited_answer_quotes_sources_and_links_to_cards(index):
    app = ask(start(), QUESTION)
    assert any("摘录回答" in m.value for m in app.markdown)
    # Passages of .md sources hold "## 第二章 …": shown as text in one HTML block, never as a heading.
    bodies = [m.value for m in app.markdown if "<mark>" in m.value]
    assert bodies and all(body.startswith("<div>") and "## " not in body for body in bodies)
    answer = next(m.value for m in app.markdown if "href='#hit-" in m.value)
    assert "协商代表" in answer
    cited = [int(n) for n in __import__("re").findall(r"<a href='#hit-(\d+)'>\[\1\]</a>", answer)]
    assert cited and all(1 <= n <= 5 for n in cited)


def test_document_markup_is_shown_as_text(index):
    app = ask(start(), "欠薪 拖欠工资")
    bodies = "\n".join(m.value for m in app.markdown)
    assert "&lt;script&gt;" in bodies and "<script>" not in bodies and "<img" not in bodies
    # A title in Markdown: HTML-escaped in the card, every punctuation character escaped in the citation line.
    assert f"<b>[1] {html.escape(MARKUP_TITLE)}</b>" in bodies or f"<b>[2] {html.escape(MARKUP_TITLE)}</b>" in bodies
    caption = next(c.value for c in app.caption if "标题" in c.value)
    assert caption.startswith(r"《\!\[t\]\(http\:\/\/127\.0\.0\.1\:9\/x\.png\) \*\*欠薪\*\* \$x\^2\$ "
                              r"\:red\[工资\] \<b\>通知\<\/b\>》")
    assert caption.endswith(r"corpus\/\*\*标题\*\*\.md")


def test_mode_switch_and_number_of_results(index):
    """Each mode shows what the library's search in that mode returns, as many as asked for."""
    kb = KnowledgeBase.load(index)

    def expected(mode: str, k: int) -> list[tuple[int, int, str]]:
        return [(hit.start, hit.end, hit.doc_id) for hit in kb.search(QUESTION, mode=mode, k=k)]

    def shown(app: AppTest) -> list[tuple[int, int, str]]:
        found = [re.search(r"字符 (\d+)–(\d+) · (.+)$", c) for c in citations(app)]
        return [(int(m.group(1)), int(m.group(2)), m.group(3)) for m in found]

    app = ask(start(), QUESTION)
    assert len(card_titles(app)) == 10 and shown(app) == expected("hybrid", 10)
    assert [c.value for c in app.caption if c.value.startswith("《")] == [
        markdown_text(cite(hit).label()) for hit in kb.search(QUESTION, k=10)]
    app.radio[0].set_value("关键词").run()
    assert not app.exception and shown(app) == expected("bm25", 10)
    app.radio[0].set_value("语义").run()
    assert not app.exception and shown(app) == expected("vector", 10)
    assert len({tuple(expected(mode, 10)) for mode in ("hybrid", "bm25", "vector")}) > 1  # the switch shows
    app.slider[0].set_value(3).run()
    assert len(card_titles(app)) == 3 and shown(app) == expected("vector", 3)


def test_filters_by_place_city_date_type_and_folder(index):
    app = ask(start(), QUESTION)
    provinces = app.sidebar.selectbox(key="province").options
    assert {"全国", "浙江省", "山东省", "河南省", "广东省"} <= set(provinces)
    app.sidebar.selectbox(key="province").set_value("浙江省").run()
    assert all("浙江省" in c for c in citations(app)) and citations(app)
    app.sidebar.selectbox(key="city").set_value("宁波市").run()
    assert citations(app) and all("浙江省/宁波市" in c for c in citations(app))
    app.sidebar.selectbox(key="province").set_value("全部").run()
    older = [c for c in citations(app) if any(part[:4].isdigit() and part < SINCE for part in c.split(" · "))]
    assert older  # the filter has results to drop
    app.sidebar.text_input(key="since").input(SINCE).run()
    dates = [c.split(" · ") for c in citations(app)]
    assert dates and all(any(part[:4].isdigit() and part >= SINCE for part in parts) for parts in dates)
    app.sidebar.text_input(key="since").input("去年").run()
    assert any("is not a date" in as_read(w.value) for w in app.sidebar.warning)
    app.sidebar.text_input(key="since").input("").run()
    app.sidebar.multiselect(key="doc_types").set_value(["法律"]).run()
    assert citations(app) and all("《中华人民共和国劳动法(节选)》" in c for c in citations(app))
    app.sidebar.multiselect(key="doc_types").set_value([]).run()
    app.sidebar.selectbox(key="folder").set_value("corpus").run()
    assert len(citations(app)) == 10


def test_compare_view_lists_places_side_by_side(index):
    app = ask(start(), QUESTION)
    table = app.dataframe[0].value
    places = list(table["地区"])
    for place in ("浙江省/杭州市", "浙江省/宁波市", "山东省", "河南省"):
        assert place in places
    # A row for each place of the index: the compare view searches deep enough to reach every document.
    indexed = {"/".join(doc.meta.place[:2]) or "未标明地区" for doc in KnowledgeBase.load(index).documents}
    assert len(places) == len(set(places)) and set(places) == indexed
    assert list(table.columns) == ["地区", "排名", "最佳段落", "出处", "日期", "文号", "更多"]
    hangzhou = table[table["地区"] == "浙江省/杭州市"].iloc[0]
    assert "《杭州市企业工资集体协商条例》" in hangzhou["出处"] and hangzhou["日期"] == HANGZHOU_DATE
    app.radio(key="compare_level").set_value("省份").run()
    assert "浙江省" in list(app.dataframe[0].value["地区"])


def test_exports_hold_the_results(index, monkeypatch):
    saved: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def capture(self, data, mimetype, kind, filename=None):
        saved[filename] = data
        return original(self, data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", capture)
    app = ask(start(), QUESTION)
    labels = [button.label for button in app.download_button]
    assert labels == ["导出 CSV", "导出 Markdown", "导出对比表 CSV"]
    rows = list(csv.DictReader(io.StringIO(saved["kb-results.csv"].decode("utf-8-sig"))))
    assert len(rows) == 10 and [row["citation"] for row in rows] == citations(app)
    markdown = saved["kb-results.md"].decode("utf-8")
    assert markdown.startswith(f"# 检索：{QUESTION}") and "## 参考文献" in markdown and "[Z]" in markdown.replace("\\", "")
    compare = list(csv.reader(io.StringIO(saved["kb-compare.csv"].decode("utf-8-sig"))))
    assert compare[0][0] == "place" and "浙江省/杭州市" in [row[0] for row in compare[1:]]


def test_upload_indexes_good_files_and_reports_bad_ones(index, tmp_path):
    app = start()
    policy = "关于根治欠薪的通知\n\n深圳市人力资源和社会保障局要求用人单位按月足额支付农民工工资，严禁拖欠。".encode()
    app.sidebar.file_uploader(key="uploads").set_value([
        ("../../深圳欠薪通知.txt", policy, "text/plain"),
        ("坏文件.pdf", b"%PDF-1.4 not really a pdf", "application/pdf"),
    ]).run()
    app.sidebar.button(key="index_uploads").click().run()
    assert not app.exception, app.exception
    assert any("已索引 1 个文件" in s.value for s in app.sidebar.success), \
        [e.value for e in [*app.sidebar.success, *app.sidebar.warning, *app.sidebar.error]]
    warnings = " ".join(as_read(w.value) for w in app.sidebar.warning)
    assert "坏文件.pdf" in warnings and "not a valid PDF" in warnings
    uploads = tmp_path / "uploads"
    assert sorted(p.name for p in uploads.iterdir()) == ["坏文件.pdf", "深圳欠薪通知.txt"]
    assert not (tmp_path.parent / "深圳欠薪通知.txt").exists()
    ask(app, "深圳 农民工工资 拖欠")
    assert card_titles(app)[0].startswith("[1] 关于根治欠薪的通知")
    assert "广东省/深圳市" in citations(app)[0]


def test_one_bad_file_never_stops_a_batch(index, tmp_path):
    uploads = tmp_path / "uploads"
    (uploads / "占位.txt").mkdir(parents=True)  # a folder where the file should go: storing it is an OSError
    app = start()
    app.sidebar.file_uploader(key="uploads").set_value([
        (LONG_TITLE + ".md", (SYNTHETIC_CORPUS / "tax-relief-qa.md").read_bytes(), "text/markdown"),
        ("占位.txt", "用人单位应当按时足额支付工资。".encode(), "text/plain"),
        ("空白.txt", b"", "text/plain"),
        ("意见.txt", (SYNTHETIC_CORPUS / "migrant-wage-opinions.txt").read_bytes(), "text/plain"),
    ]).run()
    app.sidebar.button(key="index_uploads").click().run()
    assert not app.exception, app.exception
    assert [as_read(s.value) for s in app.sidebar.success] == ["已索引 2 个文件 (新增 2, 更新 0),共 {} 段".format(
        KnowledgeBase.load(index).info()["passages"])]
    warnings = [as_read(w.value) for w in app.sidebar.warning]
    assert warnings == ["未索引 占位.txt: 无法保存 (Is a directory)", "未索引 空白.txt: the file is empty"], warnings
    assert sorted(p.name for p in uploads.iterdir()) == sorted([LONG_TITLE + ".md", "占位.txt", "意见.txt"])
    # Neither is in the index before: each title finds its upload first.
    for query, doc_id in (("疫情防控期间税收优惠政策问答", f"uploads/{LONG_TITLE}.md"),
                          ("关于全面治理欠薪问题的实施意见", "uploads/意见.txt")):
        assert citations(ask(app, query))[0].endswith(f" · {doc_id}")


def test_an_indexing_failure_is_a_message_and_the_files_stay_stored(tmp_path, monkeypatch):
    blocker = tmp_path / "索引"
    blocker.write_text("不是文件夹", encoding="utf-8")
    monkeypatch.setenv("KB_INDEX", str(blocker / "index"))  # cannot be created: its parent is a file
    monkeypatch.setenv("KB_UPLOADS", str(tmp_path / "uploads"))
    app = start()
    app.sidebar.file_uploader(key="uploads").set_value([("通知.txt", "关于按时足额支付工资的通知".encode(), "text/plain")]).run()
    app.sidebar.button(key="index_uploads").click().run()
    assert not app.exception, app.exception
    [error] = [as_read(e.value) for e in app.sidebar.error]
    assert error.startswith("索引失败 (已保存的文件下次加入索引时再试): ") and "Not a directory" in error
    assert (tmp_path / "uploads" / "通知.txt").is_file() and current_build(blocker / "index") is None


def test_swapped_builds_are_released(index, tmp_path, monkeypatch):
    """Ten builds swapped in under a running app, by upload and by an ingest from outside, with a search
    after each: the app holds the live build (and at most one a search still uses), never the ones
    before, no file of a deleted build stays mapped into the process, and the model is not loaded again."""
    loaded = weakref.WeakSet()
    load = KnowledgeBase.load.__func__

    def tracked(cls, *args, **kwargs):
        kb = load(cls, *args, **kwargs)
        loaded.add(kb)
        return kb

    monkeypatch.setattr(KnowledgeBase, "load", classmethod(tracked))
    builds = os.path.realpath(index / "builds")
    outside = tmp_path / "outside"
    outside.mkdir()
    app = start()
    model = KnowledgeBase.live(index).embedder  # the one the app opened
    for swap in range(1, 11):
        notice = f"关于第{swap}次调整工资支付日期的通知\n\n用人单位应当于每月{swap}日前足额支付上月工资,不得拖欠。".encode()
        if swap % 2:
            app.sidebar.file_uploader(key="uploads").set_value([("工资支付通知.txt", notice, "text/plain")]).run()
            app.sidebar.button(key="index_uploads").click().run()
            assert any("已索引 1 个文件" in s.value for s in app.sidebar.success)
        else:
            (outside / "工资支付通知.txt").write_bytes(notice)
            update_index(index, [outside])  # what `kb ingest` in another process does
        ask(app, f"每月{swap}日前足额支付上月工资")
        assert f"关于第{swap}次调整工资支付日期的通知" in card_titles(app)[0]
        assert KnowledgeBase.live(index).embedder is model  # loaded once, kept across builds
        assert len(loaded) <= 2, f"swap {swap}: {len(loaded)} KnowledgeBase instances alive"
        deleted = [line for line in Path("/proc/self/maps").read_text().splitlines()
                   if builds in line and line.endswith("(deleted)")]
        assert deleted == [], f"swap {swap}: deleted builds still mapped: {deleted}"


def test_missing_index_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("KB_INDEX", str(tmp_path / "none"))
    app = start()
    assert "kb ingest" in app.warning[0].value
