"""The whole training recipe on a toy corpus (seconds): teacher MLM -> PLL -> stage 1 + MWER
student -> int8 ONNX export with lambda tuned on dev -> the runtime Reranker loads and ranks."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime.quantization")

from asr.nbest import Hypothesis, NBest  # noqa: E402
from lab.rescoring import data, train  # noqa: E402
from rescoring.runtime import Reranker  # noqa: E402

SENTENCES = [
    "where are the tide pods",
    "do you have huggies diapers size four",
    "donde estan los panales huggies",
    "tienen detergente tide",
    "where can i find colgate toothpaste",
    "busco pasta de dientes colgate",
]


def _lists(split: str) -> list[dict]:
    rows = []
    for i, ref in enumerate(SENTENCES):
        wrong = (
            ref.replace("tide", "tied").replace("huggies", "hug is").replace("colgate", "cold gate")
        )
        rows.append(
            {
                "id": f"{split}-{i}",
                "reference": ref,
                "language": "es" if " los " in ref or ref.startswith(("tienen", "busco")) else "en",
                "voice": "pico-en-US",
                "hypotheses": [
                    {"text": wrong, "asr_score": -0.1},
                    {"text": ref, "asr_score": -0.2},
                ],
            }
        )
    return rows


def test_recipe_end_to_end(tmp_path, monkeypatch):
    corpus, work = tmp_path / "corpus", tmp_path / "work"
    corpus.mkdir()
    (corpus / "train.jsonl").write_text(
        "".join(json.dumps({"text": t, "language": "en"}) + "\n" for t in SENTENCES * 3)
    )
    for split in ("train", "dev", "test"):
        path = work / "nbest" / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in _lists(split)))
    monkeypatch.setattr(train, "WORK", work)
    monkeypatch.setattr(train, "CORPUS", corpus)
    monkeypatch.setattr(data, "NBEST_DIR", work / "nbest")

    train.main(["teacher", "--vocab", "120", "--layers", "2", "--epochs", "1", "--batch", "8"])
    train.main(["pll", "--splits", "train,dev"])
    assert len(json.loads((work / "pll" / "train.json").read_text())) == len(SENTENCES)
    train.main(
        ["student", "--name", "s", "--layers", "1", "--stage1-epochs", "1"]
        + ["--stage2", "mwer", "--stage2-epochs", "1", "--lists", "4", "--word-bonus", "-0.1"]
    )
    out = tmp_path / "model"
    train.main(["export", "--name", "s", "--out", str(out)])
    config = json.loads((out / "config.json").read_text())
    assert config["lambda"] >= 0.0 and config["max_length"] == 32

    reranker = Reranker(out)
    nbest = NBest(
        hypotheses=(
            Hypothesis(text="where are the tied pods", asr_score=-0.1, score=-0.1),
            Hypothesis(text="where are the tide pods", asr_score=-0.2, score=-0.2),
        ),
        language="en",
    )
    ranked = reranker.rank(nbest)
    assert {h.text for h in ranked.hypotheses} == {h.text for h in nbest.hypotheses}
    assert all(h.rescore_score is not None for h in ranked.hypotheses)
    assert ranked.first_pass_best.text == "where are the tied pods"


def test_stage2_prior_adds_the_counts_to_asr_scores():
    from nbest_examples import nbest_example

    e = nbest_example([-0.5, -0.7], [1, 0])  # texts "0" and "1": one word each
    assert train.first_pass_prior([e], 0.0, 0.0)[e.id] is e.asr
    np.testing.assert_allclose(train.first_pass_prior([e], -0.1, 0.0)[e.id], [-0.6, -0.8])
