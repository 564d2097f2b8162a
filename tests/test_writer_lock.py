"""The writer lock around every write of an index, with real processes holding it: a save alone takes it,
update_index saves under its own hold, and a build in progress is never deleted by another writer."""
import os
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from kb.cli import main
from kb.embed.fake import FakeEmbedder
from kb.errors import IndexBusy
from kb.knowledgebase import KnowledgeBase, update_index
from kb.store import current_build, write_lock
from tests.conftest import DEMO_REPORT, ROOT

# Another writer: takes the lock, optionally starts a build folder as save() does, and keeps both
# until its stdin is closed (or it is killed).
HOLDER = """
import sys
from pathlib import Path
from kb.store import write_lock
index = Path(sys.argv[1])
with write_lock(index):
    for name in sys.argv[2:]:
        (index / "builds" / name).mkdir(parents=True)
    print("held", flush=True)
    sys.stdin.read()
"""
IN_PROGRESS = ".tmp-20990101T000000-feedbeef"


@contextmanager
def other_writer(index: Path, *build_folders: str):
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(index), *build_folders], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert process.stdout.readline() == "held\n"
        yield process
    finally:
        if process.poll() is None:
            process.stdin.close()
        process.wait(timeout=60)


def builds(index: Path) -> set[str]:
    return {entry.name for entry in (index / "builds").iterdir()}


@pytest.fixture
def docs(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(DEMO_REPORT, folder)
    return folder


def test_save_alone_is_refused_while_another_process_writes(tmp_path, docs):
    index = tmp_path / "index"
    kb = KnowledgeBase(index, FakeEmbedder())
    kb.ingest([docs])
    first = kb.save()
    (docs / "wage.txt").write_text("关于根治欠薪的通知\n\n建筑施工企业应当按月足额支付农民工工资。", encoding="utf-8")
    kb.ingest([docs])
    with other_writer(index):
        with pytest.raises(IndexBusy, match="another kb ingest"):
            kb.save()
        assert current_build(index) == first and builds(index) == {first.name}
        assert kb.unsaved
    assert kb.save() != first and {doc.id for doc in KnowledgeBase.load(index).documents} == {
        f"docs/{DEMO_REPORT.name}", "docs/wage.txt"}


def test_a_build_in_progress_is_not_deleted_by_another_writer(tmp_path, docs):
    index = tmp_path / "index"
    update_index(index, [docs], model="fake")
    live = current_build(index)
    (docs / "wage.txt").write_text("建筑施工企业应当按月足额支付农民工工资。", encoding="utf-8")
    kb = KnowledgeBase.load(index)
    kb.ingest([docs])
    with other_writer(index, IN_PROGRESS):
        with pytest.raises(IndexBusy):
            kb.save()
        with pytest.raises(IndexBusy):
            update_index(index, [docs])
        ingest = subprocess.run([sys.executable, "-m", "kb.cli", "ingest", str(docs), "--index", str(index), "--quiet"],
                                capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
        assert ingest.returncode == 1 and "another kb ingest" in ingest.stderr
        assert main(["check", "--index", str(index)]) == 0  # readers go on
        assert builds(index) == {live.name, IN_PROGRESS} and current_build(index) == live


def test_update_index_saves_under_its_own_hold(tmp_path, docs):
    index = tmp_path / "index"
    _, report = update_index(index, [docs], model="fake")
    assert report.added == (f"docs/{DEMO_REPORT.name}",)
    (docs / "wage.txt").write_text("建筑施工企业应当按月足额支付农民工工资。", encoding="utf-8")
    _, report = update_index(index, [docs])
    assert report.added == ("docs/wage.txt",)
    with other_writer(index):  # released once update_index returns
        pass


def test_the_holding_thread_saves_under_its_hold_and_other_threads_are_refused(tmp_path, docs):
    index = tmp_path / "index"
    kb = KnowledgeBase(index, FakeEmbedder())
    kb.ingest([docs])
    refused: list[BaseException] = []

    def save_elsewhere():
        try:
            kb.save()
        except IndexBusy as exc:
            refused.append(exc)

    with write_lock(index):
        build = kb.save()
        thread = threading.Thread(target=save_elsewhere)
        thread.start()
        thread.join()
        with pytest.raises(IndexBusy):  # a second writer, even in this thread
            with write_lock(index):
                pass
    assert len(refused) == 1 and current_build(index) == build
    with other_writer(index):  # the nested hold released it with the outer one
        pass


def test_a_killed_writers_leftover_is_removed_by_the_next_save(tmp_path, docs):
    index = tmp_path / "index"
    kb = KnowledgeBase(index, FakeEmbedder())
    kb.ingest([docs])
    kb.save()
    with other_writer(index, IN_PROGRESS) as writer:
        writer.kill()  # the kernel releases its lock; its build folder stays
    assert IN_PROGRESS in builds(index)
    build = kb.save()
    assert IN_PROGRESS not in builds(index) and current_build(index) == build


def test_a_forked_child_does_not_keep_the_lock_nor_think_it_holds_it(tmp_path):
    index = tmp_path / "index"
    read, write = os.pipe()
    with write_lock(index):
        child = os.fork()
        if child == 0:  # the child outlives the parent's hold, as a worker process may
            try:
                os.close(write)
                os.read(read, 1)  # until the parent has released the lock
                with write_lock(index, reenter=True):  # a hold of its own, not the parent's
                    pass
                os._exit(0)
            except BaseException:
                os._exit(1)
        os.close(read)
    # Released by the parent while the child runs: another process can now write.
    with other_writer(index):
        pass
    os.write(write, b"x")
    os.close(write)
    assert os.waitpid(child, 0)[1] == 0
