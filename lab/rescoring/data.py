"""N-best lists as training/evaluation examples (no torch): hypotheses, first-pass scores, errors."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lab import REPO  # noqa: E402
from lab.wer import word_errors

NBEST_DIR = Path(os.environ.get("RESCORING_WORK", REPO / "build" / "rescoring")) / "nbest"


@dataclass(frozen=True)
class NBestExample:
    """One decoded utterance.

    texts: hypotheses, best first-pass score first; asr: their first-pass scores [n];
    errors: word errors of each against the reference [n]; ref_words: reference length.
    """

    id: str
    reference: str
    language: str
    voice: str
    texts: tuple[str, ...]
    asr: np.ndarray
    errors: np.ndarray
    ref_words: int
    row: dict

    @property
    def oracle(self) -> int:
        return int(np.argmin(self.errors))


def load_split(split: str, path: Path | None = None, max_hyps: int = 8) -> list[NBestExample]:
    path = path or NBEST_DIR / f"{split}.jsonl"
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            hyps = sorted(row["hypotheses"], key=lambda h: -h["asr_score"])[:max_hyps]
            if not hyps:
                continue
            # accents=False: the corpus writes queries as people type them, often without
            # accents, and Whisper restores them.
            errs = [
                word_errors(row["reference"], h["text"], row["language"], accents=False)
                for h in hyps
            ]
            out.append(
                NBestExample(
                    id=row["id"],
                    reference=row["reference"],
                    language=row["language"],
                    voice=row["voice"],
                    texts=tuple(h["text"] for h in hyps),
                    asr=np.asarray([h["asr_score"] for h in hyps], dtype=np.float32),
                    errors=np.asarray([e.errors for e in errs], dtype=np.float32),
                    ref_words=max(1, errs[0].reference_length),
                    row=row,
                )
            )
    return out


def pick(examples: list[NBestExample], scores: list[np.ndarray] | None, weight: float) -> list[int]:
    """Index of the chosen hypothesis of each list: argmax asr + weight * score."""
    if scores is None:
        return [int(np.argmax(e.asr)) for e in examples]
    return [int(np.argmax(e.asr + weight * s)) for e, s in zip(examples, scores, strict=True)]


def wer(examples: list[NBestExample], chosen: list[int]) -> float:
    """Corpus WER (%) of the chosen hypotheses."""
    errors = sum(float(e.errors[i]) for e, i in zip(examples, chosen, strict=True))
    words = sum(e.ref_words for e in examples)
    return 100.0 * errors / max(1, words)


def tune_weight(
    examples: list[NBestExample], scores: list[np.ndarray], grid: np.ndarray | None = None
) -> tuple[float, float]:
    """(lambda, dev WER) minimizing WER over a grid; ties go to the smallest lambda."""
    grid = np.concatenate([[0.0], np.geomspace(1e-3, 10.0, 61)]) if grid is None else grid
    best = (0.0, wer(examples, pick(examples, None, 0.0)))
    for w in grid:
        value = wer(examples, pick(examples, scores, float(w)))
        if value < best[1] - 1e-9:
            best = (float(w), value)
    return best
