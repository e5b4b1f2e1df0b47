"""The rescorer's tokenizer and networks (training side; torch and transformers imported lazily).

- Tokenizer: a WordPiece vocabulary of our own (default 6,000 pieces) trained on the domain
  text and the n-best hypotheses, lower-cased with accents kept (EN+ES share it). A 250k
  XLM-R vocabulary would make the ONNX file ~100 MB; this one keeps it to a few MB.
- Teacher: a small masked LM (BERT, 6 layers, hidden 192) trained from scratch on the domain
  text; its pseudo-log-likelihood (PLL) scores sentences at the cost of one forward per token.
- Student (the rescorer): the teacher's first layers, [CLS] -> feed-forward -> one score,
  trained to reproduce PLL in one forward (stage 1), then with MWER/MWED on n-best lists.
- Pyramid variant: between layers, keep a core-set of the token states (greedy k-center,
  [CLS] always kept), so later layers run on fewer tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer(texts, vocab_size: int = 6000):
    """WordPiece tokenizer over `texts` (iterable of str); [CLS] text [SEP] on encode."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, min_frequency=2)
    tok.train_from_iterator(texts, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tok


@dataclass
class EncoderConfig:
    """Sizes of a BERT encoder (saved into every checkpoint and config.json)."""

    vocab_size: int = 6000
    hidden: int = 192
    layers: int = 6
    heads: int = 4
    ffn: int = 768
    max_length: int = 48
    # Pyramid-BERT: fraction of tokens kept after each layer (empty: plain encoder).
    keep: tuple[float, ...] = ()

    def bert_config(self):
        from transformers import BertConfig

        return BertConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            intermediate_size=self.ffn,
            max_position_embeddings=self.max_length + 2,
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
            pad_token_id=0,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["keep"] = list(self.keep)
        return d


def new_teacher(cfg: EncoderConfig):
    from transformers import BertForMaskedLM

    return BertForMaskedLM(cfg.bert_config())


def _core_set(states, mask, k: int):
    """Indices [B, k] of a greedy k-center core-set of each row's tokens ([CLS] first).

    states: [B, T, H]; mask: [B, T] (1 = real token). Padding is never picked before real
    tokens run out (its distance is set to -1).
    """
    import torch

    batch, length, _ = states.shape
    x = torch.nn.functional.normalize(states, dim=-1)
    chosen = [torch.zeros(batch, dtype=torch.long, device=states.device)]
    dist = 1.0 - (x * x[:, :1]).sum(-1)  # cosine distance to [CLS]
    dist = torch.where(mask > 0, dist, torch.full_like(dist, -1.0))
    dist[:, 0] = -2.0
    for _ in range(k - 1):
        nxt = dist.argmax(dim=1)
        chosen.append(nxt)
        picked = x[torch.arange(batch), nxt].unsqueeze(1)
        dist = torch.minimum(dist, 1.0 - (x * picked).sum(-1))
        dist = torch.where(mask > 0, dist, torch.full_like(dist, -1.0))
        dist[torch.arange(batch), nxt] = -2.0
        dist[:, 0] = -2.0
    idx = torch.stack(chosen, dim=1)
    return torch.sort(idx, dim=1).values  # keep word order


def encoder_layer(layer, h, mask):
    """One BERT layer (transformers' BertLayer weights) with an attention mask we build here.

    h: [B, T, H] token states; mask: [B, T] (1 = real token). transformers 5 changed how
    BertLayer takes masks (attention interfaces, mask preparation inside BertModel), so the
    Pyramid path does the arithmetic itself: additive -1e4 bias on padded keys, softmax,
    then the layer's own output / feed-forward sub-modules. Same result as BertModel when no
    token is dropped (tests/rescoring/test_model.py).
    """
    import torch

    attn = layer.attention.self
    batch, length, hidden = h.shape
    heads, size = attn.num_attention_heads, attn.attention_head_size

    def split(x):
        return x.view(batch, length, heads, size).transpose(1, 2)  # [B, heads, T, size]

    q, k, v = split(attn.query(h)), split(attn.key(h)), split(attn.value(h))
    bias = (1.0 - mask[:, None, None, :].to(h.dtype)) * -1e4  # [B, 1, 1, T]
    weights = torch.softmax(q @ k.transpose(-1, -2) * size**-0.5 + bias, dim=-1)
    context = (attn.dropout(weights) @ v).transpose(1, 2).reshape(batch, length, hidden)
    out = layer.attention.output
    a = out.LayerNorm(out.dropout(out.dense(context)) + h)
    ffn = layer.output
    return ffn.LayerNorm(ffn.dropout(ffn.dense(layer.intermediate(a))) + a)


class Rescorer:  # thin namespace so that torch is imported only when a model is built
    @staticmethod
    def build(cfg: EncoderConfig):
        import torch
        from transformers import BertModel

        class _Rescorer(torch.nn.Module):
            """[CLS] of a BERT encoder -> Linear-GELU-Linear -> one score per sentence."""

            def __init__(self) -> None:
                super().__init__()
                self.cfg = cfg
                self.bert = BertModel(cfg.bert_config(), add_pooling_layer=False)
                self.head = torch.nn.Sequential(
                    torch.nn.Linear(cfg.hidden, cfg.hidden),
                    torch.nn.GELU(),
                    torch.nn.Linear(cfg.hidden, 1),
                )

            def forward(self, input_ids, attention_mask):
                """input_ids, attention_mask: int64 [B, T] -> scores float [B].

                Always our own layer loop (`encoder_layer`), also without Pyramid drops:
                the ONNX export then holds plain arithmetic, not transformers' mask code.
                """
                return self.head(self._pyramid(input_ids, attention_mask)).squeeze(-1)

            def _pyramid(self, input_ids, attention_mask):
                """Encoder run layer by layer with our own attention (see `encoder_layer`);
                after layer i only a core-set of keep[i] x T token states goes on."""
                h = self.bert.embeddings(input_ids=input_ids)
                mask = attention_mask
                for i, layer in enumerate(self.bert.encoder.layer):
                    h = encoder_layer(layer, h, mask)
                    if i < len(cfg.keep) and cfg.keep[i] < 1.0 and i + 1 < cfg.layers:
                        k = max(2, int(round(cfg.keep[i] * h.shape[1])))
                        idx = _core_set(h, mask, k)
                        h = torch.gather(h, 1, idx.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
                        mask = torch.gather(mask, 1, idx)
                return h[:, 0]

        return _Rescorer()


def student_from_teacher(teacher, cfg: EncoderConfig, layers: list[int]):
    """A rescorer whose embeddings and encoder layers are copies of the teacher's `layers`."""
    import copy

    student = Rescorer.build(cfg)
    student.bert.embeddings.load_state_dict(teacher.bert.embeddings.state_dict())
    for dst, src in enumerate(layers):
        student.bert.encoder.layer[dst] = copy.deepcopy(teacher.bert.encoder.layer[src])
    return student


def save_json(path: Path, data: dict) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
