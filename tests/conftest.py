"""Shared fixtures: where ../shared lives, the demo corpus, and the synthetic corpus of tests/corpus.

Tests that only need some Chinese policy text (to index, search, damage or kill) use tests/corpus:
ten short documents invented for the tests (local rules on wages of 杭州, 宁波, 郑州, 山东 and 河南 with 章
and 第X条, a national law excerpt, a notice with a 文号 and date, a tax Q&A, an HTML report and an opinion
on unpaid wages), so that they run without ../shared. Tests of behaviour on real data use `shared`."""
import os
import re
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO_REPORT = ROOT / "corpus" / "jiangmen-2022-01-21-industrial-workers.txt"
SYNTHETIC_CORPUS = ROOT / "tests" / "corpus"


def synthetic_files() -> list[Path]:
    """The documents of tests/corpus, in a stable order (the names are ASCII: they sort the same everywhere)."""
    return sorted(path for path in SYNTHETIC_CORPUS.iterdir() if path.is_file())


def textless_pdf(path: Path) -> Path:
    """A one-page PDF with no text layer, as a scan without OCR is."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def shared_path() -> Path:
    """The real-data folder: $KB_SHARED, else ../shared beside the project root."""
    return Path(os.environ.get("KB_SHARED", ROOT.parent / "shared")).resolve()


# The compare-by-place question and the real regulations it is asked of (test_browser, test_end_to_end).
COLLECTIVE_BARGAINING_QUESTION = "企业工资集体协商中职工方协商代表受到哪些保护"
_COLLECTIVE_BARGAINING = re.compile("集体合同|集体协商|工会")


def collective_bargaining_files(shared: Path) -> list[Path]:
    """The 15 regulations on collective contracts, wage bargaining and trade unions of ../shared/corpus/laws/DLC."""
    return sorted(p for p in (shared / "corpus" / "laws" / "DLC").rglob("*.md") if _COLLECTIVE_BARGAINING.search(p.name))


def kill_once_the_cache_has_new_rows(process: subprocess.Popen, cache: Path, timeout: float = 120) -> None:
    """SIGKILL a running `kb ingest` as soon as its embedding cache holds more committed rows than when
    this was called: a moment after it has paid for some vectors, whatever the machine's load. A run
    that ends first is left ended."""
    start = committed_cache_rows(cache) or 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        rows = committed_cache_rows(cache)
        if rows is not None and rows > start:
            break
        time.sleep(0.02)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()


def committed_cache_rows(cache: Path) -> int | None:
    """The vectors an embedding cache holds as a reader sees them (committed ones only); None while it
    is not there or cannot be read (a write in progress, no table yet)."""
    if not cache.exists():
        return None
    try:
        with closing(sqlite3.connect(cache.as_uri() + "?mode=ro", uri=True, timeout=0.05)) as db:
            return db.execute("SELECT count(*) FROM vectors").fetchone()[0]
    except sqlite3.Error:
        return None


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared, or a skip outside CI; in CI (CI=true) a missing folder fails loudly."""
    path = shared_path()
    if not (path / "corpus").is_dir():
        message = f"real data not found at {path} (set KB_SHARED)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def demo_text() -> str:
    return DEMO_REPORT.read_text(encoding="utf-8")


@pytest.fixture(autouse=True)
def _forget_live_builds():
    """KnowledgeBase.live holds one build per index folder for the process: drop them after each test,
    so that no test's index stays loaded (and memory-mapped) for the rest of the run."""
    yield
    from kb.knowledgebase import KnowledgeBase

    KnowledgeBase.forget_live()
