"""`pip install .` (not editable) must carry what the runtime reads from its own folders: the
curated catalog lists, the committed NLU student and rescorer, Whisper's adapters, the demo page,
and no lab code. Built from a copy of the packages (setuptools writes build/ next to its
source), without build isolation or dependencies: a few seconds, no network."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("assistant", "asr", "nlu", "rescoring", "textnorm")


def _can_build_wheels() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    # setuptools >= 70.1 builds wheels itself; older ones need the wheel package
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    if not _can_build_wheels():
        pytest.skip("setuptools >= 70.1 (or wheel) is needed to build the wheel offline")
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(REPO / package, src / package, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = out.glob("retail_assistant-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_holds_the_runtime_data(wheel):
    from assistant.inventory.catalog import DATA_DIR

    names = set(wheel.namelist())
    catalog = {f"assistant/inventory/data/{p.name}" for p in DATA_DIR.glob("*.json")}
    assert len(catalog) == 6 and catalog <= names
    needed = {
        "nlu/models/student/model.int8.onnx",
        "nlu/models/student/tokenizer.json",
        "nlu/models/student/labels.json",
        "rescoring/models/rescorer/model.onnx",
        "rescoring/models/rescorer/config.json",
        "asr/data/bias_terms.txt",
        "assistant/web/index.html",
        "assistant/web/app.js",
        "assistant/cli.py",
        # domain packs: loaded by name from the installed package (assistant.domain)
        "assistant/domains/retail/pack.yaml",
        "assistant/domains/retail/templates.yaml",
        "assistant/domains/coffee/pack.yaml",
        "assistant/domains/coffee/grammar.yaml",
        "assistant/domains/coffee/student/model.int8.onnx",
        "assistant/domains/coffee/student/labels.json",
    }
    assert needed <= names, sorted(needed - names)


def test_wheel_holds_no_lab_or_tests(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    extra = {t for t in tops - set(PACKAGES) if not t.endswith(".dist-info")}
    assert not extra, f"the wheel installs more than the runtime packages: {sorted(extra)}"


def test_catalog_is_read_from_the_package_not_the_checkout():
    import assistant.inventory.catalog as catalog

    assert Path(catalog.__file__).resolve().parent / "data" == catalog.DATA_DIR
    assert (catalog.DATA_DIR / "brands.json").is_file()
