#!/usr/bin/env python3
"""Set up and run kb with nothing but python3: `python3 tasks.py app` or `python3 tasks.py test`.

app   create .venv, install kb with the app extra, index corpus/ (only what changed), start the Streamlit app
test  create .venv, install kb with the test, app and st extras (and, as root, Debian's Chromium for the
      browser test), then run ruff, mypy and the whole test suite, stopping at the first that fails
      (what CI runs; arguments after `test` go to pytest)
"""
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"


def run(*command: str) -> None:
    """Run a step, printed first; a failing step ends tasks.py with its exit code (its own output says why)."""
    print("+", " ".join(command), flush=True)
    returncode = subprocess.run(command, cwd=ROOT).returncode
    if returncode != 0:
        sys.exit(returncode)


def ensure_environment(extras: str) -> None:
    """Create .venv if needed and install kb (editable) with the given extras."""
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    run(str(BIN / "python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(str(BIN / "python"), "-m", "pip", "install", "--quiet", "-e", f".[{extras}]" if extras else ".")


def app(extra_args: list[str]) -> None:
    ensure_environment("app")
    kb = str(BIN / "kb")
    ingest = [kb, "ingest", "corpus"]
    if (ROOT / "index").exists() and not os.environ.get("KB_INDEX"):
        info = subprocess.run([kb, "info", "--json"], cwd=ROOT, capture_output=True, text=True)
        if info.returncode != 0 and "--rebuild" in info.stderr:
            # Written by an older kb (format or tokenizer) or damaged: corpus/ holds all the demo
            # index had, uploads included, and cached vectors are reused.
            print(info.stderr.strip(), "-> rebuilding it from corpus/", flush=True)
            ingest.insert(2, "--rebuild")
    run(*ingest)
    os.execv(str(BIN / "streamlit"), [str(BIN / "streamlit"), "run", str(ROOT / "app.py"), *extra_args])


def ensure_browser() -> None:
    """Debian's Chromium and a CJK font for the browser test, installed with apt-get when missing."""
    if Path("/usr/bin/chromium").exists() and Path("/usr/share/fonts/truetype/wqy").exists():
        return
    if not shutil.which("apt-get") or os.geteuid() != 0:
        print("note: no chromium and no root apt-get here; the browser test will be skipped outside CI")
        return
    packages = ["chromium", "fonts-wqy-microhei"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *packages]
    if subprocess.run(install, env=env).returncode != 0:
        run("apt-get", "update", "-q")
        subprocess.run(install, env=env, check=True)


def test(extra_args: list[str]) -> None:
    # The app tests drive app.py, which needs streamlit and pandas; kb tune's tests train with torch (st).
    ensure_environment("test,app,st")
    ensure_browser()
    python = str(BIN / "python")
    # Lint and types first: they take seconds, the tests minutes. Their settings are in pyproject.toml.
    run(python, "-m", "ruff", "check", ".")
    run(python, "-m", "mypy")
    run(python, "-m", "pytest", *extra_args)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("app", "test"):
        sys.exit(__doc__)
    {"app": app, "test": test}[sys.argv[1]](sys.argv[2:])
