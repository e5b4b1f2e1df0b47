"""The runtime parser: the distilled student in ONNX Runtime, tokenized with `tokenizers`.

No PyTorch here. A model directory holds model.int8.onnx and/or model.onnx, tokenizer.json,
labels.json, config.json and card.json (lab.nlu.export, lab.nlu.evaluate).

    parser = load_default_parser()          # None when no student is installed
    parser.parse("cuántos pañales huggies talla cuatro tenemos").to_dict()
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nlu.decode import decode
from nlu.onnx import onnx_providers
from nlu.schema import LabelSet, NluResult

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(__file__).parent / "models" / "student"
MAX_TOKENS = 256  # far beyond a spoken query; positions go to 512
PAD_ID = 1


def default_model_dir() -> Path:
    """`$RETAIL_ASSISTANT_NLU_MODEL` or the student committed in the package."""
    return Path(os.environ.get("RETAIL_ASSISTANT_NLU_MODEL", DEFAULT_DIR))


def pad_feed(rows: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    """Token id lists -> the graph's inputs: input_ids / attention_mask [B, T], padded."""
    t = max(len(r) for r in rows)
    ids = np.full((len(rows), t), PAD_ID, dtype=np.int64)
    mask = np.zeros((len(rows), t), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return {"input_ids": ids, "attention_mask": mask}


class OnnxParser:
    """Text -> NluResult with the ONNX student (implements nlu.schema.Parser).

    Args:
        model_dir: the runtime model directory.
        precision: "int8" (model.int8.onnx), "fp32" (model.onnx) or "auto" (int8 if present).
        threads: intra-op threads for ONNX Runtime (None: its default).
        device: "auto" (CUDA when onnxruntime-gpu is installed, else CPU), "cpu" or "cuda".
    """

    def __init__(
        self,
        model_dir: str | Path,
        precision: str = "auto",
        threads: int | None = None,
        device: str = "auto",
    ):
        import onnxruntime as ort  # noqa: PLC0415 - keep `import nlu` light
        from tokenizers import Tokenizer  # noqa: PLC0415

        self.model_dir = Path(model_dir)
        files = {"int8": self.model_dir / "model.int8.onnx", "fp32": self.model_dir / "model.onnx"}
        if precision == "auto":
            precision = "int8" if files["int8"].exists() else "fp32"
        if precision not in files:
            raise ValueError(f"precision must be auto, int8 or fp32, not {precision!r}")
        if not files[precision].exists():
            raise FileNotFoundError(f"{files[precision]} not found")
        # the student's own intents and tags: the retail schema or a domain pack's
        self.labels = LabelSet.from_json(json.loads((self.model_dir / "labels.json").read_text()))
        self.precision = precision
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(files[precision]), opts, providers=onnx_providers(device)
        )
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        log.info("NLU student %s (%s) loaded", self.model_dir, precision)

    def logits(self, texts: Sequence[str]) -> tuple[list, dict[str, np.ndarray]]:
        """Encodings and raw outputs: intent [B, n_intents], language [B, 2], tags [B, T, n_tags]."""
        # One query: plain encode; encode_batch would wake the tokenizer's thread pool,
        # which competes with ONNX Runtime's threads for a few microseconds of work.
        texts = list(texts)
        encs = (
            [self.tokenizer.encode(texts[0])]
            if len(texts) == 1
            else self.tokenizer.encode_batch(texts)
        )
        intent, language, tags = self.session.run(None, pad_feed([e.ids for e in encs]))
        return encs, {"intent": intent, "language": language, "tags": tags}

    def parse_batch(
        self, texts: list[str], languages: list[str | None] | None = None
    ) -> list[NluResult]:
        """One forward pass for the whole list (padded to its longest query)."""
        if not texts:
            return []
        languages = languages or [None] * len(texts)
        encs, out = self.logits(texts)
        return [
            decode(
                text,
                enc.offsets,
                out["intent"][i],
                out["language"][i],
                out["tags"][i],
                languages[i],
                labels=self.labels,
            )
            for i, (text, enc) in enumerate(zip(texts, encs, strict=True))
        ]

    def parse(self, text: str, language: str | None = None) -> NluResult:
        return self.parse_batch([text], [language])[0]


def load_default_parser(
    precision: str = "auto", threads: int | None = None, device: str = "auto"
) -> OnnxParser | None:
    """The installed student, or None when its directory or ONNX file is absent."""
    model_dir = default_model_dir()
    if not (model_dir / "model.int8.onnx").exists() and not (model_dir / "model.onnx").exists():
        log.info("no NLU student at %s", model_dir)
        return None
    return OnnxParser(model_dir, precision, threads, device)
