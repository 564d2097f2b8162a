"""Shared fixtures: where ../shared lives, and the demo corpus."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO_REPORT = ROOT / "corpus" / "jiangmen-2022-01-21-industrial-workers.txt"


def shared_path() -> Path:
    """The real-data folder: $KB_SHARED, else ../shared beside the project root."""
    return Path(os.environ.get("KB_SHARED", ROOT.parent / "shared")).resolve()


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
