"""Continuing the shipped student (issue 16): its int8 ONNX read back as a trainable model,
catalog names as written with their spans, and a training run that needs no teacher."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from lab.nlu.augment import catalog_name, with_catalog_name, written_rows  # noqa: E402
from lab.nlu.modeling import EncoderConfig, JointModel  # noqa: E402
from lab.nlu.student import init_random  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fixtures.jsonl"
TOKENIZER = Path(__file__).resolve().parents[2] / "nlu" / "models" / "student" / "tokenizer.json"


def _product(**kw):
    base = {"sku": "1", "brand": "", "name_en": "", "name_es": "", "color": "", "color_es": ""}
    return SimpleNamespace(**(base | kw))


def test_int8_runtime_student_reads_back_as_its_weights(tmp_path):
    from lab.nlu.export import write_model_dir
    from lab.nlu.from_onnx import write_trainable

    model = init_random(EncoderConfig(vocab_size=300, hidden=64, layers=2, heads=4, ffn=128))
    with torch.no_grad():  # no two parameters alike (the exporter merges equal initializers)
        for w in model.parameters():
            w.add_(0.02 * torch.randn_like(w))
    model.save(tmp_path / "trained", extra={"layer_map": [6, 12]})
    runtime = write_model_dir(tmp_path / "trained", tmp_path / "runtime", False, TOKENIZER)
    back = JointModel.load(write_trainable(runtime, tmp_path / "back"))
    assert json.loads((tmp_path / "back" / "config.json").read_text())["layer_map"] == [6, 12]
    before, after = model.state_dict(), back.state_dict()
    assert set(before) == set(after)
    for name, w in before.items():
        # int8 per output channel (embeddings per tensor): within half a step of the grid
        step = w.abs().max() / 127 if w.dim() < 2 or "word" in name or "pos" in name else None
        step = step if step is not None else (w.abs().amax(dim=1, keepdim=True) / 127)
        assert torch.all((after[name] - w).abs() <= step * 0.51 + 1e-6), name


def test_catalog_names_as_written_carry_their_spans():
    socks = _product(
        brand="Gildan",
        name_en="Gildan Socks, Gray, Medium",
        name_es="Calcetines Gildan, color gris, Mediana",
        color="Gray",
        color_es="gris",
    )
    name, spans = catalog_name(socks, "en")
    assert [(e["label"], e["text"]) for e in spans] == [
        ("BRAND", "Gildan"), ("PRODUCT", "Socks"), ("COLOR", "Gray"), ("SIZE", "Medium"),
    ]  # fmt: skip
    name, spans = catalog_name(socks, "es")
    assert [(e["label"], e["text"]) for e in spans] == [
        ("PRODUCT", "Calcetines"), ("BRAND", "Gildan"), ("COLOR", "gris"), ("SIZE", "Mediana"),
    ]  # fmt: skip
    assert all(name[e["start"] : e["end"]] == e["text"] for e in spans)
    text = "do we have gildan socks in store 12"
    row = {
        "text": text, "language": "en", "intent": "check_stock", "skus": ["1"],
        "entities": [
            {"label": "BRAND", "start": 11, "end": 17, "text": "gildan"},
            {"label": "PRODUCT", "start": 18, "end": 23, "text": "socks"},
            {"label": "STORE", "start": 27, "end": 35, "text": "store 12"},
        ],
    }  # fmt: skip
    written = with_catalog_name(row, socks)
    assert written["text"] == "do we have Gildan Socks, Gray, Medium in store 12"
    for e in written["entities"]:
        assert written["text"][e["start"] : e["end"]] == e["text"]
    assert [e["label"] for e in written["entities"]][-1] == "STORE"
    assert written_rows([row], {"1": socks}, 5) == [written]


def test_saved_student_continues_without_a_teacher(tmp_path):
    from lab.nlu import train
    from lab.nlu.vocab import prune, save

    rows = [json.loads(line) for line in FIXTURES.read_text(encoding="utf-8").splitlines()][:16]
    rows[0] = rows[0] | {"skus": ["1"]}  # "Where can I find Tide Pods?"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split in ("train", "test"):
        (corpus / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    catalog = tmp_path / "catalog.jsonl"
    tide = {"sku": "1", "brand": "Tide", "name_en": "Tide Pods, 81 ct", "name_es": "Cápsulas Tide Pods, 81 piezas", "product_en": "pods", "product_es": "cápsulas"}  # fmt: skip
    catalog.write_text(json.dumps(tide) + "\n")
    heard = tmp_path / "heard.jsonl"
    heard.write_text(json.dumps(rows[1] | {"text": rows[1]["text"], "noisy": True}) + "\n")
    student_dir = tmp_path / "student"
    spec, old_ids = prune([r["text"] for r in rows], generic=200)
    save(spec, student_dir)
    init_random(EncoderConfig(vocab_size=len(old_ids), hidden=32, layers=1, heads=2, ffn=64)).save(
        student_dir, extra={"layer_map": [2]}
    )
    cfg = train.TrainConfig(
        corpus=str(corpus), init=str(student_dir), init_student=str(student_dir),
        out=str(tmp_path / "run"), stages=["aug"], aug_rows=4, written_rows=1,
        extra_rows=[str(heard)], catalog=str(catalog), batch_size=5, eval_sets=["test"],
        device="cpu",
    )  # fmt: skip
    assert not train.needs_teacher(cfg)
    m = train.run(cfg)
    assert "teacher" not in m["runs"]
    # 4 augmented + 4 labelled + 1 written + 1 heard rows at batch 5
    assert m["steps"]["student-aug"]["steps"] == 2
    assert JointModel.load(tmp_path / "run" / "student").config.layers == 1
