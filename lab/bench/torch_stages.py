"""The second pass and the NLU student in PyTorch (CUDA where the ONNX Runtime is CPU-only).

The runtime runs both models in ONNX Runtime; the GPU machines carry the CPU build of it,
and the repository holds no float32 weights of either model, only the int8 ONNX files
(rescoring/models/rescorer/model.onnx, nlu/models/student/model.int8.onnx). Both graphs
are ONNX Runtime's dynamic quantization of a model whose PyTorch definition is in the lab
(lab.rescoring.model.Rescorer, lab.nlu.modeling.JointModel), so the weights are read back
from the ONNX initializers: w = (w_int8 - zero_point) * scale, per tensor or per output
channel, exactly the values ONNX Runtime multiplies by. What differs is the arithmetic:
ONNX Runtime also quantizes each activation to uint8 on the fly, PyTorch here does not, so
scores differ by that rounding (`parity` measures it on real queries).

`to_torch(pipeline, device)` swaps each model's `session` for a `TorchSession` (the same
`run(output_names, feed)` call), so tokenization, decoding, the score combination and every
holder of the parser (answerer, linker) stay the runtime's own code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lab.onnx_weights import load_rescorer, load_student

log = logging.getLogger(__name__)


class TorchSession:
    """An onnxruntime.InferenceSession look-alike over a PyTorch model: `run(output_names,
    feed) -> [np.ndarray]`, feed = {"input_ids", "attention_mask"} int64 [B, T].

    forward(ids, mask) -> {output name: tensor}; outputs come back as float32 numpy arrays
    in the order asked (all of `output_names` when None), as ONNX Runtime returns them.
    """

    def __init__(
        self,
        model,
        forward: Callable,
        output_names: Sequence[str],
        device: str,
        dtype: str = "float32",
    ) -> None:
        import torch

        self.device, self.dtype = torch.device(device), getattr(torch, dtype)
        self.model = model.to(self.device, self.dtype).eval()
        self.forward, self.output_names = forward, tuple(output_names)

    def run(self, output_names, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        ids = torch.from_numpy(feed["input_ids"]).to(self.device)
        mask = torch.from_numpy(feed["attention_mask"]).to(self.device)
        with torch.inference_mode():
            out = self.forward(self.model, ids, mask)
        return [out[name].float().cpu().numpy() for name in output_names or self.output_names]

    def describe(self) -> dict[str, str]:
        return {"runtime": "torch", "device": str(self.device), "dtype": str(self.dtype)[6:]}


def student_session(model_dir: Path, device: str, dtype: str = "float32") -> TorchSession:
    """The student's forward pass: outputs intent [B, n_intents], language [B, 2], tags
    [B, T, n_tags] (logits), as the ONNX graph's."""
    return TorchSession(
        load_student(model_dir),
        lambda model, ids, mask: model(ids, mask),
        ("intent", "language", "tags"),
        device,
        dtype,
    )


def rescorer_session(model_dir: Path, device: str, dtype: str = "float32") -> TorchSession:
    """The rescorer's forward pass: output score [B]."""
    return TorchSession(
        load_rescorer(model_dir),
        lambda model, ids, mask: {"score": model(ids, mask)},
        ("score",),
        device,
        dtype,
    )


def onnx_parser(parser):
    """The nlu.runtime.OnnxParser behind a pipeline's parser (a pack's SlotFiller wraps one),
    or None for a parser without a model (the gazetteer baseline)."""
    from nlu.runtime import OnnxParser

    parser = getattr(parser, "parser", parser)
    return parser if isinstance(parser, OnnxParser) else None


def onnx_placement(session) -> dict[str, str]:
    """Where an ONNX Runtime session runs: {"runtime", "device" (its first provider)}."""
    providers = session.get_providers()
    device = "cuda" if providers and providers[0].startswith("CUDA") else "cpu"
    return {"runtime": "onnxruntime", "device": device, "providers": ",".join(providers)}


def to_torch(
    pipeline, device: str, texts: Sequence[str], dtype: str = "float32"
) -> tuple[dict, Callable[[], None]]:
    """Run the pipeline's rescorer and student in PyTorch on `device` from now on (their ONNX
    sessions replaced in place). -> ({"rescore": ..., "nlu": ...}: where each runs now, the
    weights' source and the parity with the ONNX session on `texts`; a function that puts
    the ONNX sessions back)."""
    stages: dict[str, dict] = {}
    undo: list[tuple[object, object]] = []
    reranker = pipeline.reranker
    if reranker is not None:
        onnx_session = reranker.session
        undo.append((reranker, onnx_session))
        reranker.session = rescorer_session(reranker.model_dir, device, dtype)
        stages["rescore"] = {
            **reranker.session.describe(),
            "weights": str(reranker.model_dir / "model.onnx") + " (int8, dequantized)",
            "parity_vs_onnxruntime": rescorer_parity(reranker, onnx_session, texts),
        }
    parser = onnx_parser(pipeline.parser)
    if parser is not None:
        onnx_session = parser.session
        undo.append((parser, onnx_session))
        parser.session = student_session(parser.model_dir, device, dtype)
        stages["nlu"] = {
            **parser.session.describe(),
            "weights": f"{parser.model_dir} ({parser.precision} ONNX, dequantized)",
            "parity_vs_onnxruntime": student_parity(parser, onnx_session, texts),
        }
    log.info("later stages on torch %s: %s", device, sorted(stages))

    def restore() -> None:
        for model, session in undo:
            model.session = session

    return stages, restore


def rescorer_parity(reranker, onnx_session, texts: Sequence[str]) -> dict:
    """Scores of `texts` from the reranker's (torch) session against `onnx_session`:
    max / mean |difference| and the spread of the scores (std), for scale."""
    torch_scores = reranker.score_texts(list(texts))
    torch_session, reranker.session = reranker.session, onnx_session
    try:
        onnx_scores = reranker.score_texts(list(texts))
    finally:
        reranker.session = torch_session
    diff = np.abs(torch_scores - onnx_scores)
    return {
        "texts": len(texts),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "score_std": float(onnx_scores.std()),
    }


def student_parity(parser, onnx_session, texts: Sequence[str]) -> dict:
    """Argmax agreement of the parser's (torch) session with `onnx_session` on `texts`:
    intent and language per text, BIO tag per real token; max |logit difference|."""
    encodings, ours = parser.logits(texts)
    torch_session, parser.session = parser.session, onnx_session
    try:
        _, theirs = parser.logits(texts)
    finally:
        parser.session = torch_session
    real = np.zeros(ours["tags"].shape[:2], dtype=bool)
    for i, enc in enumerate(encodings):
        real[i, : len(enc.ids)] = True
    agree = lambda key: ours[key].argmax(-1) == theirs[key].argmax(-1)  # noqa: E731
    return {
        "texts": len(texts),
        "intent_agreement": float(agree("intent").mean()),
        "language_agreement": float(agree("language").mean()),
        "tag_agreement": float(agree("tags")[real].mean()),
        "max_abs_logit_diff": float(
            max(np.abs(ours[k] - theirs[k]).max() for k in ("intent", "language"))
        ),
    }
