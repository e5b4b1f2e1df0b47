"""A pack's installed student on a corpus split, scored as the trainer scores
(lab.nlu.metrics: intent accuracy, exact and relaxed span F1 per label and language).

    python -m lab.domains score retail --corpus build/corpus --sample 4000
    python -m lab.domains score coffee --corpus build/domains/coffee/corpus

For retail this is the no-regression check of the pack: the same student, loaded the way
`--domain retail` loads it, on the corpus the pack's templates render.
"""

from __future__ import annotations

import random
from pathlib import Path

from tqdm import tqdm

from assistant.domain import DomainPack
from lab.nlu import data as D
from lab.nlu.metrics import score

BATCH = 64
EVAL_SEED = 13  # lab.nlu.evaluate's --test-sample seed: the same 4000 rows the card scores


def score_student(pack: DomainPack, corpus: Path, split: str = "test", sample: int = 0) -> dict:
    """lab.nlu.metrics.score of the pack's student (int8 ONNX) on `corpus/split.jsonl`, or on
    the seeded sample of `sample` rows lab.nlu.evaluate scores (--test-sample, seed 13)."""
    from assistant.pipeline import load_pack_parser, load_parser  # noqa: PLC0415

    parser = load_pack_parser(pack) if pack.student is not None else load_parser(None)
    rows = D.read_jsonl(Path(corpus) / f"{split}.jsonl")
    if sample and len(rows) > sample:
        rows = random.Random(EVAL_SEED).sample(rows, sample)
    preds = []
    for i in tqdm(range(0, len(rows), BATCH), desc=f"score {pack.name}", unit="batch"):
        chunk = rows[i : i + BATCH]
        preds += parser.parse_batch([r["text"] for r in chunk], [r["language"] for r in chunk])
    return {"pack": pack.name, "corpus": str(corpus), "split": split, "n": len(rows)} | score(
        rows, preds, pack.labels.entities
    )
