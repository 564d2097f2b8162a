"""What `pip install .` installs: every module of kb (its subpackages included), one version, no tests."""
import subprocess
import sys
import zipfile

from kb import __version__
from tests.conftest import ROOT


def test_the_wheel_holds_every_kb_module_and_the_one_version(tmp_path):
    # An editable install maps the source folder and would hide a subpackage the build leaves out.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("kb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "kb").rglob("*.py")}
    assert "kb/embed/__init__.py" in modules
    assert modules <= names, sorted(modules - names)
    assert not any(name.startswith(("tests/", "bench/")) for name in names)
    assert wheel.name.startswith(f"kb-{__version__}-")
    metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
    assert f"\nVersion: {__version__}\n" in zipfile.ZipFile(wheel).read(metadata).decode()
