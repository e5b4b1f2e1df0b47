"""The ONNX reranker: one batched call per list, scores filled, list re-sorted, None when absent."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asr.nbest import Hypothesis, NBest
from rescoring import runtime
from rescoring.runtime import DEFAULT_MODEL_DIR, Reranker, load_default_reranker


def _nbest(texts_scores):
    return NBest(
        hypotheses=tuple(Hypothesis(text=t, asr_score=s, score=s) for t, s in texts_scores),
        language="en",
    )


def _length_model(tmp_path):
    """A stand-in rescorer whose score is the number of real tokens (built with onnx, no torch)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    from tokenizers import Tokenizer, models, pre_tokenizers

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", ["m", "axes"], ["score"], keepdims=0),
        ],
        "length",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "t"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "t"]),
        ],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["b"])],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "model.onnx"))
    vocab = {"[PAD]": 0, "[UNK]": 1, "a": 2, "b": 3}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "config.json").write_text(json.dumps({"lambda": 0.5, "max_length": 8}))
    return tmp_path


def test_rank_fills_scores_and_resorts(tmp_path):
    reranker = Reranker(_length_model(tmp_path))
    ranked = reranker.rank(_nbest([("a", -0.1), ("a b b", -0.5), ("b b", -0.3)]))
    assert [h.text for h in ranked.hypotheses] == ["a b b", "b b", "a"]
    assert [h.rescore_score for h in ranked.hypotheses] == [3.0, 2.0, 1.0]
    assert ranked.hypotheses[0].score == pytest.approx(-0.5 + 0.5 * 3.0)
    assert ranked.first_pass_best.text == "a"
    assert reranker.rank(_nbest([])).hypotheses == ()


def test_load_default_reranker_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv(runtime.ENV_VAR, "none")
    assert load_default_reranker() is None
    monkeypatch.setenv(runtime.ENV_VAR, str(tmp_path / "missing"))
    assert load_default_reranker() is None
    monkeypatch.setenv(runtime.ENV_VAR, str(_length_model(tmp_path)))
    assert isinstance(load_default_reranker(), Reranker)


@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "model.onnx").is_file(), reason="no committed model")
def test_committed_model_scores_a_list(monkeypatch):
    monkeypatch.delenv(runtime.ENV_VAR, raising=False)
    reranker = load_default_reranker()
    assert reranker is not None
    scores = reranker.score_texts(["where can I find the tide pods", "dónde están los pañales"])
    assert scores.shape == (2,) and np.all(np.isfinite(scores))
    nbest = _nbest(
        [("Where can I find the tied pods?", -0.30), ("Where can I find the tide pods?", -0.32)]
    )
    ranked = reranker.rank(nbest)
    assert len(ranked.hypotheses) == 2
    assert all(h.rescore_score is not None for h in ranked.hypotheses)


def test_rank_applies_word_and_catalog_bonuses(tmp_path):
    from nlu.gazetteer import Gazetteer

    model = _length_model(tmp_path)
    config = {"lambda": 0.0, "word_bonus": -0.1, "catalog_bonus": 0.5, "max_length": 8}
    (model / "config.json").write_text(json.dumps(config))
    gazetteer = Gazetteer.from_lists(products=["tide pods"])
    nbest = _nbest([("the tied pods", -0.30), ("the tide pods", -0.32), ("the the tide", -0.31)])

    ranked = Reranker(model, gazetteer=gazetteer).rank(nbest)
    # -0.32 - 3 * 0.1 + 2 * 0.5 beats -0.30 - 0.3: the catalog reading wins.
    assert ranked.text == "the tide pods"
    assert ranked.hypotheses[0].score == pytest.approx(-0.32 - 0.3 + 1.0)

    # Without a gazetteer the catalog bonus is off (a warning, not an error).
    plain = Reranker(model).rank(nbest)
    assert plain.text == "the tied pods"
    assert plain.hypotheses[0].score == pytest.approx(-0.30 - 0.3)
