"""Second pass at run time: score every hypothesis of an n-best list with the ONNX rescorer.

No PyTorch here: ONNX Runtime and `tokenizers` only. A rescorer is a directory:

    model.onnx      inputs input_ids, attention_mask (int64, [batch, seq]); output score [batch]
    tokenizer.json  the rescorer's own subword tokenizer (see rescoring.tokenizer)
    config.json     {"lambda": float, "word_bonus": float, "catalog_bonus": float,
                     "max_length": int, ...}
    card.json       metrics, data and the command that rebuilds it

final score = asr_score + lambda * rescore_score + word_bonus * words
              + catalog_bonus * catalog_words (rescoring.combine; weights tuned on dev).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from asr.nbest import NBest
from rescoring.combine import CatalogMatcher, Combination, list_features

log = logging.getLogger(__name__)

# The committed rescorer; `$RETAIL_ASSISTANT_RESCORER` points elsewhere ("none" disables).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "rescorer"
ENV_VAR = "RETAIL_ASSISTANT_RESCORER"


@dataclass(frozen=True)
class RerankerConfig:
    """What the runtime needs from config.json.

    combination: the weights of the final score (rescoring.combine, tuned on dev).
    max_length: subword tokens per hypothesis, [CLS] and [SEP] included (longer is cut).
    threads: ONNX Runtime intra-op threads (2 matches the deployment target).
    """

    combination: Combination = Combination()
    max_length: int = 48
    threads: int = 2


class Reranker:
    """Re-sorts an n-best list by its final score (rescoring.combine). One verb: `rank`."""

    def __init__(
        self,
        model_dir: str | os.PathLike,
        threads: int | None = None,
        device: str = "auto",
        gazetteer: CatalogMatcher | None = None,
    ) -> None:
        """device: "auto" (CUDA when onnxruntime-gpu is installed, else CPU), "cpu" or "cuda".
        gazetteer: the store's nlu.gazetteer.Gazetteer (assistant.gazetteer.build_gazetteer)
        for the catalog bonus; without one that bonus is off."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from nlu.onnx import onnx_providers

        self.model_dir = Path(model_dir)
        raw = json.loads((self.model_dir / "config.json").read_text())
        combination = Combination.from_config(raw)
        if combination.catalog_bonus and gazetteer is None:
            log.warning("rescorer: no gazetteer given, so no catalog bonus")
            combination = replace(combination, catalog_bonus=0.0)
        self.gazetteer = gazetteer
        self.config = RerankerConfig(
            combination=combination,
            max_length=int(raw.get("max_length", 48)),
            threads=int(threads or raw.get("threads", 2)),
        )
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.config.max_length)
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.model_dir / "model.onnx"), options, providers=onnx_providers(device)
        )
        log.info("rescorer %s loaded (%s)", self.model_dir, combination)

    @property
    def combination(self) -> Combination:
        return self.config.combination

    def score_texts(self, texts: list[str]) -> np.ndarray:
        """Second-pass sentence scores, float32 [len(texts)], all texts in one batched call."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        (scores,) = self.session.run(["score"], {"input_ids": ids, "attention_mask": mask})
        return np.asarray(scores, dtype=np.float32).reshape(-1)

    def rank(self, nbest: NBest) -> NBest:
        """The same readings with rescore_score and score filled, sorted by score, best first."""
        if not nbest.hypotheses:
            return nbest
        texts = [h.text for h in nbest.hypotheses]
        scores = self.score_texts(texts)
        asr = np.asarray([h.asr_score for h in nbest.hypotheses], dtype=np.float32)
        # The catalog lookup only where the combination weighs it.
        gazetteer = self.gazetteer if self.combination.catalog_bonus else None
        final = self.combination.final(asr, scores, list_features(texts, gazetteer))
        ranked = [
            replace(h, rescore_score=float(s), score=float(f))
            for h, s, f in zip(nbest.hypotheses, scores, final, strict=True)
        ]
        return nbest.resorted(ranked)


def default_model_dir() -> Path | None:
    """The rescorer directory to use, or None when disabled or absent."""
    value = os.environ.get(ENV_VAR)
    if value is not None and value.strip().lower() in {"", "none", "off", "0"}:
        return None
    path = Path(value) if value else DEFAULT_MODEL_DIR
    return path if (path / "model.onnx").is_file() and (path / "config.json").is_file() else None


def load_default_reranker(
    threads: int | None = None, device: str = "auto", gazetteer: CatalogMatcher | None = None
) -> Reranker | None:
    """The committed rescorer, or None when there is none (the first pass then stands alone)."""
    path = default_model_dir()
    if path is None:
        log.info("no rescorer found; first-pass ranking only")
        return None
    return Reranker(path, threads=threads, device=device, gazetteer=gazetteer)
