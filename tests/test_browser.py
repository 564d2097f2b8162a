"""The app in a real browser: `streamlit run` on a free port, Debian's Chromium driven by Playwright.

Types a question, waits for the result cards, checks citations, highlights and the compare view, and
saves a screenshot (its path is printed). Needs /usr/bin/chromium and the playwright package
(`python3 tasks.py test` installs both); outside CI the test is skipped when they are missing.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docx
import pytest
from docx.enum.text import WD_BREAK

from kb.embed.fake import FakeEmbedder
from kb.knowledgebase import KnowledgeBase
from tests.conftest import COLLECTIVE_BARGAINING_QUESTION, DEMO_REPORT, ROOT, collective_bargaining_files

CHROMIUM = os.environ.get("KB_CHROMIUM", "/usr/bin/chromium")
QUESTION = COLLECTIVE_BARGAINING_QUESTION
# Without the background-networking flags Chromium keeps calling Google's hosts, which this
# machine's closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _requirements() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package"
    else:
        missing = None if Path(CHROMIUM).exists() else CHROMIUM
    if missing:
        message = f"browser test needs {missing} (python3 tasks.py test installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(tmp_path: Path, docs: Path):
    """`streamlit run app.py` on a free port over an index of `docs`; yields its URL."""
    kb = KnowledgeBase(tmp_path / "index", FakeEmbedder())
    kb.ingest([docs])
    kb.save()
    port = _free_port()
    env = {**os.environ, "KB_INDEX": str(tmp_path / "index"), "KB_UPLOADS": str(tmp_path / "uploads")}
    log = open(tmp_path / "streamlit.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"streamlit did not start: {(tmp_path / 'streamlit.log').read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


@pytest.fixture
def app_url(tmp_path, shared):
    _requirements()
    docs = tmp_path / "corpus"
    (docs / "DLC").mkdir(parents=True)
    shutil.copy(DEMO_REPORT, docs)
    for path in collective_bargaining_files(shared):
        shutil.copy(path, docs / "DLC" / path.name)
    (docs / "注入.txt").write_text("工资集体协商<script>document.title='pwned'</script><img src=x onerror=alert(1)>",
                                   encoding="utf-8")
    with serving(tmp_path, docs) as url:
        yield url


def test_browser_shows_cited_highlighted_results(app_url, tmp_path):
    from playwright.sync_api import sync_playwright

    screenshot = Path(os.environ.get("KB_SCREENSHOT", tmp_path / "kb-app.png"))
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(app_url)
            box = page.get_by_label("检索 (关键词或问题)")
            box.wait_for(timeout=60_000)
            box.fill(QUESTION)
            box.press("Enter")
            page.locator("mark").first.wait_for(timeout=60_000)
            page.wait_for_timeout(500)  # let the last cards render before reading and shooting
            cards = page.locator("div[id^='hit-']")
            assert cards.count() == 10
            body = page.inner_text("body")
            assert "摘录回答" in body and "字符 " in body
            assert "《杭州市企业工资集体协商条例》" in body or "《宁波市企业工资集体协商条例》" in body
            marks = page.locator("mark").all_inner_texts()
            assert any(term in marks for term in ("工资集体协商", "协商代表", "集体协商"))
            # A document's markup stays text: no script ran, no image tag was created by it.
            assert page.title() != "pwned" and page.locator("img[src='x']").count() == 0
            page.screenshot(path=str(screenshot), full_page=False)
            print(f"\nscreenshot: {screenshot}")
            # 打开原文: the whole document in a frame, the passage marked and scrolled into view.
            page.get_by_text("打开原文").first.click()
            frame = page.frame_locator("iframe").first
            marked = frame.locator("mark#passage")
            marked.wait_for(timeout=30_000)
            first_card = page.locator("div[id='hit-1']").inner_text()
            assert marked.inner_text().strip() and first_card.startswith("[1]")
            assert frame.locator("body").evaluate("() => window.scrollY") > 0 or \
                marked.evaluate("m => m.getBoundingClientRect().top") < 420
            page.get_by_role("tab", name="对比各地").click()
            # The table is drawn on a canvas: its text is not in the page, its frame and export are.
            page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=30_000)
            page.get_by_text("导出对比表 CSV").wait_for(timeout=30_000)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000


@contextmanager
def recording_server():
    """An HTTP server on a free local port that records every path asked of it: the "outside host"."""
    requests: list[str] = []

    class Record(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Record)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def test_titles_and_file_names_from_documents_are_shown_as_text(tmp_path, shared):
    """A Markdown heading with an outside image and bold text, a .docx title whose blank lines would end
    the card's HTML block, and an upload named in Markdown: all shown literally, nothing rendered or fetched."""
    _requirements()
    from playwright.sync_api import sync_playwright

    laws = shared / "corpus" / "laws" / "行政法规"
    docs = tmp_path / "corpus"
    docs.mkdir()
    with recording_server() as (host, requests):
        heading = f"![t](http://{host}/x.png) **b** 工资"
        text = (laws / "工资支付暂行规定(1994-12-06).md").read_text(encoding="utf-8")
        # The file name is Markdown too: it is the document's id in the citation line and its path.
        (docs / "**路径**工资.md").write_text(text.replace("# 工资支付暂行规定", f"# {heading}", 1), encoding="utf-8")
        document = docx.Document()
        title = document.add_paragraph("保障农民工工资支付条例", style="Title")
        title.add_run().add_break(WD_BREAK.LINE)
        title.add_run().add_break(WD_BREAK.LINE)
        title.add_run("**粗体** <img src=x onerror=\"document.title='pwned'\">")
        body = (laws / "保障农民工工资支付条例(2019-12-30).md").read_text(encoding="utf-8")
        for line in body.splitlines():
            if line.strip() and not line.startswith(("#", "<!--")):
                document.add_paragraph(line)
        document.save(docs / "条例.docx")
        read = KnowledgeBase(None, FakeEmbedder())
        read.ingest([docs])
        titles = {doc.id.split("/")[-1]: doc.title for doc in read.documents}
        # Ingest makes every title one line; the app escapes as if it were not (test_answer checks that).
        assert titles == {"**路径**工资.md": heading,
                          "条例.docx": "保障农民工工资支付条例 **粗体** <img src=x onerror=\"document.title='pwned'\">"}
        with serving(tmp_path, docs) as url, sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1800})
                asked = []
                page.on("request", lambda request: asked.append(request.url))
                page.goto(url)
                box = page.get_by_label("检索 (关键词或问题)")
                box.wait_for(timeout=60_000)
                box.fill("用人单位 工资支付")
                box.press("Enter")
                page.locator("div[id='hit-2']").wait_for(timeout=60_000)
                # A file named in Markdown, refused at indexing: its name is in the report.
                page.locator("input[type=file]").set_input_files(
                    files=[{"name": "**坏**_文件_.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 broken"}])
                page.get_by_text("**坏**_文件_.pdf").first.wait_for(timeout=30_000)
                page.get_by_role("button", name="加入索引").click()
                page.get_by_text("未索引").first.wait_for(timeout=60_000)
                page.locator("div[id='hit-2']").wait_for(timeout=60_000)
                for expander in page.get_by_text("打开原文").all():
                    expander.click()
                page.wait_for_timeout(1000)  # let the last elements render before reading the page
                body = page.inner_text("body")
                shown = " ".join(body.split())
                assert f"《{heading}》" in shown and re.search(rf"\[\d+\] {re.escape(heading)}", shown)
                flat_title = "保障农民工工资支付条例 **粗体** <img src=x onerror=\"document.title='pwned'\">"
                assert f"《{flat_title}》" in shown and re.search(rf"\[\d+\] {re.escape(flat_title)}", shown)
                assert "corpus/**路径**工资.md" in shown and "未索引 **坏**_文件_.pdf" in shown
                images = page.locator("img").evaluate_all("images => images.map(image => image.outerHTML)")
                assert images == []
                bold = page.locator("strong, b").all_inner_texts()
                assert [text for text in bold if not text.startswith("[") and text != "摘录回答"] == [], bold
                emphasis = page.locator("em, i").all_inner_texts()
                assert emphasis == [], emphasis
                assert page.title() != "pwned"
            finally:
                browser.close()
        assert requests == [] and not [request for request in asked if host in request]
