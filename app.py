"""Streamlit app: search box, cited passages with highlights, the source opened at the passage.

Thin on purpose: every retrieval decision lives in kb/; this file only lays results out.
Run: streamlit run app.py  (index from $KB_INDEX, default ./index)
"""
from __future__ import annotations

import html
import os
from pathlib import Path

import streamlit as st

from kb.answer import cite, highlight_html
from kb.errors import KbError
from kb.knowledgebase import KnowledgeBase
from kb.store import current_build

INDEX = os.environ.get("KB_INDEX", "index")
MODES = {"混合 (hybrid)": "hybrid", "关键词 (bm25)": "bm25", "语义 (vector)": "vector"}
CONTEXT_CHARS = 600


@st.cache_resource(show_spinner="加载索引…")
def load_kb(index: str, build: str) -> KnowledgeBase:
    """One KnowledgeBase per build: loaded once per process, reloaded when a new build is swapped in."""
    return KnowledgeBase.load(index)


def source_excerpt(kb: KnowledgeBase, hit) -> str:
    """The document around the passage, escaped, with the passage marked."""
    text = kb.document(hit.doc_id).text
    before = text[max(0, hit.start - CONTEXT_CHARS):hit.start]
    after = text[hit.end:hit.end + CONTEXT_CHARS]
    return (html.escape(before) + "<mark style='background:#fff3b0'>" + highlight_html(hit.text, hit.matched_terms)
            + "</mark>" + html.escape(after)).replace("\n", "<br>")


def main() -> None:
    st.set_page_config(page_title="政策文件知识库", layout="wide")
    st.title("政策文件知识库")
    try:
        build = current_build(Path(INDEX))
        if build is None:
            st.warning(f"还没有索引 ({INDEX})。先运行: kb ingest corpus")
            return
        kb = load_kb(INDEX, build.name)
    except KbError as exc:
        st.error(f"索引无法加载: {exc}")
        return
    info = kb.info()
    st.caption(f"{info['documents']} 份文件 · {info['passages']} 段 · 模型 {info['model']} · 构建于 {info['created']}")

    query = st.text_input("检索 (关键词或问题)", placeholder="例如: 江门 产业工人 发展党员 / 老板拖了三个月工资不发怎么办")
    left, right = st.columns(2)
    mode = MODES[left.radio("方式", list(MODES), horizontal=True)]
    k = right.slider("结果数", 1, 50, 10)
    if not query.strip():
        return
    try:
        hits = kb.search(query, mode=mode, k=k)
    except KbError as exc:
        st.warning(str(exc))
        return
    if not hits:
        st.info("没有找到相关段落")
    for hit in hits:
        citation = cite(hit)
        with st.container(border=True):
            st.markdown(f"**[{hit.rank}] {html.escape(hit.title)}**")
            st.caption(citation.label())
            st.markdown(highlight_html(hit.text, hit.matched_terms).replace("\n", "<br>"), unsafe_allow_html=True)
            with st.expander("打开原文"):
                st.caption(hit.path)
                st.markdown(source_excerpt(kb, hit), unsafe_allow_html=True)


main()
