"""What the rescorer's trainer and its evaluation share: the work folder, encoding, loading the
teacher and the students, teacher PLL and student scores, the training lists.

`work` defaults to WORK (RESCORING_WORK, else build/rescoring); lab.rescoring.train passes its
own so that one run's folder is used throughout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lab import REPO
from lab.rescoring.data import NBestExample, load_split
from lab.rescoring.model import EncoderConfig

WORK = Path(os.environ.get("RESCORING_WORK", REPO / "build" / "rescoring"))


def encode(tok, texts: list[str], max_length: int):
    """(ids, mask) int64 arrays [N, T], padded to the longest."""
    tok.enable_truncation(max_length)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    enc = tok.encode_batch(texts)
    return (
        np.asarray([e.ids for e in enc], dtype=np.int64),
        np.asarray([e.attention_mask for e in enc], dtype=np.int64),
    )


def load_teacher(device: str, work: Path | None = None):
    import torch
    from safetensors.torch import load_model
    from tokenizers import Tokenizer

    from lab.rescoring.model import new_teacher

    d = (work or WORK) / "teacher"
    cfg = EncoderConfig(**{**json.loads((d / "config.json").read_text()), "keep": ()})
    model = new_teacher(cfg)
    load_model(model, str(d / "model.safetensors"))
    model.to(device).eval()
    torch.set_grad_enabled(False)
    return model, Tokenizer.from_file(str(d / "tokenizer.json")), cfg


def pll_scores(model, tok, cfg: EncoderConfig, texts: list[str], device: str, batch: int = 1024):
    """Pseudo-log-likelihood of each text (nats): sum over tokens of log p(token | rest),
    one masked copy of the sentence per token. Returns float32 [len(texts)]."""
    import torch

    ids, mask = encode(tok, texts, cfg.max_length)
    mask_id = tok.token_to_id("[MASK]")
    rows, positions = [], []
    for i in range(len(texts)):
        n = int(mask[i].sum())
        for p in range(1, n - 1):  # not [CLS] / [SEP]
            rows.append(i)
            positions.append(p)
    rows_a, pos_a = np.asarray(rows), np.asarray(positions)
    out = np.zeros(len(texts), dtype=np.float64)
    for start in tqdm(range(0, len(rows_a), batch), desc="PLL", unit="batch", leave=False):
        r, p = rows_a[start : start + batch], pos_a[start : start + batch]
        x = torch.from_numpy(ids[r]).to(device)
        m = torch.from_numpy(mask[r]).to(device)
        target = x[torch.arange(len(r)), torch.from_numpy(p).to(device)].clone()
        x[torch.arange(len(r)), torch.from_numpy(p).to(device)] = mask_id
        # The MLM head only at the masked position: ~40% of the cost for short queries.
        states = model.bert(input_ids=x, attention_mask=m).last_hidden_state
        picked = states[torch.arange(len(r)), torch.from_numpy(p).to(device)]
        logp = torch.log_softmax(model.cls(picked), -1)
        got = logp.gather(1, target[:, None]).squeeze(1).double().cpu().numpy()
        np.add.at(out, r, got)
    return out.astype(np.float32)


def train_examples(work: Path | None = None) -> list[NBestExample]:
    """Training n-best lists: this build's train split plus the reused earlier lists
    (`python -m lab.rescoring.nbest_corpus reuse`), when present."""
    out = load_split("train")
    if ((work or WORK) / "nbest" / "train_reused.jsonl").is_file():
        out += load_split("train_reused")
    return out


def load_student(name: str, work: Path | None = None):
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    from lab.rescoring.model import Rescorer

    d = (work or WORK) / "students" / name
    raw = json.loads((d / "config.json").read_text())
    fields = {k: raw[k] for k in EncoderConfig.__dataclass_fields__}
    fields["keep"] = tuple(fields["keep"])
    cfg = EncoderConfig(**fields)
    model = Rescorer.build(cfg)
    model.load_state_dict(load_file(str(d / "model.safetensors")))
    model.eval()
    return model, Tokenizer.from_file(str(d / "tokenizer.json")), cfg


def student_scores(
    model, tok, cfg, examples: list[NBestExample], batch: int = 512
) -> list[np.ndarray]:
    import torch

    texts = [t for e in examples for t in e.texts]
    flat = []
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            ids, mask = encode(tok, texts[start : start + batch], cfg.max_length)
            flat.append(model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy())
    scores = np.concatenate(flat) if flat else np.zeros(0)
    out, k = [], 0
    for e in examples:
        out.append(scores[k : k + len(e.texts)])
        k += len(e.texts)
    return out
