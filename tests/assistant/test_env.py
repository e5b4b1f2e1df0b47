"""Every environment variable the runtime reads is in assistant.env's table, read in one place."""

from __future__ import annotations

import ast
from pathlib import Path

from assistant.env import VARIABLES

REPO = Path(__file__).resolve().parents[2]
RUNTIME = ("asr", "nlu", "rescoring", "assistant", "textnorm")


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "string" assignments (ENV_VAR = "RETAIL_ASSISTANT_RESCORER")."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
    return found


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def environment_reads() -> list[tuple[str, str]]:
    """(module, variable) for every os.environ[...] / os.environ.get(...) / os.getenv(...)."""
    reads = []
    for package in RUNTIME:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = _constants(tree)
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            for node in ast.walk(tree):
                key = None
                if isinstance(node, ast.Call) and node.args:
                    func = node.func
                    if isinstance(func, ast.Attribute) and (
                        (func.attr in ("get", "pop", "setdefault") and _is_environ(func.value))
                        or func.attr == "getenv"
                    ):
                        key = node.args[0]
                elif isinstance(node, ast.Subscript) and _is_environ(node.value):
                    key = node.slice
                if key is None:
                    continue
                if isinstance(key, ast.Name):
                    variable = names.get(key.id, f"<{key.id}>")
                elif isinstance(key, ast.Constant):
                    variable = key.value
                else:
                    variable = ast.unparse(key)
                reads.append((module, variable))
    return reads


def test_every_variable_is_in_the_table_and_read_by_its_module():
    reads = environment_reads()
    assert reads, "the scan found no reads at all: it is broken"
    wrong = [(m, v) for m, v in reads if VARIABLES.get(v) != m]
    assert not wrong, f"not in assistant.env.VARIABLES, or read outside its module: {wrong}"
    assert {v for _, v in reads} == set(VARIABLES), "a variable in the table nobody reads"


def test_home_is_read_once(monkeypatch, tmp_path):
    from asr.models import cache_home
    from assistant import env

    monkeypatch.setenv("RETAIL_ASSISTANT_HOME", str(tmp_path))
    monkeypatch.delenv("RETAIL_ASSISTANT_DB", raising=False)
    assert env.home() == cache_home() == tmp_path
    assert env.database_url() == f"sqlite:///{tmp_path / 'inventory.sqlite'}"
