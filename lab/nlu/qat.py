"""Quantization-aware training: the student learns through the int8 rounding it is served with.

`lab.nlu.export.quantize_int8` is ONNX Runtime's dynamic quantization: every MatMul weight is
int8, symmetric, one scale per output channel (max |w| / 127), the word-embedding table
(Gather) likewise per row, and every MatMul input is quantized at run time to uint8 with one
scale and zero point per tensor from its min and max. `FakeQuant` puts the same roundings into
every nn.Linear of the PyTorch student (weights through a parametrization, inputs through a
forward pre-hook), with straight-through gradients, so training sees the error quantization
will add. The embedding table is left out: a lookup's rounding error does not compound the
way a matrix product's does. `bake` leaves the weights on their int8 grid, which ONNX
Runtime's quantizer then reproduces.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


def fake_int8_per_row(w: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 per row (dim 0) of a 2-D weight; straight-through gradient."""
    scale = (w.detach().abs().amax(dim=1) / 127.0).clamp(min=1e-8)
    zero = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)


def fake_uint8_per_tensor(x: torch.Tensor) -> torch.Tensor:
    """Asymmetric uint8 over the whole tensor, range widened to hold 0 (ONNX
    DynamicQuantizeLinear); straight-through gradient."""
    lo = x.detach().min().clamp(max=0.0)
    hi = x.detach().max().clamp(min=0.0)
    scale = ((hi - lo) / 255.0).clamp(min=1e-8).float().reshape(1)
    zero = torch.round(-lo / scale).clamp(0, 255).to(torch.int32).reshape(1)
    return torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 255)


class _Int8Weight(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return fake_int8_per_row(w)


class FakeQuant:
    """Attach int8 fake quantization to every nn.Linear of `model` (until `bake`)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.modules = [m for m in model.modules() if isinstance(m, nn.Linear)]
        self.hooks = [
            m.register_forward_pre_hook(lambda _m, args: (fake_uint8_per_tensor(args[0]),))
            for m in self.modules
        ]
        for m in self.modules:
            parametrize.register_parametrization(m, "weight", _Int8Weight())

    def bake(self) -> nn.Module:
        """Remove the hooks and leave every weight on its int8 grid (float32 values)."""
        for h in self.hooks:
            h.remove()
        for m in self.modules:
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
        return self.model
