"""ONNX student: PyTorch/ONNX parity (tiny random model), the committed student's offsets,
batching, and the parser loader."""

from __future__ import annotations

import numpy as np
import pytest

from nlu.runtime import DEFAULT_DIR, OnnxParser, load_default_parser
from nlu.schema import Parser

HAS_STUDENT = (DEFAULT_DIR / "model.int8.onnx").exists()
needs_student = pytest.mark.skipif(not HAS_STUDENT, reason="no student in nlu/models/student")


def test_torch_onnx_parity(tmp_path):
    torch = pytest.importorskip("torch")
    from lab.nlu.export import export_onnx, quantize_int8
    from lab.nlu.modeling import EncoderConfig
    from lab.nlu.student import init_random

    model = init_random(EncoderConfig(vocab_size=300, hidden=64, layers=2, heads=4, ffn=128)).eval()
    path = export_onnx(model, tmp_path / "m.onnx")
    ids = torch.tensor([[0, 5, 17, 250, 2, 1, 1], [0, 9, 8, 7, 6, 5, 2]])
    mask = (ids != 1).long()
    with torch.no_grad():
        ref = model(ids, mask)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    intent, language, tags = sess.run(
        None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    )
    np.testing.assert_allclose(intent, ref["intent"].numpy(), atol=1e-4)
    np.testing.assert_allclose(language, ref["language"].numpy(), atol=1e-4)
    valid = mask.numpy().astype(bool)
    np.testing.assert_allclose(tags[valid], ref["tags"].numpy()[valid], atol=1e-4)
    q = quantize_int8(path, tmp_path / "m.int8.onnx")
    assert q.stat().st_size < path.stat().st_size
    out = ort.InferenceSession(str(q), providers=["CPUExecutionProvider"]).run(
        None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    )
    assert np.isfinite(out[2]).all() and out[2].shape == tags.shape


@needs_student
def test_done_when_query():
    parser = OnnxParser(DEFAULT_DIR)
    assert isinstance(parser, Parser)
    r = parser.parse("cuántos pañales huggies talla cuatro tenemos")
    assert r.intent == "check_stock" and r.language == "es"
    spans = {(e.label, e.start, e.end) for e in r.entities}
    assert {("PRODUCT", 8, 15), ("BRAND", 16, 23), ("SIZE", 24, 36)} <= spans


@needs_student
def test_offsets_exact_on_case_punctuation_accents():
    parser = OnnxParser(DEFAULT_DIR)
    texts = [
        "¿Dónde está la LECHE Lala, de un litro?",
        "Where can I find TIDE Pods?!",
        "how many Huggies diapers, size four, do we have",
        "  ¿Hay pañales Huggies talla 4 en la tienda 52?  ",
    ]
    found = 0
    for text, r in zip(texts, parser.parse_batch(texts), strict=True):
        for e in r.entities:
            found += 1
            assert text[e.start : e.end] == e.text
            assert e.text == e.text.strip(" ,.?!¿¡")
    assert found >= 6


@needs_student
def test_batch_equals_single():
    parser = OnnxParser(DEFAULT_DIR)
    texts = ["where are the tide pods", "¿quién trabaja en jardinería hoy?", "what's the weather"]
    batch = parser.parse_batch(texts, ["en", "es", None])
    single = [parser.parse(t, lang) for t, lang in zip(texts, ["en", "es", None], strict=True)]
    for a, b in zip(batch, single, strict=True):
        assert a.intent == b.intent and a.language == b.language
        assert [(e.label, e.start, e.end) for e in a.entities] == [
            (e.label, e.start, e.end) for e in b.entities
        ]
        assert abs(a.intent_score - b.intent_score) < 1e-3
    assert batch[1].language == "es"


def test_load_default_parser_none_without_model(tmp_path, monkeypatch):
    monkeypatch.setenv("RETAIL_ASSISTANT_NLU_MODEL", str(tmp_path))
    assert load_default_parser() is None


@needs_student
def test_runtime_never_imports_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from nlu.runtime import load_default_parser\n"
        "load_default_parser().parse('where are the tide pods')\n"
        "assert 'torch' not in sys.modules, 'runtime imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
