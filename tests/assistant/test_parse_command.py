"""`assistant parse`: DESIGN.md JSON shape, stdin mode, baseline fallback with a warning."""

from __future__ import annotations

import io
import json

import pytest

from assistant.cli import main
from nlu.runtime import DEFAULT_DIR

needs_student = pytest.mark.skipif(
    not (DEFAULT_DIR / "model.int8.onnx").exists(), reason="no student in nlu/models/student"
)


@needs_student
def test_parse_json_args(capsys):
    assert (
        main(
            [
                "parse",
                "--json",
                "cuántos pañales huggies talla cuatro tenemos",
                "where are the tide pods",
            ]
        )
        == 0
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2
    first = lines[0]
    assert set(first) == {"text", "language", "intent", "entities"}
    assert set(first["intent"]) == {"name", "score"}
    assert first["intent"]["name"] == "check_stock"
    for e in first["entities"]:
        assert set(e) == {"label", "text", "start", "end", "score"}
        assert first["text"][e["start"] : e["end"]] == e["text"]
    assert {e["label"] for e in first["entities"]} >= {"BRAND", "PRODUCT", "SIZE"}


@needs_student
def test_parse_stdin(monkeypatch, capsys):
    monkeypatch.setattr(
        "sys.stdin", io.StringIO("where can I find tide pods\n\n¿dónde está la leche?\n")
    )
    assert main(["parse", "--json"]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [o["text"] for o in out] == ["where can I find tide pods", "¿dónde está la leche?"]


def test_parse_falls_back_to_baseline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RETAIL_ASSISTANT_NLU_MODEL", str(tmp_path))
    assert main(["parse", "--json", "where can I find Tide Pods"]) == 0
    captured = capsys.readouterr()
    assert "warning" in captured.err and "baseline" in captured.err
    assert json.loads(captured.out)["text"] == "where can I find Tide Pods"


def test_parse_bad_model_dir_is_a_user_error(tmp_path, capsys):
    assert main(["parse", "--model", str(tmp_path), "hello"]) == 2
    assert "error" in capsys.readouterr().err
