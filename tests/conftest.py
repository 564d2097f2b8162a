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


# Passages that hold the word 欠薪 once in a long text, and short tax answers full of its character 欠.
WAGE_ARREARS = (
    "第五条　人力资源和社会保障行政部门应当建立欠薪预警和应急周转金制度，对拖欠工资的用人单位责令限期支付；"
    "逾期不支付的，依法加付赔偿金。第六条　劳动者可以向劳动保障监察机构投诉举报拖欠工资行为，"
    "劳动保障监察机构应当自受理之日起依法处理。第七条　用人单位应当建立工资支付台账，并保存两年以上备查。",
    "三、劳动关系和谐稳定。全年调解劳动人事争议案件两千三百件，调解成功率达到百分之七十。推动企业开展工资集体协商，"
    "建会企业签订工资集体协议的比例稳步提高。深入开展根治欠薪行动，全年为一千六百名农民工追回被拖欠工资，"
    "督促在建工程项目落实农民工实名制管理、工资专用账户和银行代发工资制度，工资支付保证金制度覆盖全部在建项目。"
    "加强劳动保障监察执法，畅通投诉举报渠道，对违法用工行为依法查处，劳动关系总体保持和谐稳定。"
    "全区新建基层劳动人事争议调解组织四十五个，培训调解员三百余人次，推行仲裁要素式办案和简易程序，"
    "平均结案时间缩短到三十五天。开展和谐劳动关系创建活动，评选市级和谐劳动关系先进企业二十家，"
    "指导企业完善劳动规章制度，依法规范劳务派遣用工。下一步将加快智慧人社建设，推进劳动用工备案、"
    "社会保险登记和就业登记一网通办，为企业和劳动者提供更加便捷高效的服务。",
)
TAX_ARREARS = (
    "答：欠税人应当补缴欠缴的税款和滞纳金，欠税公告包括欠税税种和欠税余额。",
    "答：欠缴税款数额较大的欠税人处分不动产前应当向税务机关报告。",
)


def without_arrears() -> list[Path]:
    """The text documents of tests/corpus that do not hold the character 欠: the rest of an index for them."""
    return [path for path in synthetic_files()
            if path.suffix != ".html" and "欠" not in path.read_text(encoding="utf-8")]


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
