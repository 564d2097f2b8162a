"""Faults from the file system and the environment, reproduced for real: folders and files that cannot
be read (as a user that is not root), broken links and FIFOs, file names that are not UTF-8, a full
disk and a file system without inodes (tmpfs), a read-only file system, a lost CURRENT, bad
settings, a closed pipe and control characters in what is printed. docs/reliability.md lists each.
"""
import contextlib
import hashlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import opencc
import pytest

from kb.cli import main
from kb.embed.fake import FakeEmbedder
from kb.errors import IndexWriteError, KbError, ModelUnavailable, UnreadableFile
from kb.ingest import discover, file_digest, read_file
from kb.knowledgebase import KnowledgeBase, check_index, update_index
from kb.store import current_build
from tests.conftest import DEMO_REPORT, ROOT

NOBODY = 65534
WAGE = "关于根治拖欠农民工工资问题的通知\n\n各地要加大欠薪治理力度,对拖欠工资的用人单位依法查处。\n"
LEAVE = "关于女职工劳动保护的规定\n\n用人单位不得因女职工怀孕、生育、哺乳降低其工资、予以辞退。\n"
OVERTIME = "关于加班工资支付的办法\n\n用人单位安排劳动者延长工作时间的,应当支付不低于工资百分之一百五十的工资报酬。\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def kb_cli(*args: str, user: int | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`kb ARGS` in a new process (as `user` when given, through the checkout as that user sees it)."""
    python, root = _NOBODY_CHECKOUT if user is not None else (sys.executable, str(ROOT))
    environment = {**os.environ, **(env or {}), "PYTHONPATH": root}
    if user is not None:
        environment["HOME"] = tempfile.gettempdir()
    return subprocess.run([python, "-m", "kb.cli", *args], capture_output=True, text=True,
                          env=environment, user=user, group=user, extra_groups=[] if user is not None else None,
                          cwd=tempfile.gettempdir(), timeout=300)


_NOBODY_CHECKOUT = (sys.executable, str(ROOT))  # the Python and kb that `nobody` runs (nobody_checkout)


def _nobody_can_run(python: str, root: str) -> str:
    """"" when user nobody can run kb with `python` from `root`, else why not."""
    try:
        probe = subprocess.run([python, "-c", "import kb.cli"], user=NOBODY, group=NOBODY, extra_groups=[],
                               env={**os.environ, "PYTHONPATH": root}, capture_output=True, text=True,
                               cwd=tempfile.gettempdir())
    except OSError as exc:  # the interpreter itself is out of reach
        return str(exc)
    return probe.stderr.strip()[-200:] if probe.returncode else ""


@pytest.fixture(scope="session")
def nobody_checkout():
    """This checkout as user `nobody` can run it. A clone inside a folder only root may enter (`mktemp -d`
    makes those) is bind-mounted at a folder anyone may enter, with its virtual environment."""
    global _NOBODY_CHECKOUT
    if os.geteuid() != 0:
        pytest.skip("needs root to run kb as another user (as a non-root user, chmod already bites)")
    if not _nobody_can_run(sys.executable, str(ROOT)):
        yield
        return
    inside = Path(sys.executable).is_relative_to(ROOT)
    view = Path(tempfile.mkdtemp(prefix="kb-checkout-"))
    view.chmod(0o755)
    mounted = inside and subprocess.run(["mount", "--bind", str(ROOT), str(view)], capture_output=True).returncode == 0
    python = str(view / Path(sys.executable).relative_to(ROOT)) if inside else sys.executable
    problem = _nobody_can_run(python, str(view)) if mounted else "this checkout cannot be bind-mounted"
    try:
        if problem:
            pytest.skip(f"user nobody cannot run this checkout's Python: {problem}")
        _NOBODY_CHECKOUT = (python, str(view))
        yield
    finally:
        _NOBODY_CHECKOUT = (sys.executable, str(ROOT))
        if mounted:
            subprocess.run(["umount", "-l", str(view)], check=False)
        view.rmdir()


@pytest.fixture
def nobody_dir(nobody_checkout):
    """A folder owned by `nobody`, for tests where permissions must bite (they do not for root)."""
    folder = Path(tempfile.mkdtemp(prefix="kb-nobody-"))
    os.chown(folder, NOBODY, NOBODY)
    try:
        yield folder
    finally:
        for path, dirs, _ in os.walk(folder):
            for name in dirs:
                os.chmod(os.path.join(path, name), 0o755)
        shutil.rmtree(folder)


def chown_tree(root: Path, uid: int) -> None:
    os.chown(root, uid, uid)
    for path, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chown(os.path.join(path, name), uid, uid, follow_symlinks=False)


def doc_ids(index: Path) -> set[str]:
    return {doc.id for doc in KnowledgeBase.load(index, FakeEmbedder()).documents}


# ---------------------------------------------------------------- unreadable folders and files

def test_unreadable_folder_or_file_keeps_its_documents(nobody_dir):
    docs, index = nobody_dir / "docs", nobody_dir / "index"
    write(docs / "wage.txt", WAGE)
    write(docs / "sub" / "leave.txt", LEAVE)
    write(docs / "sub" / "overtime.txt", OVERTIME)
    chown_tree(nobody_dir, NOBODY)
    first = kb_cli("ingest", str(docs), "--index", str(index), "--model", "fake", "--quiet", user=NOBODY)
    assert first.returncode == 0, first.stderr
    everything = {"docs/wage.txt", "docs/sub/leave.txt", "docs/sub/overtime.txt"}
    assert doc_ids(index) == everything

    os.chmod(docs / "sub", 0)
    result = kb_cli("ingest", str(docs), "--index", str(index), "--quiet", user=NOBODY)
    assert result.returncode == 0, result.stderr
    assert "removed 0, kept 2 that could not be read now" in result.stdout
    assert f"skipped {docs / 'sub'}: cannot list folder: Permission denied (2 documents indexed from it" \
           " before are kept)" in result.stdout
    assert doc_ids(index) == everything

    os.chmod(docs / "sub", 0o755)
    os.chmod(docs / "wage.txt", 0)  # a file, not a folder
    result = kb_cli("ingest", str(docs), "--index", str(index), "--quiet", user=NOBODY)
    assert "removed 0, kept 1 that could not be read now" in result.stdout
    assert "cannot read file: Permission denied (the version indexed before is kept)" in result.stdout
    assert doc_ids(index) == everything

    os.chmod(docs, 0)  # the folder given itself
    result = kb_cli("ingest", str(docs), "--index", str(index), "--quiet", user=NOBODY)
    assert result.returncode == 0 and "kept 3" in result.stdout, result.stdout + result.stderr
    assert doc_ids(index) == everything

    os.chmod(docs, 0o644)  # listable, but its entries cannot be reached
    result = kb_cli("ingest", str(docs), "--index", str(index), "--quiet", user=NOBODY)
    assert "kept 3" in result.stdout and f"skipped {docs / 'sub'}: cannot read: Permission denied (2 documents" \
        in result.stdout, result.stdout + result.stderr
    assert doc_ids(index) == everything

    os.chmod(docs, 0o755)
    os.chmod(docs / "wage.txt", 0o644)
    (docs / "sub" / "leave.txt").unlink()  # really gone: now it goes
    result = kb_cli("ingest", str(docs), "--index", str(index), "--quiet", user=NOBODY)
    assert "removed 1," in result.stdout
    assert doc_ids(index) == everything - {"docs/sub/leave.txt"}


def test_file_replaced_by_a_broken_link_or_a_fifo_keeps_its_document(tmp_path):
    docs = tmp_path / "docs"
    write(docs / "wage.txt", WAGE)
    write(docs / "leave.txt", LEAVE)
    kb = KnowledgeBase(tmp_path / "index", FakeEmbedder())
    kb.ingest([docs])
    (docs / "wage.txt").unlink()
    os.symlink(docs / "missing.txt", docs / "wage.txt")
    (docs / "leave.txt").unlink()
    os.mkfifo(docs / "leave.txt")  # reading it would block for ever
    report = kb.ingest([docs])
    assert report.removed == () and set(report.kept) == {"docs/wage.txt", "docs/leave.txt"}
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert reasons == {"wage.txt": "broken symbolic link (the version indexed before is kept)",
                       "leave.txt": "not a regular file (the version indexed before is kept)"}
    assert {doc.id for doc in kb.documents} == {"docs/wage.txt", "docs/leave.txt"}
    assert kb.search("拖欠工资")[0].doc_id == "docs/wage.txt"
    assert report.kept == ("docs/leave.txt", "docs/wage.txt")
    (docs / "wage.txt").unlink()
    (docs / "leave.txt").unlink()
    assert set(kb.ingest([docs]).removed) == {"docs/wage.txt", "docs/leave.txt"}


FIFO_AFTER_DISCOVERY = """
import os, sys
from kb.ingest import discover, read_document
from kb.errors import UnreadableFile
[source], _ = discover([sys.argv[1]])
os.unlink(source.path)
os.mkfifo(source.path)  # between discovery and reading: only the read itself can tell
try:
    read_document(source)
except UnreadableFile as exc:
    print(exc.reason)
"""


def test_a_fifo_put_in_place_after_discovery_is_not_read(tmp_path):
    path = write(tmp_path / "wage.txt", WAGE)
    # A new process, so that a read that blocks for ever fails this test at the timeout, not the run.
    result = subprocess.run([sys.executable, "-c", FIFO_AFTER_DISCOVERY, str(path)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout.strip() == "not a regular file", result.stderr


# ---------------------------------------------------------------- file names

def path_bytes(path: str) -> bytes:
    """The file system's bytes for a path as kb shows it (\\xNN for a byte that is not UTF-8)."""
    return b"".join(bytes([int(part[2:], 16)]) if re.fullmatch(r"\\x[0-9a-f]{2}", part) else part.encode("utf-8")
                    for part in re.split(r"(\\x[0-9a-f]{2})", path))


def test_file_and_folder_names_that_are_not_utf8_are_indexed(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    gbk_file = bytes(docs) + b"/" + "工资通知.txt".encode("gbk")
    gbk_folder = bytes(docs) + b"/" + "女职工".encode("gbk")
    with open(gbk_file, "wb") as handle:
        handle.write(WAGE.encode("utf-8"))
    os.mkdir(gbk_folder)
    with open(gbk_folder + b"/" + "规定.txt".encode("gbk"), "wb") as handle:
        handle.write(LEAVE.encode("gbk"))
    write(docs / "overtime.txt", OVERTIME)
    index = tmp_path / "index"
    assert main(["ingest", str(docs), "--index", str(index), "--model", "fake", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "indexed 3 files (3 new" in out
    # Ids read the names as the GBK they are; paths keep the bytes (\\xNN), so they name the file exactly.
    kb = KnowledgeBase.load(index, FakeEmbedder())
    assert {doc.id for doc in kb.documents} == {"docs/工资通知.txt", "docs/女职工/规定.txt", "docs/overtime.txt"}
    assert path_bytes(kb.document("docs/工资通知.txt").path) == gbk_file
    wage_id = "docs/工资通知.txt"
    # The id names the file: a second ingest finds every file unchanged, and search cites it.
    assert main(["ingest", str(docs), "--index", str(index), "--quiet"]) == 0
    assert "(0 new, 0 changed, 3 unchanged), removed 0" in capsys.readouterr().out
    assert main(["search", "拖欠工资", "--index", str(index), "-k", "1"]) == 0
    assert wage_id in capsys.readouterr().out
    os.unlink(gbk_file)
    assert main(["ingest", str(docs), "--index", str(index), "--quiet"]) == 0
    assert "removed 1," in capsys.readouterr().out


def test_a_gbk_name_beside_its_utf8_twin_gets_its_own_id(tmp_path):
    docs = tmp_path / "docs"
    write(docs / "工资通知.txt", WAGE)
    gbk = bytes(docs) + b"/" + "工资通知.txt".encode("gbk")
    with open(gbk, "wb") as handle:
        handle.write(LEAVE.encode("gbk"))
    report = KnowledgeBase(None, FakeEmbedder()).ingest([docs])
    assert report.skipped == ()
    assert set(report.added) == {"docs/工资通知.txt",
                                 "docs/" + "工资通知.txt".encode("gbk").decode("utf-8", "backslashreplace")}


def test_two_folders_with_the_same_name_are_refused(tmp_path, capsys):
    write(tmp_path / "a" / "docs" / "notice.txt", WAGE)
    write(tmp_path / "b" / "docs" / "notice.txt", LEAVE)
    with pytest.raises(KbError, match="would both be indexed as docs/notice.txt"):
        discover([tmp_path / "a" / "docs", tmp_path / "b" / "docs"])
    assert main(["ingest", str(tmp_path / "a" / "docs"), str(tmp_path / "b" / "docs"),
                 "--index", str(tmp_path / "index"), "--model", "fake", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "would both be indexed as docs/notice.txt" in err
    assert not (tmp_path / "index" / "CURRENT").exists()


def test_a_folder_with_the_name_of_an_indexed_one_does_not_replace_it(tmp_path, capsys):
    write(tmp_path / "a" / "docs" / "notice.txt", WAGE)
    write(tmp_path / "b" / "docs" / "notice.txt", LEAVE)
    index = tmp_path / "index"
    assert main(["ingest", str(tmp_path / "a" / "docs"), "--index", str(index), "--model", "fake", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["ingest", str(tmp_path / "b" / "docs"), "--index", str(index), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "docs/notice.txt is indexed from " + str(tmp_path / "a" / "docs" / "notice.txt") in out
    assert "kept 1" in out and "(0 new, 0 changed" in out
    kb = KnowledgeBase.load(index, FakeEmbedder())
    assert kb.document("docs/notice.txt").path == str(tmp_path / "a" / "docs" / "notice.txt")
    # A folder that was moved is another matter: its old place is empty, and the new one takes over.
    shutil.move(tmp_path / "a" / "docs", tmp_path / "moved")
    assert main(["ingest", str(tmp_path / "b" / "docs"), "--index", str(index), "--quiet"]) == 0
    assert "(0 new, 1 changed" in capsys.readouterr().out
    assert KnowledgeBase.load(index, FakeEmbedder()).search("怀孕")[0].doc_id == "docs/notice.txt"


def test_links_leading_outside_the_given_paths_are_followed_only_when_asked(tmp_path):
    docs, outside = tmp_path / "docs", tmp_path / "private"
    write(docs / "wage.txt", WAGE)
    write(outside / "leave.txt", LEAVE)
    os.symlink(outside, docs / "linked")
    os.symlink(outside / "leave.txt", docs / "leave-link.txt")
    os.symlink("/proc/self", docs / "proc")
    os.symlink(docs / "wage.txt", docs / "inside-link.txt")  # inside: a second route, read once
    sources, skipped = discover([docs])
    assert len(sources) == 1  # wage.txt, by whichever route comes first
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert set(reasons) == {"linked", "leave-link.txt", "proc"}
    assert all("outside the given paths: not followed (use --follow-links)" in r for r in reasons.values())
    (docs / "proc").unlink()  # followed, /proc/self/root would lead through the whole file system
    sources, skipped = discover([docs], follow_links=True)
    assert {os.path.realpath(s.path) for s in sources} == {str(docs / "wage.txt"), str(outside / "leave.txt")}
    assert skipped == []
    (docs / "proc").symlink_to("/proc/self")
    sources, skipped = discover([docs, outside])  # the folder is given too: links into it are followed
    assert {Path(s.path).name for s in skipped} == {"proc"}
    assert str(outside / "leave.txt") in {os.path.realpath(s.path) for s in sources}


# ---------------------------------------------------------------- is this text?

@pytest.mark.parametrize("suffix", [".txt", ".md", ".html", ".htm"])
def test_random_bytes_and_control_characters_are_not_text_in_any_format(tmp_path, suffix):
    rng = np.random.default_rng(12)
    noise = rng.integers(1, 256, 20_000, dtype=np.uint8).tobytes()  # no NUL: not caught as "binary" by that
    controls = bytes(range(1, 9)) * 50 + b"\x0b\x0c\x0e\x0f\x10\x1b\x7f" * 50
    write(tmp_path / "docs" / "wage.txt", WAGE)
    (tmp_path / "docs" / f"noise{suffix}").write_bytes(noise)
    (tmp_path / "docs" / f"controls{suffix}").write_bytes(controls)
    report = KnowledgeBase(None, FakeEmbedder()).ingest([tmp_path / "docs"])
    assert report.added == ("docs/wage.txt",)
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(reasons) == {f"noise{suffix}", f"controls{suffix}"}
    assert reasons[f"controls{suffix}"].startswith(("no text", "empty file", "HTML page has no text"))
    assert reasons[f"noise{suffix}"].startswith(("not readable text", "not UTF-8", "binary file"))


NAMES = ("王伟 李娜 张敏 刘洋 陈静 杨帆 赵磊 黄婷 周杰 吴昊 徐丽 孙鹏 胡军 朱琳 高峰 林涛 何欢 郭强 马超 罗晶 梁斌 宋佳 "
         "郑浩 谢瑶 韩梅 唐亮 冯雪 于洁 董辉 萧然 程琪 曹阳 袁野 邓超 许诺 傅聪 沈星 曾毅 彭博 吕薇 苏瑾 卢鑫 蒋欣")


@pytest.mark.parametrize("name, text, encoding", [
    ("名单.txt", "关于表彰2023年度优秀工会工作者的决定\n" + NAMES * 4, "utf-8"),
    ("名单-gbk.txt", "关于表彰2023年度优秀工会工作者的决定\n" + NAMES * 4, "gbk"),
    ("名单-big5.txt",
     opencc.OpenCC("s2t").convert("关于表彰2023年度优秀工会工作者的决定\n" + NAMES * 4).replace("峯", "峰"), "big5"),
    ("russian.txt", "Трудовой кодекс Российской Федерации. Статья 136. Заработная плата выплачивается не реже"
                    " чем каждые полмесяца.", "utf-8"),
    ("korean.md", "# 근로기준법\n임금은 매월 1회 이상 일정한 날짜를 정하여 지급하여야 한다.", "utf-8"),
    ("uyghur.html", "<p>ئەمگەك ھەققى ۋاقتىدا تۆلىنىشى كېرەك.</p>", "utf-8"),
    ("figures.txt", "2019 2020 2021\n12.5 13.1 14.2\n", "utf-8")])
def test_real_text_of_any_kind_is_text(tmp_path, name, text, encoding):
    """The is-this-text check refuses noise, not other scripts or lists of rare characters."""
    path = tmp_path / "docs" / name
    path.parent.mkdir()
    path.write_bytes(text.encode(encoding))
    report = KnowledgeBase(None, FakeEmbedder()).ingest([path.parent])
    assert report.skipped == () and report.added == (f"docs/{name}",)


def test_the_limit_holds_for_what_is_read_not_only_for_the_size_said(monkeypatch):
    monkeypatch.setenv("KB_MAX_FILE_MB", "0.001")  # 1 KB: /proc/self/maps says 0 bytes and holds more
    with pytest.raises(UnreadableFile, match="over the 0.001 MB limit"):
        read_file("/proc/self/maps")
    with pytest.raises(UnreadableFile, match="over the 0.001 MB limit"):
        file_digest("/proc/self/maps")


def test_file_size_is_checked_before_any_byte_is_hashed(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    write(docs / "wage.txt", WAGE)
    with open(docs / "huge.txt", "wb") as handle:  # sparse: 3 GB that take no disk
        handle.truncate(3 * 2**30)
    hashed: list[int] = []
    real_sha256 = hashlib.sha256

    class Counting:
        def __init__(self, data=b""):
            self._digest = real_sha256(data)
            hashed.append(len(data))

        def update(self, data):
            hashed.append(len(data))
            self._digest.update(data)

        def hexdigest(self):
            return self._digest.hexdigest()

    monkeypatch.setattr(hashlib, "sha256", Counting)
    monkeypatch.setenv("KB_MAX_FILE_MB", "1")
    report = KnowledgeBase(None, FakeEmbedder()).ingest([docs])
    assert [(Path(s.path).name, s.reason) for s in report.skipped] == [
        ("huge.txt", "file is 3072.0 MB, over the 1 MB limit (KB_MAX_FILE_MB)")]
    assert sum(hashed) < 10 * 2**20  # the small file and the passages, never the 3 GB


# ---------------------------------------------------------------- full disk, read-only, lost CURRENT

@contextlib.contextmanager
def tmpfs(size: str, inodes: int | None = None):
    """A real tmpfs of `size` (and `inodes`), mounted for the test: a disk that fills up for real."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = Path(tempfile.mkdtemp(prefix="kb-tmpfs-"))
    options = f"size={size}" + (f",nr_inodes={inodes}" if inodes else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        mount_point.rmdir()


def fill(folder: Path, leave: int) -> Path:
    """Fill the file system of `folder` up to `leave` free bytes."""
    free = shutil.disk_usage(folder).free
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, free - leave))
    return filler


def policies(shared: Path, count: int) -> list[Path]:
    return sorted((shared / "corpus" / "policies").iterdir())[:count]


def copy_all(paths: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        shutil.copy(path, folder)
    return folder


def test_disk_full_while_embedding_is_one_line_and_holds_no_space(tmp_path, shared):
    first = copy_all([DEMO_REPORT], tmp_path / "docs")
    more = copy_all(policies(shared, 40), tmp_path / "more")
    with tmpfs("4m") as disk:
        index = disk / "index"
        assert kb_cli("ingest", str(first), "--index", str(index), "--model", "fake", "--quiet").returncode == 0
        before = doc_ids(index)
        filler = fill(disk, leave=150_000)
        free_before = shutil.disk_usage(disk).free
        result = kb_cli("ingest", str(first), str(more), "--index", str(index), "--quiet")
        assert result.returncode == 1, result.stdout
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert "embeddings.sqlite" in result.stderr and "the disk is full" in result.stderr
        assert "free space on it and run the ingest again" in result.stderr
        assert doc_ids(index) == before and main(["check", "--index", str(index)]) == 0
        leftovers = {p.name for p in index.iterdir()} - {"CURRENT", "builds", "embeddings.sqlite", ".lock"}
        assert leftovers == set()  # no -journal or -wal holding the space
        assert not [p for p in (index / "builds").iterdir() if p.name.startswith(".tmp")]
        # What was committed before the disk filled stays as cache; nothing else is held.
        assert shutil.disk_usage(disk).free > free_before - 150_000
        filler.unlink()
        again = kb_cli("ingest", str(first), str(more), "--index", str(index), "--quiet")
        assert again.returncode == 0, again.stderr
        assert len(doc_ids(index)) == 41


def test_disk_full_while_saving_is_an_index_write_error(tmp_path, shared):
    docs = copy_all(policies(shared, 30), tmp_path / "docs")
    with tmpfs("8m") as disk:
        index = disk / "index"
        kb = KnowledgeBase(index, FakeEmbedder())
        kb.ingest([docs])
        kb.save()
        build = current_build(index)
        fill(disk, leave=20_000)
        with pytest.raises(IndexWriteError, match="the previous index is unchanged"):
            update_index(index, [docs], rebuild=True)  # every vector cached: the build write fails
        assert current_build(index) == build
        assert [p.name for p in (index / "builds").iterdir()] == [build.name]
        assert len(doc_ids(index)) == 30


def as_old_wal_cache(index: Path) -> None:
    """Caches written by kb before this change are in WAL mode: reading one read-only needs a -shm file."""
    db = sqlite3.connect(index / "embeddings.sqlite")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()


def check_ok(index: Path, user: int | None = None) -> str:
    result = kb_cli("check", "--index", str(index), user=user)
    assert result.returncode == 0, result.stderr
    assert "damaged" not in result.stdout and "embedding cache ok" in result.stdout
    return result.stdout


def test_check_on_a_full_disk_without_inodes_or_read_only_says_ok(tmp_path):
    docs = copy_all([DEMO_REPORT], tmp_path / "docs")
    with tmpfs("4m", inodes=64) as disk:
        index = disk / "index"
        assert kb_cli("ingest", str(docs), "--index", str(index), "--model", "fake", "--quiet").returncode == 0
        as_old_wal_cache(index)
        fill(disk, leave=0)
        check_ok(index)
        for n in range(100):  # use up the inodes too
            try:
                (disk / f"inode-{n}").touch()
            except OSError:
                break
        assert os.statvfs(disk).f_favail == 0
        check_ok(index)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        check_ok(index)
        result = kb_cli("ingest", str(docs), str(DEMO_REPORT.parent), "--index", str(index), "--quiet")
        assert result.returncode == 1 and result.stderr.count("\n") == 1
        assert "read-only file system" in result.stderr.lower() and "Traceback" not in result.stderr


def test_check_as_a_user_who_cannot_write_the_index(nobody_dir):
    docs = copy_all([DEMO_REPORT], nobody_dir / "docs")
    index = nobody_dir / "index"
    kb = KnowledgeBase(index, FakeEmbedder())
    kb.ingest([docs])
    kb.save()
    as_old_wal_cache(index)
    for path in (index / "embeddings.sqlite-wal", index / "embeddings.sqlite-shm"):
        path.unlink(missing_ok=True)
    check_ok(index, user=NOBODY)


def test_a_bad_vector_in_the_cache_is_re_embedded_not_copied(tmp_path, capsys):
    docs = copy_all([DEMO_REPORT], tmp_path / "docs")
    index = tmp_path / "index"
    kb = KnowledgeBase(index, FakeEmbedder())
    kb.ingest([docs])
    kb.save()
    db = sqlite3.connect(index / "embeddings.sqlite")
    [(key, blob)] = db.execute("SELECT key, vector FROM vectors LIMIT 1").fetchall()
    vector = np.frombuffer(blob, dtype=np.float32).copy()
    vector[3] = np.nan
    with db:
        db.execute("UPDATE vectors SET vector = ? WHERE key = ?", (vector.tobytes(), key))
    db.close()
    assert main(["check", "--index", str(index)]) == 0
    assert "1 unusable vectors" in capsys.readouterr().out
    embedder = FakeEmbedder()
    rebuilt = KnowledgeBase(index, embedder)  # what `kb ingest --rebuild` does
    rebuilt.ingest([docs])
    assert embedder.calls == 1  # the bad row only, re-embedded and written over
    rebuilt.save()
    assert check_index(index)["cache"] == "ok"  # the build's vectors are finite: check_index verifies them


KILL_MID_COMMIT = """
import os, signal, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA cache_size=5")  # small, so that pages go to the file before the commit
db.execute("BEGIN")
for n in range(3000):
    db.execute("INSERT INTO vectors VALUES ('m', ?, ?)", (str(n), os.urandom(1024)))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_cache_write_killed_mid_commit_is_not_called_damage(tmp_path):
    docs = copy_all([DEMO_REPORT], tmp_path / "docs")
    with tmpfs("8m") as disk:
        index = disk / "index"
        assert kb_cli("ingest", str(docs), "--index", str(index), "--model", "fake", "--quiet").returncode == 0
        killed = subprocess.run([sys.executable, "-c", KILL_MID_COMMIT, str(index / "embeddings.sqlite")])
        assert killed.returncode == -signal.SIGKILL and (index / "embeddings.sqlite-journal").stat().st_size
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        result = kb_cli("check", "--index", str(index))
        assert result.returncode == 0 and "damaged" not in result.stdout + result.stderr
        assert "not checked: an interrupted write is pending (embeddings.sqlite-journal)" in result.stdout
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
        check_ok(index)  # with write access SQLite rolls the write back, and the cache is whole
        assert not (index / "embeddings.sqlite-journal").exists()
        assert kb_cli("ingest", str(docs), "--index", str(index), "--rebuild", "--quiet").returncode == 0


def test_cache_rows_of_another_size_and_an_empty_cache_file_are_no_damage(tmp_path, capsys):
    docs = copy_all([DEMO_REPORT], tmp_path / "docs")
    index = tmp_path / "index"
    update_index(index, [docs], model="fake")
    db = sqlite3.connect(index / "embeddings.sqlite")
    rows = db.execute("SELECT key FROM vectors").fetchall()
    with db:
        db.execute("UPDATE vectors SET vector = x'616263' WHERE key = ?", rows[0])  # 3 bytes
        db.execute("UPDATE vectors SET vector = ? WHERE key = ?", (bytes(4 * 256), rows[1][0]))  # all zero
    db.close()
    assert main(["check", "--index", str(index)]) == 0
    assert "1 unusable vectors" in capsys.readouterr().out  # the zero row is usable: a text with nothing to embed
    embedder = FakeEmbedder()
    rebuilt = KnowledgeBase(index, embedder)
    rebuilt.ingest([docs])
    assert embedder.calls == 1
    (index / "embeddings.sqlite").unlink()
    (index / "embeddings.sqlite").touch()  # what a cache whose first write found the disk full leaves
    assert main(["check", "--index", str(index)]) == 0
    assert "embedding cache empty" in capsys.readouterr().out


class NaNEmbedder(FakeEmbedder):
    def embed_passages(self, texts):
        vectors = super().embed_passages(texts)
        vectors[0, 0] = np.nan
        return vectors


def test_a_cache_shared_by_two_models_is_checked_per_model(tmp_path, capsys):
    """The cache outlives a change of model: another model's rows are of another length, not damage,
    whichever row comes first; a row of the index's model must have that model's length."""
    docs = copy_all([DEMO_REPORT], tmp_path / "docs")
    other, index = tmp_path / "other", tmp_path / "index"
    update_index(other, [docs], model="fake:64")
    shutil.copy(other / "embeddings.sqlite", index.parent / "shared.sqlite")
    index.mkdir()
    shutil.copy(index.parent / "shared.sqlite", index / "embeddings.sqlite")  # the 64-dimension rows first
    update_index(index, [docs], model="fake")
    assert main(["check", "--index", str(index)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("embedding cache ok")
    db = sqlite3.connect(index / "embeddings.sqlite")
    with db:  # a 64-dimension vector filed under the index's own 256-dimension model
        db.execute("UPDATE vectors SET vector = (SELECT vector FROM vectors WHERE model = 'fake/char-bigram-hash-64'"
                   " LIMIT 1) WHERE model = 'fake/char-bigram-hash-256' AND rowid = (SELECT max(rowid) FROM vectors)")
    db.close()
    assert main(["check", "--index", str(index)]) == 0
    assert "1 unusable vectors" in capsys.readouterr().out


def test_a_model_that_returns_nan_changes_nothing(tmp_path):
    docs = copy_all([DEMO_REPORT], tmp_path / "docs")
    index = tmp_path / "index"
    update_index(index, [docs], model="fake")
    write(docs / "wage.txt", WAGE)
    kb = KnowledgeBase.load(index, NaNEmbedder())
    with pytest.raises(ModelUnavailable, match="not finite"):
        kb.ingest([docs])
    assert doc_ids(index) == {"docs/" + DEMO_REPORT.name} and check_index(index)["cache"] == "ok"


@pytest.mark.parametrize("name", ["index#1", "index%20a", "索引?x"])
def test_an_index_folder_named_with_uri_characters_loads(tmp_path, name):
    docs = copy_all([DEMO_REPORT], tmp_path / "docs")
    update_index(tmp_path / name, [docs], model="fake")
    assert doc_ids(tmp_path / name) == {"docs/" + DEMO_REPORT.name}
    assert check_index(tmp_path / name)["cache"] == "ok"


def test_lost_current_recovers_the_newest_complete_build(tmp_path, capsys):
    docs = tmp_path / "docs"
    write(docs / "wage.txt", WAGE)
    index = tmp_path / "index"
    update_index(index, [docs], model="fake")
    write(docs / "leave.txt", LEAVE)
    _, report = update_index(index, [docs])
    newest = current_build(index)
    (index / "builds" / ".tmp-20990101T000000-deadbeef").mkdir()  # a killed ingest's debris
    shutil.copytree(newest, index / "builds" / "20990101T000000-0badf00d")  # named like a build, but
    (index / "builds" / "20990101T000000-0badf00d" / "vectors.npy").unlink()  # a file is missing
    shutil.copytree(newest, index / "builds" / "20990101T000001-0badf00d")
    (index / "builds" / "20990101T000001-0badf00d" / "manifest.json").unlink()  # and no manifest
    (index / "CURRENT").unlink()
    assert current_build(index) == newest
    assert doc_ids(index) == {"docs/wage.txt", "docs/leave.txt"}
    assert main(["check", "--index", str(index)]) == 0
    assert "note: CURRENT is missing; the newest complete build above is used" in capsys.readouterr().out
    _, report = update_index(index, [docs])  # nothing changed: no new build, but CURRENT named again
    assert not report.updated and (index / "CURRENT").read_text().strip() == newest.name
    write(docs / "overtime.txt", OVERTIME)
    _, report = update_index(index, [docs])
    assert report.added == ("docs/overtime.txt",) and report.unchanged == ("docs/leave.txt", "docs/wage.txt")
    assert (index / "CURRENT").is_file() and len(doc_ids(index)) == 3


def test_an_ingest_that_changes_nothing_writes_no_build(tmp_path, capsys):
    docs = copy_all([DEMO_REPORT], tmp_path / "docs")
    index = tmp_path / "index"
    assert main(["ingest", str(docs), "--index", str(index), "--model", "fake", "--quiet"]) == 0
    build = current_build(index)
    capsys.readouterr()
    assert main(["ingest", str(docs), "--index", str(index), "--quiet"]) == 0
    assert "nothing changed, no new build written" in capsys.readouterr().out
    assert current_build(index) == build and [p.name for p in (index / "builds").iterdir()] == [build.name]
    write(docs / "wage.txt", WAGE)
    assert main(["ingest", str(docs), "--index", str(index), "--quiet"]) == 0
    assert current_build(index) != build


# ---------------------------------------------------------------- settings and the terminal

@pytest.mark.parametrize("name, value", [("KB_THREADS", "abc"), ("KB_THREADS", "0"), ("KB_ANN_THRESHOLD", "x"),
                                         ("KB_MAX_FILE_MB", "inf"), ("KB_MAX_FILE_MB", "-3")])
def test_bad_settings_are_one_line_errors(tmp_path, name, value):
    docs = copy_all([DEMO_REPORT], tmp_path / "docs")
    result = kb_cli("ingest", str(docs), "--index", str(tmp_path / "index"), "--model", "fake", "--quiet",
                    env={name: value})
    assert result.returncode == 1
    assert result.stderr.startswith(f"kb: error: {name}={value!r} is not ") and result.stderr.count("\n") == 1


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    docs = copy_all([DEMO_REPORT], tmp_path / "docs")
    index = tmp_path / "index"
    assert main(["ingest", str(docs), "--index", str(index), "--model", "fake", "--quiet"]) == 0
    script = shutil.which("kb", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "kb.cli"]
    process = subprocess.Popen([*command, "info", "--index", str(index)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    process.stdout.close()  # the reader is gone before kb writes a byte, as with `| head -3`
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) in (-signal.SIGPIPE, 141)
    assert stderr == ""


def test_an_ingest_whose_reader_has_gone_still_finishes(tmp_path, shared):
    docs = copy_all(policies(shared, 20), tmp_path / "docs")
    index = tmp_path / "index"
    script = shutil.which("kb", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "kb.cli"]
    process = subprocess.Popen([*command, "ingest", str(docs), "--index", str(index), "--model", "fake"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    process.stdout.close()  # `kb ingest 2>&1 | head -1`: the progress bar and the summary go nowhere
    process.stderr.close()
    assert process.wait(timeout=300) in (0, 141)
    assert len(doc_ids(index)) == 20


def test_control_characters_from_file_names_and_text_are_not_printed(tmp_path, capsys):
    hostile = "\x1b[2J\x1b]0;pwned\x07\r\u202e"
    docs = tmp_path / f"docs{hostile}"  # the folder given: printed by info as a source
    write(docs / f"欠薪{hostile}通知.txt", "关于欠薪\x9b31m的通知\u202e\n\n拖欠工资的用人单位依法查处。")
    write(docs / f"扫描{hostile}.pdf", "not a PDF")  # skipped: its name is in the ingest summary
    index = tmp_path / "index"
    assert main(["ingest", str(docs), "--index", str(index), "--model", "fake", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "skipped " in out and "扫描[2J]0;pwned.pdf: not a valid PDF" in out
    assert not any(ch in out for ch in "\x1b\x07\r\x9b\u202e"), repr(out)
    for args in (["search", "欠薪"], ["search", "欠薪", "--json"], ["info"]):
        assert main([*args, "--index", str(index)]) == 0
        out = capsys.readouterr().out
        assert ("欠薪" if args[0] == "search" else "docs[2J]0;pwned") in out
        assert not any(ch in out for ch in "\x1b\x07\r\x9b\u202e"), repr(out)
    assert "\\u001b[2J" in main.__globals__["_json"]({"t": hostile})
