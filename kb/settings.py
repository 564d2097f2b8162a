"""Settings read from the environment, each checked: a bad value is a one-line BadSettings error
naming the variable and what it takes, never a traceback."""
from __future__ import annotations

import math
import os

from kb.errors import BadSettings


def max_file_bytes() -> int:
    """Largest file ingest reads: $KB_MAX_FILE_MB megabytes, default 200."""
    return int(_number("KB_MAX_FILE_MB", 200.0, "a number of megabytes above 0") * 2**20)


def threads() -> int:
    """Threads for the embedding engine: $KB_THREADS, else every core."""
    return int(_number("KB_THREADS", float(os.cpu_count() or 1), "a whole number of threads, 1 or more",
                       whole=True))


def ann_threshold() -> int:
    """Passages up to which vector search is exact (HNSW above): $KB_ANN_THRESHOLD, default 200,000."""
    return int(_number("KB_ANN_THRESHOLD", 200_000.0, "a whole number of passages, 1 or more", whole=True))


def _number(name: str, default: float, takes: str, whole: bool = False) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw.replace("_", "")) if not whole else float(int(raw.replace("_", "")))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0 or (whole and value < 1):
        raise BadSettings(f"{name}={raw!r} is not {takes}")
    return value


SETTINGS = (max_file_bytes, threads, ann_threshold)  # every setting read from the environment


def validate() -> None:
    """Check every setting at once, so that a bad one is reported whatever the command needs."""
    for setting in SETTINGS:
        setting()
