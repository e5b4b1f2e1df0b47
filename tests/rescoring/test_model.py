"""Pyramid-BERT path: our own layer arithmetic equals BertModel, core-set selection keeps
[CLS] and word order and drops padding first (tiny random models, CPU, seconds)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from lab.rescoring.model import EncoderConfig, Rescorer, _core_set  # noqa: E402

TINY = dict(vocab_size=50, hidden=16, layers=3, heads=2, ffn=32, max_length=12)


def _batch():
    ids = torch.tensor([[2, 7, 8, 9, 10, 3, 0, 0], [2, 11, 12, 3, 0, 0, 0, 0]])
    return ids, (ids != 0).long()


def test_own_layer_loop_equals_transformers_bert_model():
    torch.manual_seed(0)
    for keep in ((), (1.0, 1.0)):
        model = Rescorer.build(EncoderConfig(**TINY, keep=keep)).eval()
        ids, mask = _batch()
        with torch.no_grad():
            reference = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
            assert torch.allclose(model(ids, mask), model.head(reference).squeeze(-1), atol=1e-5)


def test_own_attention_mask_ignores_padding():
    torch.manual_seed(0)
    model = Rescorer.build(EncoderConfig(**TINY, keep=(1.0, 1.0))).eval()
    ids, mask = _batch()
    with torch.no_grad():
        padded = model(ids, mask)[1]
        alone = model(ids[1:, :4], mask[1:, :4])[0]
    assert torch.allclose(padded, alone, atol=1e-5)


def test_core_set_keeps_cls_first_in_order_and_skips_padding():
    torch.manual_seed(0)
    states = torch.randn(2, 8, 16)
    _, mask = _batch()
    idx = _core_set(states, mask, 4)
    assert idx.shape == (2, 4)
    assert (idx[:, 0] == 0).all()
    assert (idx[:, 1:] > idx[:, :-1]).all()  # word order kept
    assert all(mask[1, i] == 1 for i in idx[1].tolist())  # row 2 has exactly 4 real tokens
