"""Student initialization from the teacher: SVD projection of the hidden space and layer
selection (or random, for the ablation).

The teacher works in R^384, the student in R^312. P (384 x 312) holds the top right singular
vectors of the teacher's (pruned) word-embedding matrix, so the student's embeddings are
E @ P, the best rank-312 linear summary of the teacher's. Every matrix that reads or writes
the hidden space is projected with P; inside attention each head keeps the 26 of its 32
dimensions with the largest |W_q row| * |W_k row|, and the feed-forward layer keeps the
`ffn` neurons with the largest weight norms. That is only an approximation (LayerNorm does
not commute with P), which the distillation stages then repair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lab.nlu.modeling import EncoderConfig, JointModel


def student_config(
    teacher: EncoderConfig, layers: int = 4, hidden: int = 312, ffn: int = 1248
) -> EncoderConfig:
    return EncoderConfig(
        vocab_size=teacher.vocab_size,
        hidden=hidden,
        layers=layers,
        heads=teacher.heads,
        ffn=ffn,
        max_positions=teacher.max_positions,
        eps=teacher.eps,
    ).with_labels(teacher.labels)


def default_layer_map(n_teacher: int, n_student: int) -> list[int]:
    """Teacher layer (1-based output index) each student layer imitates: evenly spaced, last to last."""
    return [round((i + 1) * n_teacher / n_student) for i in range(n_student)]


def init_random(cfg: EncoderConfig, seed: int = 13) -> JointModel:
    torch.manual_seed(seed)
    model = JointModel(cfg)
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            torch.nn.init.normal_(p, std=0.02)
        elif "ln" in name and name.endswith("weight"):
            torch.nn.init.ones_(p)
        else:
            torch.nn.init.zeros_(p)
    return model


@torch.no_grad()
def projection(teacher: JointModel, hidden: int) -> torch.Tensor:
    """P [H_teacher, hidden]: top right singular vectors of the word-embedding matrix."""
    e = teacher.word.weight.float()
    _, _, vt = torch.linalg.svd(e, full_matrices=False)
    return vt[:hidden].T.contiguous()


@torch.no_grad()
def init_from_teacher(
    teacher: JointModel, cfg: EncoderConfig, layer_map: Sequence[int] | None = None, seed: int = 13
) -> tuple[JointModel, torch.Tensor]:
    """Returns the student and P (to initialize the hidden-state projection of stage 1)."""
    tc = teacher.config
    layer_map = list(layer_map or default_layer_map(tc.layers, cfg.layers))
    student = init_random(cfg, seed)
    p = projection(teacher, cfg.hidden)  # [Ht, Hs]
    pp = (p * p).T  # [Hs, Ht]: how each student dim mixes teacher dims (for LN gains)
    s, t = student, teacher
    s.word.weight.copy_(t.word.weight @ p)
    s.pos.weight.copy_(t.pos.weight @ p)
    s.type_emb.copy_(t.type_emb @ p)
    s.ln.weight.copy_(pp @ t.ln.weight)
    s.ln.bias.copy_(p.T @ t.ln.bias)
    dt, ds = tc.hidden // tc.heads, cfg.hidden // cfg.heads
    scale = math.sqrt(ds / dt)  # keep attention logits on the teacher's scale
    for i, src in enumerate(layer_map):
        a, b = t.layers[src - 1], s.layers[i]
        keep = []
        for h in range(tc.heads):
            rows = torch.arange(h * dt, (h + 1) * dt)
            score = a.q.weight[rows].norm(dim=1) * a.k.weight[rows].norm(dim=1)
            keep.append(rows[score.argsort(descending=True)[:ds]].sort().values)
        sel = torch.cat(keep)
        b.q.weight.copy_(a.q.weight[sel] @ p * scale)
        b.q.bias.copy_(a.q.bias[sel] * scale)
        b.k.weight.copy_(a.k.weight[sel] @ p)
        b.k.bias.copy_(a.k.bias[sel])
        b.v.weight.copy_(a.v.weight[sel] @ p)
        b.v.bias.copy_(a.v.bias[sel])
        b.o.weight.copy_(p.T @ a.o.weight[:, sel])
        b.o.bias.copy_(p.T @ a.o.bias)
        neurons = (a.fi.weight.norm(dim=1) * a.fo.weight.norm(dim=0)).argsort(descending=True)
        f = neurons[: cfg.ffn].sort().values
        b.fi.weight.copy_(a.fi.weight[f] @ p)
        b.fi.bias.copy_(a.fi.bias[f])
        b.fo.weight.copy_(p.T @ a.fo.weight[:, f])
        b.fo.bias.copy_(p.T @ a.fo.bias)
        for ln_s, ln_t in ((b.ln1, a.ln1), (b.ln2, a.ln2)):
            ln_s.weight.copy_(pp @ ln_t.weight)
            ln_s.bias.copy_(p.T @ ln_t.bias)
    for head in ("intent", "language", "tags"):
        getattr(s, head).weight.copy_(getattr(t, head).weight @ p)
        getattr(s, head).bias.copy_(getattr(t, head).bias)
    return student, p
