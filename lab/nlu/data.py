"""Corpus files -> token ids, BIO targets and padded batches for the trainers.

Corpus rows (lab.nlu.corpus): {"text", "language", "intent", "entities": [{"label","start","end"}], ...};
the unlabelled pool is one text per line. Batches are dicts of int64 tensors:
input_ids / attention_mask / tags [B, T], intent / language [B].
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nlu.bio import IGNORE_INDEX, spans_to_ids
from nlu.decode import LANGUAGES
from nlu.schema import RETAIL, LabelSet

PAD_ID = 1  # XLM-R <pad>


def load_labels(corpus: str | Path) -> LabelSet:
    """The corpus's labels.json (a domain pack's corpus, lab.domains), else the retail schema."""
    path = Path(corpus) / "labels.json"
    return LabelSet.from_json(json.loads(path.read_text())) if path.exists() else RETAIL


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_lines(path: str | Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


@dataclass(frozen=True)
class Example:
    """One encoded query; tags/intent/language are IGNORE_INDEX when unlabelled."""

    ids: list[int]
    tags: list[int]
    intent: int
    language: int


def encode_labelled(
    tokenizer, rows: Sequence[dict], max_len: int = 64, labels: LabelSet = RETAIL
) -> list[Example]:
    """tokenizer: a `tokenizers.Tokenizer` that adds <s> ... </s> and reports offsets."""
    out = []
    tag_to_id = labels.tag_to_id
    encs = tokenizer.encode_batch([r["text"] for r in rows])
    for row, enc in zip(rows, encs, strict=True):
        tags = spans_to_ids(row["text"], enc.offsets, row["entities"], tag_to_id=tag_to_id)
        ids = list(enc.ids)
        if len(ids) > max_len:  # keep </s> so the sequence shape matches inference
            ids, tags = ids[: max_len - 1] + ids[-1:], tags[: max_len - 1] + [IGNORE_INDEX]
        lang = LANGUAGES.index(row["language"]) if row.get("language") in LANGUAGES else -100
        out.append(Example(ids, tags, labels.intents.index(row["intent"]), lang))
    return out


def encode_texts(tokenizer, texts: Sequence[str], max_len: int = 64) -> list[Example]:
    out = []
    for enc in tokenizer.encode_batch(list(texts)):
        ids = list(enc.ids)
        if len(ids) > max_len:
            ids = ids[: max_len - 1] + ids[-1:]
        out.append(Example(ids, [IGNORE_INDEX] * len(ids), IGNORE_INDEX, IGNORE_INDEX))
    return out


def collate(batch: Sequence[Example]):
    import torch  # noqa: PLC0415 - training only

    t = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), t), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(batch), t), dtype=torch.long)
    tags = torch.full((len(batch), t), IGNORE_INDEX, dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.ids)
        ids[i, :n] = torch.tensor(e.ids)
        mask[i, :n] = 1
        tags[i, :n] = torch.tensor(e.tags)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "tags": tags,
        "intent": torch.tensor([e.intent for e in batch]),
        "language": torch.tensor([e.language for e in batch]),
    }


def batches(
    items: Sequence[Example], batch_size: int, shuffle: bool, rng: random.Random | None = None
) -> Iterator[dict]:
    order = list(range(len(items)))
    if shuffle:
        (rng or random.Random(0)).shuffle(order)
    for i in range(0, len(order), batch_size):
        yield collate([items[j] for j in order[i : i + batch_size]])
