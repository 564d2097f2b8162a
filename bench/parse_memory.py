"""Memory and time of reading one large text file into a Document (kb.ingest.read_document).

Usage: python bench/parse_memory.py [--mb 50,200] [--traditional]

Builds .txt files of the given sizes from the policy notices of $KB_SHARED/corpus/policies (UTF-8,
repeated; with --traditional also in traditional characters, which read_document converts to
simplified) in a temporary folder, and reads each in a fresh process that reports its peak resident
memory (VmHWM) and the seconds of the read. 200 MB is the default file limit (KB_MAX_FILE_MB), so the
largest row is the most one text file can cost to parse. Figures: docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KB_SHARED", ROOT.parent / "shared"))


def child(path: str) -> None:
    sys.path.insert(0, str(ROOT))
    from kb.ingest import discover, read_document

    started = time.perf_counter()
    [source], _ = discover([path])
    document = read_document(source)
    seconds = time.perf_counter() - started
    peak = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmHWM:"))
    print(json.dumps({"chars": len(document.text), "seconds": round(seconds, 1), "peak_mb": peak // 1024}))


def build(folder: Path, megabytes: int, traditional: bool) -> Path:
    texts = [path.read_text(encoding="utf-8") for path in sorted((SHARED / "corpus" / "policies").glob("*.txt"))]
    block = "\n\n".join(texts)
    if traditional:
        import opencc

        block = opencc.OpenCC("s2t").convert(block)
    data = block.encode("utf-8")
    path = folder / f"{megabytes}mb{'-traditional' if traditional else ''}.txt"
    with open(path, "wb") as handle:
        for _ in range(max(1, megabytes * 2**20 // len(data))):
            handle.write(data)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", default="50,200", help="file sizes in MB, comma-separated")
    parser.add_argument("--traditional", action="store_true", help="also files in traditional characters")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print("| file | characters | seconds | peak RSS (MB) | bytes of memory per byte of file |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for megabytes in (int(mb) for mb in args.mb.split(",")):
            for traditional in (False, True) if args.traditional else (False,):
                path = build(Path(folder), megabytes, traditional)
                result = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True,
                                        text=True, env={**os.environ, "KB_MAX_FILE_MB": str(megabytes * 2)})
                if result.returncode:
                    print(f"| {path.name} | failed: {result.stderr.strip().splitlines()[-1]} | | | |")
                    continue
                row = json.loads(result.stdout)
                ratio = row["peak_mb"] * 2**20 / path.stat().st_size
                print(f"| {path.name} ({path.stat().st_size / 2**20:.0f} MB) | {row['chars']:,} | {row['seconds']}"
                      f" | {row['peak_mb']:,} | {ratio:.1f} |", flush=True)
                path.unlink()


if __name__ == "__main__":
    main()
