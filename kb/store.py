"""The index directory: versioned manifest, checksummed files, atomic build swap, lock, embedding cache.

Layout of an index directory::

    CURRENT              name of the live build (replaced atomically: the swap)
    builds/<name>/       one complete build: manifest.json, passages.sqlite, vectors.npy,
                         bm25-*.npy, vocabulary.json, and ann.npy (HNSW graph) for large indexes
    embeddings.sqlite    vectors by (model id, sha256 of the embedded text), shared by builds
    .lock                held by the one process allowed to write

A build is written under builds/.tmp-*, fsynced, renamed, and only then named in CURRENT, so a
crash or kill at any moment leaves the previous build loadable.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

import numpy as np

from kb import __version__
from kb.errors import IndexBusy, IndexCorrupt, IndexMismatch, IndexNotFound, IndexWriteError, KbError
from kb.records import Chunk, Document, Metadata

_BUILD_NAME = re.compile(r"\d{8}T\d{6}-[0-9a-f]{8}")  # what save() names builds
FORMAT = "kb-index"
FORMAT_VERSION = 3  # 2: documents carry metadata (place, date, issuer, number, type); 3: manifest checksum
REBUILD_HINT = "run `kb ingest --rebuild PATH...` to rebuild it"


@dataclass(frozen=True)
class EmbedderRecord:
    """The model a build's vectors come from; `spec` is what kb.embed.make_embedder takes to make it again."""

    model_id: str
    dim: int
    spec: str

    def __post_init__(self) -> None:
        _check(self.model_id, str, "embedder.model_id")
        _check(self.spec, str, "embedder.spec")
        if _check(self.dim, int, "embedder.dim") <= 0:
            raise ValueError(f"embedder.dim must be positive, got {self.dim}")


@dataclass(frozen=True)
class VectorIndexRecord:
    """How the vectors are searched: `kind` (exact or hnsw) and the VectorIndexSettings as plain values
    (kb.vectors builds the settings from them; store must not import it)."""

    kind: str
    settings: Mapping[str, int]

    def __post_init__(self) -> None:
        _check(self.kind, str, "vector_index.kind")
        object.__setattr__(self, "settings", _mapping(self.settings, int, "vector_index.settings"))


@dataclass(frozen=True)
class Counts:
    """What a build holds; loading compares them with its files."""

    documents: int
    passages: int
    vocabulary: int

    def __post_init__(self) -> None:
        for name in ("documents", "passages", "vocabulary"):
            if _check(getattr(self, name), int, f"counts.{name}") < 0:
                raise ValueError(f"counts.{name} must not be negative, got {getattr(self, name)}")


@dataclass(frozen=True)
class FileEntry:
    """One file of a build, as written."""

    sha256: str
    bytes: int

    def __post_init__(self) -> None:
        _check(self.sha256, str, "files[].sha256")
        _check(self.bytes, int, "files[].bytes")


@dataclass(frozen=True)
class Manifest:
    """A build's manifest.json as a record: built by KnowledgeBase.save, completed with its files by
    `save`, read and checked by `read_manifest`.

    On disk it is the JSON object of FORMAT_VERSION 3, key for key (`to_json`), so builds written before
    and after this record existed read the same. Chunking and BM25 settings are plain mappings: the
    classes that own them (kb.chunk, kb.lexical) are built from them by the reader.
    """

    embedder: EmbedderRecord
    tokenizer: str
    chunking: Mapping[str, int]
    bm25: Mapping[str, float]
    vector_index: VectorIndexRecord
    counts: Counts
    metadata_version: int | None  # None: not recorded (read as the current extractor's)
    sources: tuple[str, ...] = ()
    kb_version: str = __version__
    created: str | None = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    build_seconds: float | None = None  # the ingest that made it; None for a save without one
    files: Mapping[str, FileEntry] = field(default_factory=dict)  # filled in by save(), which writes them

    def __post_init__(self) -> None:
        required: tuple[tuple[str, type], ...] = (
            ("embedder", EmbedderRecord), ("vector_index", VectorIndexRecord), ("counts", Counts),
            ("tokenizer", str), ("kb_version", str))
        for name, kind in required:
            _check(getattr(self, name), kind, name)
        optional: tuple[tuple[str, type | tuple[type, ...]], ...] = (
            ("metadata_version", int), ("created", str), ("build_seconds", (int, float)))
        for name, optional_kind in optional:
            if getattr(self, name) is not None:
                _check(getattr(self, name), optional_kind, name)
        object.__setattr__(self, "chunking", _mapping(self.chunking, int, "chunking"))
        object.__setattr__(self, "bm25", _mapping(self.bm25, (int, float), "bm25"))
        object.__setattr__(self, "files", _mapping(self.files, FileEntry, "files"))
        if isinstance(self.sources, str) or not isinstance(self.sources, (list, tuple)):
            raise TypeError(f"sources must be a list of paths, got {type(self.sources).__name__}")
        object.__setattr__(self, "sources", tuple(self.sources))
        for source in self.sources:
            _check(source, str, "sources[]")
        for name in self.files:
            # Names are joined to the build folder: a path would reach outside it.
            if name in ("", ".", "..") or "/" in name or "\0" in name:
                raise ValueError(f"files names {name!r}, which is not a file of the build")

    def to_json(self) -> dict[str, Any]:
        """The manifest.json object, with its checksum last (keys in the order kb has always written them)."""
        body: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kb_version": self.kb_version,
            "created": self.created,
            "build_seconds": self.build_seconds,
            "embedder": asdict(self.embedder),
            "tokenizer": self.tokenizer,
            "chunking": dict(self.chunking),
            "bm25": dict(self.bm25),
            "vector_index": {"kind": self.vector_index.kind, "settings": dict(self.vector_index.settings)},
            "metadata_version": self.metadata_version,
            "counts": asdict(self.counts),
            "sources": list(self.sources),
            "files": {name: asdict(entry) for name, entry in self.files.items()},
        }
        body["manifest_sha256"] = manifest_checksum(body)
        return body

    @classmethod
    def from_json(cls, obj: object, path: Path, index_dir: Path) -> Manifest:
        """The record of the manifest.json object `obj` read from `path`; IndexCorrupt or IndexMismatch,
        naming the file or index and the fix, when it is not a whole manifest this kb reads."""
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise IndexCorrupt(f"{path}: not a kb index manifest; {REBUILD_HINT}")
        if obj.get("format_version") != FORMAT_VERSION:
            raise IndexMismatch(
                f"index at {index_dir} has format version {obj.get('format_version')}, this kb "
                f"({__version__}) reads version {FORMAT_VERSION}: {REBUILD_HINT}")
        # The manifest holds every other file's checksum; its own covers the rest of it, so that a
        # damaged count, setting or model id cannot pass for a real one.
        if obj.get("manifest_sha256") != manifest_checksum(obj):
            raise IndexCorrupt(f"{path}: checksum does not match its contents (damaged); {REBUILD_HINT}")
        try:
            vector_index = _object(obj["vector_index"], "vector_index")
            # Keys a manifest may lack were added to the format over time; the defaults are what they meant.
            return cls(
                embedder=EmbedderRecord(**_fields(obj["embedder"], "embedder", ("model_id", "dim", "spec"))),
                tokenizer=obj["tokenizer"],
                chunking=_object(obj["chunking"], "chunking"),
                bm25=_object(obj["bm25"], "bm25"),
                vector_index=VectorIndexRecord(vector_index["kind"], _object(vector_index["settings"], "settings")),
                counts=Counts(**_fields(obj["counts"], "counts", ("documents", "passages", "vocabulary"))),
                metadata_version=obj.get("metadata_version"),
                sources=obj.get("sources", ()),
                kb_version=obj.get("kb_version", __version__),
                created=obj.get("created"),
                build_seconds=obj.get("build_seconds"),
                files={name: FileEntry(**_fields(entry, f"files.{name}", ("sha256", "bytes")))
                       for name, entry in _object(obj["files"], "files").items()},
            )
        except KeyError as exc:
            raise IndexCorrupt(f"{path}: manifest lacks {exc}; {REBUILD_HINT}") from None
        except (TypeError, ValueError) as exc:
            raise IndexCorrupt(f"{path}: {exc}; {REBUILD_HINT}") from None


def _check(value: object, kind: type | tuple[type, ...], name: str) -> Any:
    """`value` when it is of `kind` (a bool is no number), else TypeError naming the field."""
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise TypeError(f"{name} must be {names}, got {value!r}")
    return value


def _mapping(value: object, kind: type | tuple[type, ...], name: str) -> Mapping[str, Any]:
    """A read-only copy of a mapping of names to values of `kind`."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping, got {type(value).__name__}")
    for key, item in value.items():
        _check(key, str, f"{name} key")
        _check(item, kind, f"{name}.{key}")
    return MappingProxyType(dict(value))


def _object(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


def _fields(value: object, name: str, names: tuple[str, ...]) -> dict[str, Any]:
    """The fields `names` of a JSON object (others, from a later kb, are left out); KeyError for a missing one."""
    value = _object(value, name)
    missing = [key for key in names if key not in value]
    if missing:
        raise KeyError(f"{name}.{missing[0]}")
    return {key: value[key] for key in names}


@dataclass
class IndexData:
    """Everything a build holds, in memory."""

    manifest: Manifest
    documents: list[Document]
    chunks: list[Chunk]
    vectors: np.ndarray
    bm25_arrays: dict[str, np.ndarray]
    vocabulary: list[str]
    ann: np.ndarray | None = None  # serialised HNSW graph, for indexes above the exact-search size
    build: Path | None = None  # the build directory it was read from (None before it is saved)


def current_build(index_dir: Path) -> Path | None:
    """The live build's directory, or None when the index has never been written.

    Without CURRENT (deleted by hand, or lost with a disk), the newest complete build is the live
    one: starting afresh would throw away everything indexed. The next save writes CURRENT again.
    """
    pointer = index_dir / "CURRENT"
    if not pointer.is_file():
        return newest_complete_build(index_dir)
    try:
        name = pointer.read_bytes().decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{pointer}: unreadable ({exc}); {REBUILD_HINT}") from None
    if not name or "/" in name or name.startswith(".") or not _BUILD_NAME.fullmatch(name):
        raise IndexCorrupt(f"{pointer}: does not name a build; {REBUILD_HINT}")
    build = index_dir / "builds" / name
    if not build.is_dir():
        raise IndexCorrupt(f"{pointer}: names build {name}, which is not in {build.parent}; {REBUILD_HINT}")
    return build


def newest_complete_build(index_dir: Path) -> Path | None:
    """The newest build whose manifest is there and names only files that are there.

    A build is renamed from .tmp-* only once complete, and its manifest is written last, so a build
    folder with a readable manifest of kb's format and all its files is a whole build.
    """
    builds = index_dir / "builds"
    try:
        candidates = [entry for entry in builds.iterdir() if _BUILD_NAME.fullmatch(entry.name) and entry.is_dir()]
    except OSError:
        return None
    for build in sorted(candidates, key=lambda b: (b.name[:15], b.stat().st_mtime_ns), reverse=True):
        try:
            manifest = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if (manifest.get("format") == FORMAT and isinstance(files, dict)
                and all((build / name).is_file() for name in files)):
            return build
    return None


def read_manifest(index_dir: Path, build: Path | None = None) -> Manifest:
    """The live build's manifest (or that of `build`), checked for format, version, checksum and fields."""
    build = existing_build(index_dir, build)
    path = build / "manifest.json"
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorrupt(f"{path}: missing; {REBUILD_HINT}") from None
    except (OSError, ValueError) as exc:
        raise IndexCorrupt(f"{path}: unreadable ({exc}); {REBUILD_HINT}") from None
    return Manifest.from_json(obj, path, index_dir)


def existing_build(index_dir: Path, build: Path | None) -> Path:
    """`build`, else the live build; IndexNotFound when the index has never been written."""
    build = build or current_build(index_dir)
    if build is None:
        raise IndexNotFound(f"no index at {index_dir}: run `kb ingest PATH... --index {index_dir}` first")
    return build


def manifest_checksum(manifest: Mapping[str, Any]) -> str:
    """sha256 of the manifest without its own checksum field, in one canonical JSON form."""
    body = {key: value for key, value in manifest.items() if key != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                          .encode("utf-8")).hexdigest()


def load(index_dir: Path, verify: bool = True) -> IndexData:
    """Read the live build; with `verify`, every file must match its manifest checksum.

    A build swapped in while this reads is no reason to fail: the one read from CURRENT stays on
    disk one more swap, and if it is gone anyway (two swaps meanwhile), the new one is read.
    """
    attempts = 0
    while True:
        build = current_build(index_dir)
        try:
            return _load_build(index_dir, build, verify)
        except IndexCorrupt:
            attempts += 1
            if attempts == 5 or current_build(index_dir) == build:
                raise


def _load_build(index_dir: Path, build: Path | None, verify: bool) -> IndexData:
    build = existing_build(index_dir, build)
    manifest = read_manifest(index_dir, build)
    files = manifest.files
    for name, entry in files.items():
        path = build / name
        if not path.is_file():
            raise IndexCorrupt(f"{path}: missing; {REBUILD_HINT}")
        if verify and file_sha256(path) != entry.sha256:
            raise IndexCorrupt(f"{path}: checksum does not match the manifest (damaged); {REBUILD_HINT}")
    try:
        documents, chunks = _read_passages(build / "passages.sqlite")
        # Memory-mapped: loading is instant and pages come in as queries touch them.
        vectors = np.load(build / "vectors.npy", mmap_mode="r", allow_pickle=False)
        bm25_arrays = {name[len("bm25-"):-len(".npy")]: np.load(build / name, mmap_mode="r", allow_pickle=False)
                       for name in files if name.startswith("bm25-")}
        vocabulary = json.loads((build / "vocabulary.json").read_text(encoding="utf-8"))
        ann = np.load(build / "ann.npy", allow_pickle=False) if "ann.npy" in files else None
    except (OSError, ValueError, sqlite3.DatabaseError) as exc:
        raise IndexCorrupt(f"{build}: cannot read index files ({exc}); {REBUILD_HINT}") from None
    counts = manifest.counts
    if (len(documents) != counts.documents or len(chunks) != counts.passages
            or vectors.shape != (len(chunks), manifest.embedder.dim) or len(vocabulary) != counts.vocabulary):
        raise IndexCorrupt(f"{build}: file contents disagree with the manifest counts; {REBUILD_HINT}")
    return IndexData(manifest, documents, chunks, vectors, bm25_arrays, vocabulary, ann, build)


def save(index_dir: Path, data: IndexData) -> Path:
    """Write `data` as a new build and swap it in atomically; returns the build directory.

    Holds the writer lock while it writes, or goes on under the hold of the thread that already has
    it (update_index); IndexBusy when another writer has it, and then nothing is touched.
    """
    try:
        hold = _acquire(index_dir, reenter=True)
    except OSError as exc:
        raise IndexWriteError(f"cannot write a new build in {index_dir} ({exc}); the previous index is unchanged") \
            from exc
    try:
        return _save_held(index_dir, data)
    finally:
        _release(hold)


def _save_held(index_dir: Path, data: IndexData) -> Path:
    builds = index_dir / "builds"
    name = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    tmp = builds / f".tmp-{name}"
    try:
        tmp.mkdir(parents=True)
        _write_passages(tmp / "passages.sqlite", data.documents, data.chunks)
        _write_npy(tmp / "vectors.npy", np.ascontiguousarray(data.vectors, dtype=np.float32))
        for key, array in data.bm25_arrays.items():
            _write_npy(tmp / f"bm25-{key}.npy", array)
        _write_bytes(tmp / "vocabulary.json", json.dumps(data.vocabulary, ensure_ascii=False).encode())
        if data.ann is not None:
            _write_npy(tmp / "ann.npy", data.ann)
        manifest = replace(data.manifest, files={path.name: FileEntry(file_sha256(path), path.stat().st_size)
                                                 for path in sorted(tmp.iterdir())})
        _write_bytes(tmp / "manifest.json", json.dumps(manifest.to_json(), ensure_ascii=False, indent=2).encode())
        _fsync_dir(tmp)
        final = builds / name
        os.rename(tmp, final)
        _fsync_dir(builds)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (OSError, sqlite3.Error)):
            raise IndexWriteError(f"cannot write a new build in {builds} ({exc}); the previous index is unchanged") \
                from exc
        raise
    previous = current_build(index_dir)
    try:
        set_current(index_dir, final)
    except OSError as exc:
        shutil.rmtree(final, ignore_errors=True)
        raise IndexWriteError(f"cannot switch {index_dir} to the new build ({exc}); the previous index is unchanged") \
            from exc
    # The previous build stays one more round: a reader that read CURRENT just before the swap
    # is still loading it.
    _remove_old_builds(builds, keep={name, previous.name if previous else name})
    data.manifest = manifest
    return final


def set_current(index_dir: Path, build: Path) -> None:
    """Name `build` in CURRENT (atomically): the swap, or restoring a lost CURRENT. A writer's act:
    under the writer lock, its caller's or its own."""
    with write_lock(index_dir, reenter=True):
        write_atomic(index_dir / "CURRENT", (build.name + "\n").encode())


@dataclass
class _Hold:
    """This process's hold of one index's writer lock: the open file its flock is on, the thread that
    took it, and how many nested `write_lock(reenter=True)` of that thread are inside it."""

    key: Path
    handle: IO[str]
    owner: tuple[int, int]  # (pid, thread id) of the thread that took it
    depth: int = 1


_holds: dict[Path, _Hold] = {}
_holds_guard = threading.Lock()


def _forget_holds_in_child() -> None:
    """After a fork: the child is no writer. Its copies of the lock files are closed (the parent's
    own keep the lock: it is on the shared open file description), so that the parent's release is
    the end of the hold, and the child may take the lock itself."""
    global _holds_guard
    for hold in _holds.values():
        hold.handle.close()
    _holds.clear()
    _holds_guard = threading.Lock()  # another thread of the parent may have held it at the fork


os.register_at_fork(after_in_child=_forget_holds_in_child)


def _owner() -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


def _acquire(index_dir: Path, reenter: bool) -> _Hold:
    index_dir.mkdir(parents=True, exist_ok=True)
    key = index_dir.resolve()
    with _holds_guard:
        held = _holds.get(key)
        if reenter and held is not None and held.owner == _owner():
            held.depth += 1
            return held
        # A lock is per open file description: this new open conflicts with every other hold,
        # another process's, another thread's, or this thread's own outside `reenter`.
        handle = open(index_dir / ".lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise IndexBusy(f"another kb ingest is writing {index_dir}; wait for it to finish") from None
        except BaseException:
            handle.close()
            raise
        _holds[key] = hold = _Hold(key, handle, _owner())
        return hold


def _release(hold: _Hold) -> None:
    with _holds_guard:
        hold.depth -= 1
        if hold.depth == 0:
            del _holds[hold.key]
            hold.handle.close()  # closing releases the lock, also when the process dies


@contextmanager
def write_lock(index_dir: Path, reenter: bool = False) -> Iterator[None]:
    """Hold the index's writer lock; a second writer is refused at once with IndexBusy.

    Any writer that does not hold it is refused: another process, another thread, or another
    write_lock of the same code. With `reenter`, the thread that holds it goes on under its hold:
    save() inside update_index, which holds it across load, ingest and save.
    """
    hold = _acquire(index_dir, reenter)
    try:
        yield
    finally:
        _release(hold)


def check_cache(path: Path, model_id: str, dim: int) -> str:
    """A line on the embedding cache's state, or IndexCorrupt when its file is damaged.

    Read without writing where it can be, so that a read-only index, a full disk or a file system
    without free inodes can still be checked; only damage is called damage (the cache only saves
    re-embedding, so deleting it is safe, but telling a user to delete a healthy file is not).
    Rows of `model_id` (the index's model) must hold vectors of `dim` dimensions, as ingest reads them.
    """
    journal = path.with_name(path.name + "-journal")
    pending = journal.is_file() and journal.stat().st_size > 0
    if pending and not _writable(path.parent):
        # A killed ingest's write: the file is only whole again once SQLite rolls it back, which
        # takes write access; read as it is, it would look damaged.
        return f"not checked: an interrupted write is pending ({journal.name}); the next ingest rolls it back"
    try:
        db = _open_for_check(path, pending)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "vectors" not in tables:
                if tables:
                    raise IndexCorrupt(f"{path}: not an embedding cache (it holds {', '.join(sorted(tables))});"
                                       f" {CACHE_FIX}")
                return "empty"
            result = db.execute("PRAGMA quick_check(1)").fetchone()[0]
            unusable = 0 if result != "ok" else _count_unusable(db, model_id, dim)
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        if not _is_damage(exc):
            raise KbError(f"{path}: cannot check the embedding cache: {cache_problem(path, exc)}") from None
        result = str(exc)
    if result != "ok":
        raise IndexCorrupt(f"{path}: embedding cache damaged ({result.splitlines()[0]}); {CACHE_FIX}")
    if unusable:
        return (f"ok, but {unusable} unusable vectors (not finite, not unit length or of another size) are"
                " ignored; the next ingest re-embeds the passages that need them")
    return "ok"


CACHE_FIX = "delete this file (the next ingest re-embeds what it held)"


def _open_for_check(path: Path, pending: bool) -> sqlite3.Connection:
    """A connection for checking. With a pending rollback journal, a writable one, so that SQLite
    rolls the interrupted write back first. Else read-only, and when even that would need a file
    written (the -shm of a WAL database on a full or read-only disk), immutable: the main file as
    it is, which in WAL mode is whole."""
    if not path.is_file():
        raise sqlite3.OperationalError("unable to open database file")
    if pending:
        return sqlite3.connect(path, timeout=10)
    try:
        db = sqlite3.connect(f"file:{_uri_path(path)}?mode=ro", uri=True, timeout=10)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.DatabaseError as exc:
        if _is_damage(exc) or _code(exc) in (SQLITE_BUSY, SQLITE_LOCKED):
            raise
    return sqlite3.connect(f"file:{_uri_path(path)}?immutable=1", uri=True)


def _writable(folder: Path) -> bool:
    try:
        return os.access(folder, os.W_OK) and not os.statvfs(folder).f_flag & os.ST_RDONLY
    except OSError:
        return False


def _uri_path(path: Path) -> str:
    """A path for an SQLite URI: %, # and ? in folder names must not end or change it."""
    from urllib.parse import quote

    return quote(str(path.resolve()))


def _count_unusable(db: sqlite3.Connection, model_id: str, dim: int) -> int:
    """Rows that ingest would not use: of the index's model, any not of `dim` usable dimensions; of
    other models (the cache outlives a change of model), any not a usable vector of its own length."""
    return sum(1 for model, blob in db.execute("SELECT model, vector FROM vectors")
               if cached_vector(blob, dim if model == model_id else len(blob) // 4 if len(blob) % 4 == 0 else 0)
               is None)


def cached_vector(blob: object, dim: int) -> np.ndarray | None:
    """The vector a cache row holds, or None when it is no usable vector of `dim` dimensions."""
    if not isinstance(blob, bytes) or not dim or len(blob) != 4 * dim:
        return None
    vector = np.frombuffer(blob, dtype=np.float32)
    return vector if usable_vector(vector) else None


def usable_vector(vector: np.ndarray) -> bool:
    """Finite, and of unit length as every embedder returns its vectors (kb.embed.Embedder), or all
    zero, which normalise_rows leaves for a text with nothing to embed."""
    if not np.isfinite(vector).all():
        return False
    norm = float(np.dot(vector, vector))
    return abs(norm - 1.0) < 1e-3 or norm == 0.0


# SQLite's primary result codes (an extended code carries one in its low byte).
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR = 3, 5, 6, 8, 10
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 11, 13, 14, 26


def _code(exc: sqlite3.Error) -> int:
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


def _is_damage(exc: sqlite3.Error) -> bool:
    """True for errors that mean the file's contents are broken, not that it cannot be reached."""
    return _code(exc) in (SQLITE_CORRUPT, SQLITE_NOTADB)


def cache_problem(path: Path, exc: BaseException) -> str:
    """What keeps kb from using the cache file, in words that name the fix."""
    folder = path.parent
    message = str(exc)
    code = _code(exc) if isinstance(exc, sqlite3.Error) else 0
    try:
        stats = os.statvfs(folder)
    except OSError:
        stats = None
    no_space = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return f"another process is using it ({message}); try again when it is done"
    if stats is not None and stats.f_files and not stats.f_favail:
        return f"the file system has no free inodes ({message}); delete files on it and run the ingest again"
    if code == SQLITE_FULL or no_space or (code in (SQLITE_IOERR, SQLITE_CANTOPEN) and stats is not None
                                           and stats.f_bavail * stats.f_frsize < 1 << 20):
        return f"the disk is full ({message}); free space on it and run the ingest again"
    if stats is not None and stats.f_flag & os.ST_RDONLY:
        return f"the file system is read-only ({message})"
    if code in (SQLITE_READONLY, SQLITE_PERM, SQLITE_CANTOPEN) and not _writable(folder):
        return f"no permission to write in {folder} ({message})"
    return message


class EmbeddingCache:
    """Passage vectors by (model id, sha256 of the embedded text); committed batch by batch.

    A rollback journal, not WAL: a write that fails (disk full) is rolled back and its journal
    deleted, so a failed ingest holds no space; and a read-only open needs no -shm file.
    """

    def __init__(self, path: Path, model_id: str, dim: int):
        self.path, self.model_id, self.dim = path, model_id, dim
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc) from None
        try:
            self._db.execute("PRAGMA journal_mode=DELETE")
            self._db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, key TEXT NOT NULL,"
                             " vector BLOB NOT NULL, PRIMARY KEY (model, key))")
        except sqlite3.Error as exc:
            self._db.close()
            raise self._error(exc) from None

    def _error(self, exc: BaseException):
        if isinstance(exc, sqlite3.DatabaseError) and _is_damage(exc):
            return IndexCorrupt(f"{self.path}: embedding cache damaged ({exc}); {CACHE_FIX}")
        return IndexWriteError(f"{self.path}: cannot use the embedding cache: {cache_problem(self.path, exc)};"
                               " the previous index is unchanged")

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Cached vectors for those keys that have a usable one; a bad row is left out, so re-embedded."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        try:
            for start in range(0, len(unique), 500):
                batch = unique[start:start + 500]
                rows = self._db.execute(
                    f"SELECT key, vector FROM vectors WHERE model = ? AND key IN ({','.join('?' * len(batch))})",
                    [self.model_id, *batch])
                for key, blob in rows:
                    vector = cached_vector(blob, self.dim)
                    if vector is not None:  # a bad row is left out: re-embedded, then written over
                        found[key] = vector
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        return found

    def put_many(self, keys: list[str], vectors: np.ndarray) -> None:
        try:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO vectors (model, key, vector) VALUES (?, ?, ?)",
                    [(self.model_id, key, np.ascontiguousarray(vector, dtype=np.float32).tobytes())
                     for key, vector in zip(keys, vectors)])
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        self._db.close()


def _read_passages(path: Path) -> tuple[list[Document], list[Chunk]]:
    db = sqlite3.connect(f"file:{_uri_path(path)}?mode=ro", uri=True)
    try:
        documents = [
            Document(id=row[0], path=row[1], title=row[2], text=row[3], sha256=row[4], format=row[5],
                     page_starts=tuple(json.loads(row[6])), meta=_metadata(json.loads(row[7])))
            for row in db.execute("SELECT id, path, title, text, sha256, format, page_starts, meta"
                                  " FROM documents ORDER BY position")]
        by_id = {doc.id: doc for doc in documents}
        chunks = []
        for doc_id, ordinal, start, end, page, section, article in db.execute(
                "SELECT doc_id, ordinal, start, end_, page, section, article FROM chunks ORDER BY position"):
            text = by_id[doc_id].text[start:end]  # passages are stored as spans, not copies
            chunks.append(Chunk(doc_id, ordinal, start, end, text, page, section, article))
        return documents, chunks
    except KeyError as exc:
        raise sqlite3.DatabaseError(f"passage of unknown document {exc}") from None
    finally:
        db.close()


def _metadata(fields) -> Metadata:
    if not isinstance(fields, dict):
        raise ValueError("document metadata is not a JSON object")
    try:
        return Metadata(**{**fields, "place": tuple(fields.get("place", ()))})
    except TypeError as exc:
        raise ValueError(f"document metadata has unknown fields ({exc})") from None


def _write_passages(path: Path, documents: list[Document], chunks: list[Chunk]) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("CREATE TABLE documents (position INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, path TEXT,"
                   " title TEXT, text TEXT, sha256 TEXT, format TEXT, page_starts TEXT, meta TEXT)")
        db.execute("CREATE TABLE chunks (position INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, ordinal INTEGER,"
                   " start INTEGER, end_ INTEGER, page INTEGER, section TEXT, article TEXT)")
        with db:
            db.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(i, d.id, d.path, d.title, d.text, d.sha256, d.format, json.dumps(d.page_starts),
                             json.dumps(asdict(d.meta), ensure_ascii=False))
                            for i, d in enumerate(documents)])
            db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           [(i, c.doc_id, c.ordinal, c.start, c.end, c.page, c.section, c.article)
                            for i, c in enumerate(chunks)])
    finally:
        db.close()
    _fsync_file(path)


def _write_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())


def _write_bytes(path: Path, payload: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())


def write_atomic(path: Path, payload: bytes) -> None:
    """Replace `path` whole: a temp file in the same directory, fsynced, then os.replace."""
    # Not named after `path`: a name that fits the file system's limit must not fail for its temp file.
    tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
    try:
        _write_bytes(tmp, payload)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _remove_old_builds(builds: Path, keep: set[str]) -> None:
    # Only save() calls it, under the writer lock (every writer takes it), so a .tmp-* here is debris
    # of a killed writer, not another writer's build in progress.
    for entry in builds.iterdir():
        if entry.name not in keep:
            shutil.rmtree(entry, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    _fsync_file(path)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
