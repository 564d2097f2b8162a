"""Streamlit app: search with filters, a cited answer, cited passages, compare by place, export, upload.

Thin on purpose: every retrieval decision lives in kb/; this file only lays results out. Text from
documents, file names and error messages goes through kb.markup: html_text inside HTML blocks,
markdown_text in Markdown elements (st.caption, st.warning, …); tables and widgets show plain text.
Run: streamlit run app.py  (index from $KB_INDEX, default ./index; uploads go to $KB_UPLOADS,
default ./corpus/uploads)
"""
from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pandas as pd
import streamlit as st
import streamlit.components.v1 as components

from kb.answer import cite, group_by_place, group_label, highlight_html
from kb.errors import IndexNotFound, KbError
from kb.export import hits_to_csv, hits_to_markdown, places_to_csv
from kb.ingest import MAX_UPLOAD_BYTES, SUPPORTED_SUFFIXES, save_upload
from kb.knowledgebase import KnowledgeBase, update_index
from kb.markup import html_text, markdown_text
from kb.search import Filters

INDEX = os.environ.get("KB_INDEX", "index")
UPLOADS = os.environ.get("KB_UPLOADS", str(Path("corpus") / "uploads"))
MODES = {"混合": "hybrid", "关键词": "bm25", "语义": "vector"}
ALL = "全部"
COMPARE_DEPTH = 200  # passages searched for the compare view, so that many places get a row
UPLOAD_TYPES = sorted(suffix.lstrip(".") for suffix in SUPPORTED_SUFFIXES)
STAGES = {"parse": "读取文件", "tokenize": "分词", "embed": "计算向量"}  # ingest's progress stages, as shown


def main() -> None:
    st.set_page_config(page_title="政策文件知识库", layout="wide")
    st.title("政策文件知识库")
    filter_box = st.sidebar.container()  # filters on top, filled once the index is open
    upload_panel()  # before opening the index: a new build swapped in is searched in this same run
    kb = open_index()
    if kb is None:
        return
    filters = filter_panel(kb, filter_box)
    status_panel(kb)

    query = st.text_input("检索 (关键词或问题)", placeholder="例如: 江门 产业工人 发展党员 / 老板拖了三个月工资不发怎么办")
    left, right = st.columns(2)
    mode = MODES[left.radio("方式", list(MODES), horizontal=True)]
    k = right.slider("结果数", 1, 50, 10)
    if not query.strip() or filters is None:
        return
    try:
        hits = kb.search(query, mode=mode, k=k, filters=filters)
    except KbError as exc:
        st.warning(markdown_text(exc))
        return
    results, compare = st.tabs(["检索结果", "对比各地"])
    with results:
        show_results(kb, query, hits)
    with compare:
        show_compare(kb, query, mode, filters)


def open_index() -> KnowledgeBase | None:
    """The live build, shared by all sessions; a session keeps the one it opened until its run ends."""
    try:
        with st.spinner("加载索引…"):
            return KnowledgeBase.live(INDEX)
    except IndexNotFound:
        st.warning(f"还没有索引 ({markdown_text(INDEX)})。先运行: kb ingest corpus ,或在左侧上传文件。")
    except KbError as exc:
        st.error(f"索引无法加载: {markdown_text(exc)}")
    return None


def filter_panel(kb: KnowledgeBase, bar) -> Filters | None:
    """Sidebar filters: place (province, then city), dates, document type, folder."""
    facets = kb.facets()
    bar.header("筛选")
    provinces = list(facets["places"])
    province = bar.selectbox("地区", [ALL] + provinces, key="province")
    place = "" if province == ALL else province
    cities = facets["places"].get(province, [])
    if cities:
        city = bar.selectbox("城市", [ALL] + cities, key="city")
        place = place if city == ALL else f"{province}/{city}"
    since = bar.text_input("起始日期", placeholder="2020 / 2020-02 / 2020-02-21", key="since").strip()
    until = bar.text_input("截止日期", placeholder="2023-12-31", key="until").strip()
    doc_types = bar.multiselect("文件类型", facets["doc_types"], key="doc_types")
    folder = bar.selectbox("文件夹", [ALL] + facets["folders"], key="folder")
    try:
        return Filters(prefix="" if folder == ALL else folder, place=place, since=since, until=until,
                       doc_types=tuple(doc_types))
    except KbError as exc:
        bar.warning(markdown_text(exc))
        return None


def status_panel(kb: KnowledgeBase) -> None:
    info = kb.info()
    places = [name for name in info["places"] if name]
    with st.sidebar.expander("索引状态"):
        st.markdown(
            f"- 文件: {info['documents']}\n- 段落: {info['passages']}\n"
            f"- 地区: {len(places)} 个 ({markdown_text('、'.join(places[:12]))}{' …' if len(places) > 12 else ''})\n"
            f"- 模型: {markdown_text(info['model'])}\n- 构建: {markdown_text(info['created'])}")


def upload_panel() -> None:
    """Upload files, store them under UPLOADS and index them; searches use the old build until the swap."""
    bar = st.sidebar
    bar.header("上传文件")
    files = bar.file_uploader(f"PDF / DOCX / TXT / MD,每个不超过 {MAX_UPLOAD_BYTES // 2**20} MB", type=UPLOAD_TYPES,
                              accept_multiple_files=True, key="uploads")
    if not files or not bar.button("加入索引", key="index_uploads"):
        return
    refused, stored = [], 0
    for file in files:
        # One file that cannot be stored is a line of the report; the rest of the batch goes on.
        try:
            save_upload(UPLOADS, file.name, file.getvalue())
            stored += 1
        except KbError as exc:
            refused.append(str(exc))
        except OSError as exc:
            refused.append(f"{file.name}: 无法保存 ({exc.strerror or exc})")
    skipped = index_uploads(bar) if stored else []
    for reason in refused + skipped:
        bar.warning(f"未索引 {markdown_text(reason)}")


def index_uploads(bar) -> list[str]:
    """Index the upload folder with a progress bar and say how it went; returns the files skipped, with why."""
    bar_progress = bar.progress(0.0, text="准备…")

    def progress(stage: str, done: int, total: int) -> None:
        bar_progress.progress(done / total if total else 1.0, text=f"{STAGES.get(stage, stage)} {done}/{total}")

    try:
        _, report = update_index(INDEX, [UPLOADS], progress=progress)
    except Exception as exc:  # noqa: BLE001 - whatever stopped it, the previous build stays live: say so, no traceback
        bar_progress.empty()
        bar.error(f"索引失败 (已保存的文件下次加入索引时再试): {markdown_text(exc)}")
        return []
    bar_progress.progress(1.0, text="完成")
    kept = f",{len(report.kept)} 个暂时无法读取的文件保留原索引" if report.kept else ""
    bar.success(f"已索引 {report.indexed} 个文件 (新增 {len(report.added)}, 更新 {len(report.changed)}{kept}),"
                f"共 {report.passages} 段")
    return [f"{Path(skipped.path).name}: {skipped.reason}" for skipped in report.skipped]


def show_results(kb: KnowledgeBase, query: str, hits) -> None:
    if not hits:
        st.info("没有找到相关段落")
        return
    answer = kb.answer(query, hits)
    if answer:
        with st.container(border=True):
            st.markdown("**摘录回答**(原文句子,编号对应下方结果)")
            st.markdown("<div>" + " ".join(
                f"{html_text(plain(sentence.text))} <a href='#hit-{sentence.citation}'>[{sentence.citation}]</a>"
                for sentence in answer) + "</div>", unsafe_allow_html=True)
    left, right = st.columns(2)
    left.download_button("导出 CSV", hits_to_csv(hits).encode("utf-8-sig"), "kb-results.csv", "text/csv",
                         key="export_csv")
    right.download_button("导出 Markdown", hits_to_markdown(query, hits).encode("utf-8"), "kb-results.md",
                          "text/markdown", key="export_md")
    for hit in hits:
        with st.container(border=True):
            st.markdown(f"<div id='hit-{hit.rank}'><b>[{hit.rank}] {html_text(hit.title)}</b></div>",
                        unsafe_allow_html=True)
            st.caption(markdown_text(cite(hit).label()))
            st.markdown(passage_html(hit.text, hit.matched_terms), unsafe_allow_html=True)
            with st.expander("查看上下文"):
                st.markdown(context_html(kb, hit), unsafe_allow_html=True)
            with st.expander("打开原文"):
                st.caption(markdown_text(hit.path))
                components.html(document_html(kb, hit), height=420, scrolling=True)


def plain(text: str) -> str:
    """Passage text as read: Markdown heading marks of .md sources (## 第二章) dropped."""
    return re.sub(r"(?m)^#{1,6}[ \t]+", "", text)


def passage_html(text: str, terms) -> str:
    """Escaped, highlighted passage in one HTML block, so that nothing in it is read as Markdown."""
    return "<div>" + highlight_html(plain(text), terms).replace("\n", "<br>") + "</div>"


def context_html(kb: KnowledgeBase, hit) -> str:
    """The passages before and after the hit, escaped, the hit itself marked."""
    passages = kb.passages_of(hit.doc_id)
    near = passages[max(0, hit.ordinal - 1):hit.ordinal + 2]
    parts = []
    for passage in near:
        body = passage_html(passage.text, hit.matched_terms)
        if passage.ordinal == hit.ordinal:
            body = f"<div style='background:#fff3b0;padding:4px'>{body}</div>"
        label = html_text(" · ".join(x for x in (passage.article, passage.section) if x))
        parts.append(f"<div><small>{label}</small>{body}</div><br>")
    return "<div>" + "".join(parts) + "</div>"


def document_html(kb: KnowledgeBase, hit) -> str:
    """The whole document, escaped, the passage marked and scrolled into view."""
    text = kb.document(hit.doc_id).text
    body = (html.escape(text[:hit.start]) + "<mark id='passage'>" + highlight_html(hit.text, hit.matched_terms)
            + "</mark>" + html.escape(text[hit.end:])).replace("\n", "<br>")
    return (f"<div style='font-family:sans-serif;font-size:14px;line-height:1.6'>{body}</div>"
            # The frame is drawn while its expander is still closed (no height): scroll once it has one.
            "<script>var done = false; function show() { if (!done && window.innerHeight > 0) { done = true;"
            " document.getElementById('passage').scrollIntoView({block: 'center'}); } }"
            " window.addEventListener('resize', show); show();</script>")


def show_compare(kb: KnowledgeBase, query: str, mode: str, filters: Filters) -> None:
    """One row per place with its best passages, citations and dates; sortable and exportable."""
    level = st.radio("按", ["城市", "省份"], horizontal=True, key="compare_level")
    try:
        hits = kb.search(query, mode=mode, k=COMPARE_DEPTH, filters=filters)
    except KbError as exc:
        st.warning(markdown_text(exc))
        return
    groups = group_by_place(hits, level="city" if level == "城市" else "province")
    if not groups:
        st.info("没有找到相关段落")
        return
    rows = []
    for group in groups:
        best = group.hits[0]
        rows.append({"地区": group_label(group), "排名": best.rank,
                     "最佳段落": best.text[:160] + ("…" if len(best.text) > 160 else ""),
                     "出处": cite(best).label(), "日期": best.meta.date, "文号": best.meta.doc_number,
                     "更多": " | ".join(cite(other).label() for other in group.hits[1:])})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.download_button("导出对比表 CSV", places_to_csv(groups).encode("utf-8-sig"), "kb-compare.csv", "text/csv",
                       key="export_compare")


main()
