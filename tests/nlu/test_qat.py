"""Quantization-aware training (lab.nlu.qat): int8 grids, straight-through gradients, baking."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lab.nlu.modeling import EncoderConfig, JointModel  # noqa: E402
from lab.nlu.qat import FakeQuant, fake_int8_per_row, fake_uint8_per_tensor  # noqa: E402


def test_weights_land_on_a_symmetric_int8_grid_per_row():
    w = torch.randn(6, 40)
    q = fake_int8_per_row(w)
    scale = w.abs().amax(dim=1, keepdim=True) / 127
    steps = q / scale
    assert torch.allclose(steps, steps.round(), atol=1e-4)
    assert (steps.abs() <= 127 + 1e-4).all()
    assert (q - w).abs().max() <= scale.max() / 2 + 1e-6


def test_inputs_use_256_levels_and_keep_zero_exact():
    x = torch.linspace(-1.0, 3.0, 1000)
    q = fake_uint8_per_tensor(x)
    assert len(torch.unique(q)) <= 256
    assert fake_uint8_per_tensor(torch.zeros(3)).eq(0).all()
    assert q[x.abs() < 1e-9].eq(0).all()


def test_fake_quant_trains_straight_through_and_bakes_to_plain_weights():
    torch.manual_seed(0)
    model = JointModel(EncoderConfig(vocab_size=50, hidden=32, layers=1, heads=4, ffn=64)).eval()
    ids = torch.randint(2, 50, (3, 7))
    mask = torch.ones_like(ids)
    before = model(ids, mask)["tags"].detach()
    fq = FakeQuant(model)
    out = model(ids, mask)["tags"]
    assert not torch.equal(out, before) and torch.allclose(out, before, atol=0.2)
    out.sum().backward()
    lin = model.layers[0].q
    assert lin.parametrizations.weight.original.grad.abs().sum() > 0
    fq.bake()
    assert set(model.state_dict()) == set(
        JointModel(EncoderConfig(vocab_size=50, hidden=32, layers=1, heads=4, ffn=64)).state_dict()
    )
    w = model.layers[0].fi.weight
    steps = w / (w.abs().amax(dim=1, keepdim=True) / 127)
    assert torch.allclose(steps, steps.round(), atol=1e-3)
