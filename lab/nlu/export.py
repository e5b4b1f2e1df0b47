"""Export a trained JointModel directory to the runtime's ONNX model directory.

    python -m lab.nlu.export --model build/nlu/run/student --out nlu/models/student [--int8-only]

Writes model.onnx (float32) and/or model.int8.onnx (dynamic post-training quantization:
int8 weights of every MatMul/Gather, activations quantized on the fly), tokenizer.json,
labels.json and config.json. card.json is written by `lab.nlu.evaluate` (it needs the metrics).
Graph inputs: input_ids, attention_mask int64 [batch, tokens]; outputs: intent [batch, 5],
language [batch, 2], tags [batch, tokens, 17] (logits).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import torch

from lab.nlu.modeling import JointModel
from nlu.decode import LANGUAGES

log = logging.getLogger(__name__)
INPUTS = ("input_ids", "attention_mask")
OUTPUTS = ("intent", "language", "tags")


class _Wrapper(torch.nn.Module):
    """Tuple outputs for the exporter."""

    def __init__(self, model: JointModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        o = self.model(input_ids, attention_mask)
        return o["intent"], o["language"], o["tags"]


def export_onnx(model: JointModel, path: str | Path, opset: int = 17) -> Path:
    """Float32 ONNX with dynamic batch and sequence axes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 5, 2, 1, 1]], dtype=torch.long)  # any valid ids
    mask = (ids != 1).long()
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    axes |= {"intent": {0: "batch"}, "language": {0: "batch"}, "tags": {0: "batch", 1: "tokens"}}
    with torch.no_grad():
        torch.onnx.export(
            _Wrapper(model).eval(),  # the exporter restores the wrapper's mode afterwards
            (ids, mask),
            str(path),
            input_names=list(INPUTS),
            output_names=list(OUTPUTS),
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    return path


def quantize_int8(src: str | Path, dst: str | Path) -> Path:
    """Dynamic (post-training) int8 quantization with ONNX Runtime; per-channel weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Gather"],
    )
    return Path(dst)


def write_model_dir(
    model_dir: str | Path,
    out: str | Path,
    keep_fp32: bool = True,
    tokenizer: str | Path | None = None,
) -> Path:
    """model dir (config.json, model.safetensors, tokenizer.json) -> runtime dir. `tokenizer`:
    tokenizer.json to use when the model dir has none (a stage checkpoint of lab.nlu.train)."""
    model_dir, out = Path(model_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = JointModel.load(model_dir)
    fp32 = export_onnx(model, out / "model.onnx")
    quantize_int8(fp32, out / "model.int8.onnx")
    if not keep_fp32:
        fp32.unlink()
    shutil.copy(tokenizer or model_dir / "tokenizer.json", out / "tokenizer.json")
    labels = model.config.labels.to_json() | {"languages": list(LANGUAGES)}
    (out / "labels.json").write_text(json.dumps(labels, indent=1))
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg |= {"params": model.n_params(), "inputs": list(INPUTS), "outputs": list(OUTPUTS)}
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    log.info("exported %s -> %s", model_dir, out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lab.nlu.export", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--model", required=True, help="trained model directory (lab.nlu.train)")
    ap.add_argument("--out", required=True, help="runtime model directory to write")
    ap.add_argument("--int8-only", action="store_true", help="drop the float32 ONNX file")
    ap.add_argument("--tokenizer", help="tokenizer.json (default: the model dir's)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    write_model_dir(args.model, args.out, keep_fp32=not args.int8_only, tokenizer=args.tokenizer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
