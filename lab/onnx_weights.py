"""Float weights of the runtime's int8 ONNX models, for PyTorch (lab only).

The repository holds no float32 weights of the NLU student or the rescorer, only their
ONNX Runtime dynamic-quantization files (nlu/models/student/model.int8.onnx,
rescoring/models/rescorer/model.onnx). Both are quantizations of models whose PyTorch
definitions are in the lab (lab.nlu.modeling.JointModel, lab.rescoring.model.Rescorer), so
the weights are read back from the initializers: w = (w_int8 - zero_point) * scale, per
tensor or per output channel, exactly the values ONNX Runtime multiplies by. Used to run
them on CUDA (lab.bench.torch_stages) and to continue training the shipped student
(lab.nlu.from_onnx).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

QUANTIZED = "_quantized"
TRANSPOSED = "_Transposed"
_MODULE_PATH = re.compile(r"^/(.+)/MatMul")


def dequantized_weights(onnx_path: Path) -> dict[str, np.ndarray]:
    """Every weight of a dynamically quantized ONNX file as float32, named and laid out as
    the PyTorch module that was exported (Linear weights [out, in], embeddings [rows, dim]).

    Quantized MatMul weights are stored [in, out] under anonymous names ("onnx::MatMul_482");
    each is named after the bias its product is added to (MatMulInteger -> Cast -> Mul ->
    Add(<module>.bias)). Raises ValueError for a quantized tensor it cannot name.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    raw = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    weights: dict[str, np.ndarray] = {}
    for name, value in raw.items():
        if name.endswith(("_scale", "_zero_point")):
            continue
        if not name.endswith(QUANTIZED):
            weights[name] = value.astype(np.float32)
            continue
        base = name[: -len(QUANTIZED)]
        scale = raw[base + "_scale"].astype(np.float32)
        zero = raw[base + "_zero_point"].astype(np.float32)
        w = (value.astype(np.float32) - zero) * scale  # per-channel scales run along the last axis
        users = consumers.get(name, [])
        if users and users[0].op_type == "MatMulInteger":  # [in, out] -> Linear's [out, in]
            target = base[: -len(TRANSPOSED)] if base.endswith(TRANSPOSED) else None
            weights[target or _bias_weight_name(users[0], consumers, raw)] = w.T.copy()
        else:  # Gather: an embedding table, stored as it is
            weights[base] = w
    return weights


def _bias_weight_name(node, consumers: dict, raw: dict) -> str:
    """The weight name of a MatMulInteger: that of the bias its (scaled) product meets."""
    start = node
    for _ in range(4):  # MatMulInteger -> Cast -> Mul -> Add
        (node,) = consumers[node.output[0]]
        if node.op_type == "Add":
            bias = [name for name in node.input if name in raw and name.endswith(".bias")]
            if bias:
                return bias[0][: -len(".bias")] + ".weight"
    # equal biases (all zeros, say) are merged into one initializer by the exporter: then
    # the product's own name says its module ("/model/layers.0/q/MatMul_output_0")
    module = _MODULE_PATH.match(start.output[0])
    if module:
        return module.group(1).replace("/", ".") + ".weight"
    raise ValueError(f"cannot name the quantized weight of {start.name}")


def load_student(model_dir: Path):
    """lab.nlu.modeling.JointModel of a runtime student directory (config.json, labels.json,
    model.int8.onnx or model.onnx), float32, eval mode, on the CPU."""
    from lab.nlu.modeling import EncoderConfig, JointModel
    from nlu.schema import LabelSet

    config = EncoderConfig.from_dict(json.loads((model_dir / "config.json").read_text()))
    labels = LabelSet.from_json(json.loads((model_dir / "labels.json").read_text()))
    model = JointModel(config.with_labels(labels))
    onnx_file = model_dir / "model.onnx"
    if not onnx_file.exists():
        onnx_file = model_dir / "model.int8.onnx"
    state = {k.removeprefix("model."): v for k, v in dequantized_weights(onnx_file).items()}
    _load(model, state)
    return model.eval()


def load_rescorer(model_dir: Path):
    """lab.rescoring.model.Rescorer of a runtime rescorer directory (config.json's `encoder`
    sizes, model.onnx), float32, eval mode, on the CPU."""
    from lab.rescoring.model import EncoderConfig, Rescorer

    sizes = json.loads((model_dir / "config.json").read_text())["encoder"]
    model = Rescorer.build(EncoderConfig(**{**sizes, "keep": tuple(sizes.get("keep", ()))}))
    _load(model, dequantized_weights(model_dir / "model.onnx"))
    return model.eval()


def _load(model, state: dict[str, np.ndarray]) -> None:
    """Load every parameter from `state`; only non-persistent-like buffers (BERT's
    position_ids / token_type_ids) may be missing."""
    import torch

    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    buffers = {name for name, _ in model.named_buffers()}
    if unexpected or set(missing) - buffers:
        raise ValueError(f"weights do not fit: missing {missing}, unexpected {unexpected}")
