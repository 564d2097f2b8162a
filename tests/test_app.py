"""The Streamlit app through AppTest: a query renders cited, highlighted, escaped passages."""
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from kb.dense import FakeEmbedder
from kb.knowledgebase import KnowledgeBase
from tests.conftest import DEMO_REPORT, ROOT


@pytest.fixture
def index(tmp_path, monkeypatch):
    docs = tmp_path / "corpus"
    docs.mkdir()
    shutil.copy(DEMO_REPORT, docs)
    (docs / "注入.txt").write_text("关于欠薪的测试文件\n\n<script>alert('欠薪')</script>拖欠工资<img src=x onerror=alert(1)>。",
                                   encoding="utf-8")
    kb = KnowledgeBase(tmp_path / "index", FakeEmbedder())
    kb.ingest([docs])
    kb.save()
    monkeypatch.setenv("KB_INDEX", str(tmp_path / "index"))
    return tmp_path / "index"


def run_query(query: str) -> AppTest:
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    app.text_input[0].input(query).run()
    assert not app.exception, app.exception
    return app


def test_query_shows_cited_highlighted_passages(index):
    app = run_query("江门 产业工人 发展党员")
    captions = [c.value for c in app.caption]
    assert any("《江门市:整体谋划" in c and "字符 " in c for c in captions)
    bodies = [m.value for m in app.markdown]
    assert any("<mark>产业工人</mark>" in body for body in bodies)
    assert any(body.startswith("**[1] 江门市") for body in bodies)


def test_document_markup_is_shown_as_text(index):
    app = run_query("欠薪 拖欠工资")
    bodies = "\n".join(m.value for m in app.markdown)
    assert "&lt;script&gt;" in bodies and "<script>" not in bodies and "<img" not in bodies


def test_missing_index_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("KB_INDEX", str(tmp_path / "none"))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    assert "kb ingest" in app.warning[0].value
