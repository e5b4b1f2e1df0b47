"""The import rules of ARCHITECTURE.md, checked on every import statement (function-local ones
included) of the runtime packages, so that what the server runs cannot come to depend on the lab.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# package -> the project packages (or single modules) its code may import, besides itself.
ALLOWED: dict[str, tuple[str, ...]] = {
    "textnorm": (),
    "asr": ("textnorm",),
    "nlu": ("textnorm",),
    "rescoring": ("textnorm", "asr.nbest", "nlu.onnx"),
    "assistant": ("textnorm", "asr", "nlu", "rescoring"),
}
PROJECT = {*ALLOWED, "lab", "tests", "scripts"}


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every absolute import of a project package in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.split(".")[0] in PROJECT]
    return found


def allowed(package: str, module: str) -> bool:
    if module.split(".")[0] == package:
        return True
    return any(module == rule or module.startswith(rule + ".") for rule in ALLOWED[package])


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_runtime_packages_import_only_what_their_rules_allow(package):
    broken = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in sorted((REPO / package).rglob("*.py"))
        for line, module in project_imports(path)
        if not allowed(package, module)
    ]
    assert not broken, "\n".join(broken)


def test_the_runtime_holds_no_training_or_benchmark_code():
    """Trainers, corpus generators, TTS and benchmarks live in lab/, which is not installed."""
    lab_words = ("train", "corpus", "synth", "bench", "evaluate", "export", "distill")
    misplaced = [
        str(path.relative_to(REPO))
        for package in ALLOWED
        for path in (REPO / package).rglob("*.py")
        if any(word in path.stem for word in lab_words)
    ]
    assert not misplaced, misplaced
