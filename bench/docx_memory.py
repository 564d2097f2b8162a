"""Memory and time of reading hostile and real .docx files: python-docx (kb before kb.wordml) against kb.wordml.

Usage: python bench/docx_memory.py [--cap-gb 4] [--timeout 120] [--only NAME,...]

Each read runs in a fresh process (`--child old|new FILE`) that reports its peak resident memory
(VmHWM of its own address space: getrusage's ru_maxrss would carry the parent's peak in through
fork and exec, see bench/scale.py) and the seconds of the read. The address space of every child is
capped at --cap-gb (default 4 GB, setrlimit RLIMIT_AS) so that python-docx on a bomb fails with a
MemoryError instead of taking the machine from the other jobs on it, and a read still running after
--timeout seconds (python-docx walks 3.4 million paragraphs in 15 minutes) is stopped; such rows
show the peak so far.

old: kb's reader before kb.wordml: the declared sizes of all members at most 20 x the 200 MB file
limit, then python-docx 1.2 (zipfile read() of every part, an lxml tree of each) and the body walk
(tests/docx_bombs.python_docx_read; python-docx comes with the test extras, `pip install -e '.[test]'`).
new: kb.wordml.read_docx with its default limits.

Files (hostile ones from tests/docx_bombs.py, built in the temporary folder):
- paragraphs: 300 MB of <w:p/> (52 million empty paragraphs), 0.5 MB packed, headers honest;
- mixed: 200 MB of <w:p/> with a random revision id in one of 100 (packs 70 times, under the ratio
  cap): a 3 MB file like the one of issue 12;
- lying: a member declaring a 0.5 KB document whose deflate stream goes on for 2 GB;
- ratio: 200 MB of <w:p/> packed 1,000 times, declaring a packed size 100 times smaller (padding);
- within caps: 20 MB of the mixed paragraphs, 3.5 million tags: the most work the caps let through
  (no text: ingest then skips it as "document has no text");
- names: 2 million different attribute names (expat keeps each name it meets);
- shape: all that expat must hold at once, at the caps (namespaces, nesting, names, 1 MB tags);
- law x100: the largest real law (社会保险法, $KB_SHARED/corpus/pdf) with its body repeated 100 times,
  29 MB of ordinary WordprocessingML (~1,500 pages);
- each real .docx under $KB_SHARED (six laws).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import docx_bombs  # noqa: E402

SHARED = Path(os.environ.get("KB_SHARED", ROOT.parent / "shared"))
OLD_LIMIT = 20 * 200 * 2**20  # kb's old check: declared sizes <= 20 x KB_MAX_FILE_MB (default 200)


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM), MB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))


def child(how: str, path: str, cap_gb: float) -> None:
    """Read one file the old or the new way; print outcome, seconds and peak memory as JSON."""
    cap = int(cap_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if how == "old":  # imported before the peak is read, as the new reader's module
        import docx  # noqa: F401
    else:
        from kb.wordml import read_docx
    data = Path(path).read_bytes()
    started = time.perf_counter()
    try:
        if how == "old":
            declared = sum(info.file_size for info in zipfile.ZipFile(io.BytesIO(data)).infolist())
            if declared > OLD_LIMIT:
                raise ValueError(f"parts unpack to {declared / 2**20:.0f} MB (a zip bomb?)")
            text, _ = docx_bombs.python_docx_read(data)
        else:
            text = read_docx(data, path, ("Title", "Heading 1")).text
        outcome = f"read, {len(text):,} characters, CRC {zlib.crc32(text.encode()):08x}"  # zlib: no new import
    except MemoryError:
        outcome = "MemoryError"
    except Exception as exc:  # what kb reported as the reason
        outcome = str(getattr(exc, "reason", exc))[:90]
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_mb": peak_mb(), "outcome": outcome}))


def run(how: str, path: Path, cap_gb: float, timeout: float) -> dict:
    """One read in a fresh process; one still reading after `timeout` seconds is stopped, its peak so far kept."""
    process = subprocess.Popen([sys.executable, __file__, "--child", how, str(path), "--cap-gb", str(cap_gb)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with open(f"/proc/{process.pid}/status") as status:
            peak = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
        process.kill()
        process.communicate()
        return {"seconds": timeout, "peak_mb": peak, "outcome": f"still reading at {timeout:g} s, stopped"}
    if process.returncode != 0:
        return {"seconds": float("nan"), "peak_mb": float("nan"), "outcome": err.strip()[-90:]}
    return json.loads(out)


def law_times(source: Path, times: int) -> bytes:
    """The .docx `source` with its body (all but the section properties) repeated `times` times."""
    archive = zipfile.ZipFile(source)
    xml = archive.read("word/document.xml").decode()
    start = xml.index("<w:body>") + len("<w:body>")
    end = xml.rindex("<w:sectPr")
    xml = xml[:start] + xml[start:end] * times + xml[end:]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in archive.infolist():
            body = xml.encode() if info.filename == "word/document.xml" else archive.read(info)
            copy.writestr(info.filename, body)
    return out.getvalue()


def files(folder: Path) -> list[tuple[str, Path]]:
    built = {
        "paragraphs": lambda: docx_bombs.paragraph_bomb(300),
        "mixed": lambda: docx_bombs.mixed_bomb(200),
        "lying": lambda: docx_bombs.lying_bomb(2000),
        "ratio": lambda: docx_bombs.ratio_bomb(200),
        "within caps": lambda: docx_bombs.mixed_bomb(20),
        "names": docx_bombs.names_bomb,
        "shape": docx_bombs.shape_bomb,
        "law x100": lambda: law_times(SHARED / "corpus" / "pdf" / "中华人民共和国社会保险法.docx", 100),
    }
    out = []
    for name, build in built.items():
        path = folder / (re.sub(r"\W", "-", name) + ".docx")
        path.write_bytes(build())
        out.append((name, path))
    return out + [(path.stem, path) for path in sorted(SHARED.rglob("*.docx"))]


def xml_mb(path: Path) -> float:
    info = zipfile.ZipFile(path).getinfo("word/document.xml")
    return info.file_size / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cap-gb", type=float, default=4.0)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a read may take (default 120)")
    parser.add_argument("--only", default="", help="comma-separated file names (default: all)")
    parser.add_argument("--child", nargs=2, metavar=("HOW", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.cap_gb)
        return
    only = {name for name in args.only.split(",") if name}
    with tempfile.TemporaryDirectory() as folder:
        print(f"children capped at {args.cap_gb:g} GB of address space; peak = VmHWM; ratio = old / new\n")
        print(f"{'file':<24} {'file MB':>8} {'XML MB':>8} | {'old MB':>8} {'old s':>7} | {'new MB':>7} {'new s':>6}"
              f" | {'MB ratio':>8} {'s ratio':>7} | old outcome / new outcome")
        baseline = {how: run(how, Path(os.devnull), args.cap_gb, args.timeout) for how in ("old", "new")}
        print(f"{'(imports only)':<24} {'':>8} {'':>8} | {baseline['old']['peak_mb']:8.1f} {'':>7} |"
              f" {baseline['new']['peak_mb']:7.1f}")
        for name, path in files(Path(folder)):
            if only and name not in only:
                continue
            old, new = (run(how, path, args.cap_gb, args.timeout) for how in ("old", "new"))
            outcomes = ("read, the same text" if old["outcome"] == new["outcome"] and old["outcome"].startswith("read")
                        else f"{old['outcome']} / {new['outcome']}")
            print(f"{name:<24} {path.stat().st_size / 2**20:8.2f} {xml_mb(path):8.1f} |"
                  f" {old['peak_mb']:8.1f} {old['seconds']:7.2f} | {new['peak_mb']:7.1f} {new['seconds']:6.2f} |"
                  f" {old['peak_mb'] / new['peak_mb']:7.1f}x {old['seconds'] / new['seconds']:6.1f}x | {outcomes}",
                  flush=True)


if __name__ == "__main__":
    main()
