"""Memory of a running app as builds are swapped in: RSS over N swaps, with a search after each.

Usage: python bench/app_memory.py [--corpus DIR] [--swaps 10] [--model fake] [--app PATH ...]
       e.g. git show REV:app.py > /tmp/app-before.py
            python bench/app_memory.py --app /tmp/app-before.py --app app.py

Builds an index of --corpus (default ../shared/corpus/policies, 600 documents) once in a temporary
folder. Then for each --app (default app.py), in a fresh process and on its own copy of that index,
runs the app script through Streamlit's AppTest (the script runs in the measuring process, as it does
in `streamlit run`'s), asks a question, and N times swaps in a new build and asks again: odd swaps
upload a changed notice through the app's 上传文件 panel, even swaps ingest it from another process
(`kb ingest`, as a scheduled job would). After each search it reports the process's RSS (VmRSS), the
peak RSS so far (VmHWM), the KnowledgeBase objects alive, and the mappings of deleted build files
(/proc/self/maps "(deleted)").
Questions are the eval questions of the policies set, in turn.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("KB_SHARED", ROOT.parent / "shared"))


def memory_mb() -> dict[str, float]:
    """VmRSS and its peak VmHWM of this process in MB (not ru_maxrss: see bench/scale.py's memory_mb)."""
    fields = {line.split(":")[0]: int(line.split()[1]) / 1024
              for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(("VmRSS:", "VmHWM:"))}
    return {"rss": round(fields["VmRSS"], 1), "peak": round(fields["VmHWM"], 1)}


def deleted_mappings(index: Path) -> int:
    builds = os.path.realpath(index / "builds")
    return sum(1 for line in Path("/proc/self/maps").read_text().splitlines()
               if builds in line and line.endswith("(deleted)"))


def notice(swap: int) -> bytes:
    return (f"关于第{swap}次调整工资支付日期的通知\n\n用人单位应当于每月{swap}日前足额支付上月工资,不得拖欠。"
            "劳动者对工资支付有异议的,可以向工会或者劳动保障监察机构反映。").encode()


def child(app_path: str, index: Path, work: Path, swaps: int, questions: list[str]) -> None:
    """Run the app in this process and print one JSON line per search."""
    from streamlit.testing.v1 import AppTest

    from kb.knowledgebase import KnowledgeBase

    os.environ["KB_INDEX"] = str(index)
    os.environ["KB_UPLOADS"] = str(work / "uploads")
    outside = work / "outside"
    outside.mkdir()

    def report(swap: int) -> None:
        alive = sum(1 for item in gc.get_objects() if isinstance(item, KnowledgeBase))
        print(json.dumps({"swap": swap, **memory_mb(), "alive": alive, "deleted_mapped": deleted_mappings(index)}),
              flush=True)

    app = AppTest.from_file(app_path, default_timeout=600)
    app.run()
    app.text_input[0].input(questions[0]).run()
    report(0)
    for swap in range(1, swaps + 1):
        if swap % 2:
            app.sidebar.file_uploader(key="uploads").set_value([("工资支付通知.txt", notice(swap), "text/plain")]).run()
            app.sidebar.button(key="index_uploads").click().run()
        else:
            (outside / "工资支付通知.txt").write_bytes(notice(swap))
            subprocess.run([sys.executable, "-m", "kb.cli", "ingest", str(outside), "--index", str(index)],
                           check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        app.text_input[0].input(questions[swap % len(questions)]).run()
        if app.exception:
            raise RuntimeError(app.exception)
        report(swap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus" / "policies")
    parser.add_argument("--questions", type=Path, default=SHARED / "eval" / "policies" / "queries.jsonl")
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--model", default="fake")
    parser.add_argument("--app", action="append", help="app script to measure (repeatable; default app.py)")
    parser.add_argument("--child", nargs=3, metavar=("APP", "INDEX", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    questions = [json.loads(line)["text"] for line in args.questions.read_text(encoding="utf-8").splitlines()
                 if line.strip()][:20]
    if args.child:
        app_path, index, work = args.child
        child(app_path, Path(index), Path(work), args.swaps, questions)
        return

    from kb.knowledgebase import KnowledgeBase

    apps = [str(Path(app).resolve()) for app in args.app or [ROOT / "app.py"]]
    with tempfile.TemporaryDirectory(prefix="kb-app-memory-") as tmp:
        base = Path(tmp) / "base"
        kb = KnowledgeBase(base, args.model)
        kb.ingest([args.corpus])
        kb.save()
        info = kb.info()
        print(f"index: {args.corpus} ({info['documents']} documents, {info['passages']} passages, {info['model']});"
              f" {args.swaps} swaps", flush=True)
        del kb
        results = {}
        for app_path in apps:
            work = Path(tmp) / f"run-{len(results)}"
            work.mkdir()
            shutil.copytree(base, work / "index")
            run = subprocess.run([sys.executable, __file__, "--child", app_path, str(work / "index"), str(work),
                                  "--swaps", str(args.swaps), "--questions", str(args.questions)],
                                 capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            if run.returncode:
                raise SystemExit(f"{app_path} failed:\n{run.stderr[-3000:]}")
            results[app_path] = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    print("| swap | " + " | ".join(f"{Path(app).name}: RSS MB / peak MB / KnowledgeBase alive / deleted files mapped"
                                   for app in apps) + " |")
    print("|---|" + "---|" * len(apps))
    for row in range(args.swaps + 1):
        cells = [f"{r[row]['rss']:,.0f} / {r[row]['peak']:,.0f} / {r[row]['alive']} / {r[row]['deleted_mapped']}"
                 for r in results.values()]
        print(f"| {row} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
