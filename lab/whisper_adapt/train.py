"""LoRA on Whisper base's decoder, trained on precomputed encoder outputs (data.py).

The encoder is frozen and never runs here: each step is the decoder on a batch of cached
(500, 512) encoder outputs, so a step costs a fraction of a second on two CPU cores.

Each example is decoded as the runtime decodes (asr/transcriber.py::_prompt):
    [<|startofprev|> " phrase, phrase, ..."] <|startoftranscript|> <|lang|> <|transcribe|>
    <|notimestamps|> " transcript" <|endoftext|>
For `prompt_share` of the examples the previous-text slot holds a comma-separated list of
catalog phrases in the utterance's language: the right ones (sometimes left out) among
distractors, so that the model learns to use a list without copying it blindly. The loss is on
the transcript tokens and end-of-text only.

Usage: python -m lab.whisper_adapt train [--rank 16 --steps 1500 ...]; writes the adapter with
asr.adapter.save_adapter into --out (default asr/data/adapters/store-v1).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from asr import adapter as ct2_adapter
from lab.whisper_adapt import data as adapt_data

log = logging.getLogger(__name__)

ALL_TARGETS = (
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
    "encoder_attn.q_proj", "encoder_attn.k_proj", "encoder_attn.v_proj",
    "encoder_attn.out_proj", "fc1", "fc2",
)  # fmt: skip
# Default: not the cross-attention k/v. They project all 500 encoder frames of every example;
# with them frozen, no gradient flows through that projection, which is most of a step's cost.
DEFAULT_TARGETS = tuple(
    t for t in ALL_TARGETS if t not in ("encoder_attn.k_proj", "encoder_attn.v_proj")
)
MAX_PROMPT_TOKENS = 223  # as asr.transcriber: half of Whisper's 448-token context


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Saved inside adapter.json; flags map to fields (kebab-case)."""

    data: str = "build/whisper_adapt/data"
    out: str = "asr/data/adapters/store-v1"
    name: str = "store-v1"
    model_dir: str | None = None  # CTranslate2 Whisper base; None: the assembled one
    targets: tuple[str, ...] = DEFAULT_TARGETS
    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: int = 50
    steps: int = 1500
    batch: int = 16
    eval_every: int = 100
    patience: int = 4  # evaluations without a better dev loss before stopping
    # Wall-clock budget in minutes (0: none): the learning rate decays with whichever of steps
    # and time is further along, and training stops at the evaluation after the budget.
    max_minutes: float = 0.0
    prompt_share: float = 0.5
    drop_right_share: float = 0.15  # of prompted examples: distractors only
    distractors: tuple[int, ...] = (1, 6)  # min, max distractor phrases
    threads: int = 2
    # bfloat16 autocast with the frozen weights stored in bfloat16: about 2x faster on CPUs with
    # AMX / AVX512-BF16 (measured here); the LoRA weights and the optimizer stay float32.
    bf16: bool = True
    seed: int = 13

    def __post_init__(self) -> None:
        unknown = [t for t in self.targets if t not in ALL_TARGETS]
        if unknown:
            raise ValueError(f"unknown targets {unknown}; choose among {ALL_TARGETS}")
        if self.rank < 1 or self.steps < 1 or self.batch < 1:
            raise ValueError("rank, steps and batch must be at least 1")


# ---- model --------------------------------------------------------------------------------


def add_lora(model, cfg: TrainConfig) -> dict[str, object]:
    """Wrap each targeted decoder linear in a LoRA layer; freeze everything else.
    Returns {module name: LoRA layer}. B starts at zero: the wrapped model is the base."""
    import torch
    from torch import nn

    class LoRALinear(nn.Module):
        def __init__(self, base: nn.Linear) -> None:
            super().__init__()
            self.base = base
            self.a = nn.Parameter(
                torch.randn(cfg.rank, base.in_features) / math.sqrt(base.in_features)
            )
            self.b = nn.Parameter(torch.zeros(base.out_features, cfg.rank))
            self.scale = cfg.alpha / cfg.rank
            self.drop = nn.Dropout(cfg.dropout)

        def forward(self, x):
            return self.base(x) + (self.drop(x) @ self.a.T @ self.b.T) * self.scale

    for param in model.parameters():
        param.requires_grad_(False)
    layers = {}
    for i, layer in enumerate(model.model.decoder.layers):
        for target in cfg.targets:
            parent_name, _, attr = target.rpartition(".")
            parent = layer.get_submodule(parent_name) if parent_name else layer
            lora = LoRALinear(getattr(parent, attr))
            setattr(parent, attr, lora)
            layers[f"model.decoder.layers.{i}.{target}"] = lora
    return layers


def lora_targets(layers: dict, d_model: int) -> list[ct2_adapter.Target]:
    """The trained LoRA layers as asr.adapter Targets (scale folded into b)."""
    out = []
    for name, lora in layers.items():
        variable, start, stop = ct2_adapter.ct2_target(name, d_model)
        a = lora.a.detach().float().numpy()
        b = (lora.b.detach().float() * lora.scale).numpy()
        stop = start + b.shape[0] if stop < 0 else stop
        out.append(ct2_adapter.Target(variable, start, stop, a, b))
    return out


# ---- examples -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Specials:
    sot_prev: int
    sot: int
    transcribe: int
    no_timestamps: int
    eot: int
    languages: dict[str, int]

    @classmethod
    def from_tokenizer(cls, tokenizer) -> Specials:
        ids = tokenizer.token_to_id
        return cls(
            ids("<|startofprev|>"), ids("<|startoftranscript|>"), ids("<|transcribe|>"),
            ids("<|notimestamps|>"), ids("<|endoftext|>"),
            {lang: ids(f"<|{lang}|>") for lang in ("en", "es")},
        )  # fmt: skip


def prompt_phrases(
    row: dict, pools: dict[str, list[str]], cfg: TrainConfig, rng: random.Random
) -> list[str]:
    """The phrase list of one prompted example: right phrases (unless dropped) + distractors."""
    right = [] if rng.random() < cfg.drop_right_share else list(row.get("phrases", []))
    seen = {p.casefold() for p in right}
    pool = pools[row["language"]]
    n = rng.randint(*cfg.distractors)
    distractors = [
        p for p in rng.sample(pool, min(len(pool), n + len(right))) if p.casefold() not in seen
    ]
    phrases = right + distractors[:n]
    rng.shuffle(phrases)
    return phrases


def encode_example(
    row: dict, phrases: list[str] | None, tokenizer, sp: Specials
) -> tuple[list[int], int]:
    """(token ids, index of the first transcript token) for one example."""
    prompt = []
    if phrases:
        text = ", ".join(p.strip() for p in phrases if p.strip())
        prompt = [
            sp.sot_prev,
            *tokenizer.encode(" " + text, add_special_tokens=False).ids[:MAX_PROMPT_TOKENS],
        ]
    prompt += [sp.sot, sp.languages[row["language"]], sp.transcribe, sp.no_timestamps]
    text_ids = tokenizer.encode(" " + row["text"].strip(), add_special_tokens=False).ids
    return prompt + text_ids + [sp.eot], len(prompt)


def make_batch(rows, shards, tokenizer, sp, pools, cfg, rng, prompted: list[bool] | None = None):
    """Tensors (input_ids, labels, encoder states) for rows; labels -100 outside the transcript."""
    import torch

    seqs = []
    for i, row in enumerate(rows):
        use = prompted[i] if prompted is not None else rng.random() < cfg.prompt_share
        phrases = prompt_phrases(row, pools, cfg, rng) if use else None
        seqs.append(encode_example(row, phrases, tokenizer, sp))
    width = max(len(ids) for ids, _ in seqs) - 1
    inputs = torch.full((len(rows), width), sp.eot, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (ids, start) in enumerate(seqs):
        ids_t = torch.tensor(ids)
        inputs[i, : len(ids) - 1] = ids_t[:-1]
        labels[i, start - 1 : len(ids) - 1] = ids_t[start:]
    states = np.stack([shards[r["shard"]][r["row"]] for r in rows]).astype(np.float32)
    return inputs, labels, torch.from_numpy(states)


def batch_loss(model, inputs, labels, states, bf16: bool = False):
    import torch

    if bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return batch_loss(model, inputs, labels, states).float()
    hidden = model.model.decoder(input_ids=inputs, encoder_hidden_states=states).last_hidden_state
    # The 51,865-way projection only where there is a label: most positions are the prompt, and
    # projecting them all costs more than the rest of the decoder.
    keep = labels != -100
    logits = model.proj_out(hidden[keep])
    return torch.nn.functional.cross_entropy(logits, labels[keep])


def dev_loss(model, rows, shards, tokenizer, sp, pools, cfg) -> float:
    """Mean loss on the dev set, half of it prompted, with fixed draws (comparable across evals)."""
    import torch

    model.eval()
    rng = random.Random(cfg.seed + 1)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), cfg.batch):
            chunk = rows[start : start + cfg.batch]
            prompted = [(start // cfg.batch) % 2 == 0] * len(chunk)
            batch = make_batch(chunk, shards, tokenizer, sp, pools, cfg, rng, prompted)
            loss = batch_loss(model, *batch, bf16=cfg.bf16)
            total += float(loss) * len(chunk)
            count += len(chunk)
    model.train()
    return total / max(1, count)


# ---- the run ------------------------------------------------------------------------------


def load_base(model_dir: str | None):
    """(transformers Whisper float32 without its encoder, tokenizers.Tokenizer)."""
    import tokenizers

    from asr.models import resolve_model_dir
    from asr.torch_convert import build_model

    folder = resolve_model_dir(model_dir)
    model = build_model(folder, dtype="float32")
    model.model.encoder = None  # never run: its outputs are cached
    return model, tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))


def fit(model, tokenizer, cfg: TrainConfig, progress: bool = True) -> tuple[dict, dict]:
    """Train LoRA layers on cfg.data/{train,dev}; returns (layers at the best dev loss, history)."""
    import torch
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)
    train_rows, train_shards = adapt_data.load_split(Path(cfg.data) / "train")
    dev_rows, dev_shards = adapt_data.load_split(Path(cfg.data) / "dev")
    pools = json.loads((Path(cfg.data) / "phrase_pools.json").read_text())
    sp = Specials.from_tokenizer(tokenizer)
    layers = add_lora(model, cfg)
    if cfg.bf16:
        for param in model.parameters():
            if not param.requires_grad:
                param.data = param.data.to(torch.bfloat16)
    params = [p for lora in layers.values() for p in (lora.a, lora.b)]
    log.info("LoRA: %d layers, %d parameters", len(layers), sum(p.numel() for p in params))
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    started = time.perf_counter()

    def progress_share(step: int) -> float:
        share = step / cfg.steps
        if cfg.max_minutes:
            share = max(share, (time.perf_counter() - started) / 60 / cfg.max_minutes)
        return min(1.0, share)

    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / cfg.warmup) * max(0.05, 1 - progress_share(s)),
    )
    history = {"dev_loss": [(0, dev_loss(model, dev_rows, dev_shards, tokenizer, sp, pools, cfg))]}
    best, best_state, stale = history["dev_loss"][0][1], None, 0
    log.info("dev loss before training: %.4f", best)
    model.train()
    order: list[int] = []
    bar = tqdm(range(1, cfg.steps + 1), desc="train", disable=not progress, mininterval=10)
    running = None
    for step in bar:
        if len(order) < cfg.batch:
            order += rng.sample(range(len(train_rows)), len(train_rows))
        rows = [train_rows[order.pop()] for _ in range(cfg.batch)]
        # A whole batch prompted or not: no padding of bare examples to a prompt's length.
        prompted = [rng.random() < cfg.prompt_share] * len(rows)
        batch = make_batch(rows, train_shards, tokenizer, sp, pools, cfg, rng, prompted)
        loss = batch_loss(model, *batch, bf16=cfg.bf16)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        value = loss.item()
        running = value if running is None else 0.95 * running + 0.05 * value
        bar.set_postfix(loss=f"{running:.3f}")
        out_of_time = cfg.max_minutes and progress_share(step) >= 1.0
        if step % cfg.eval_every == 0 or step == cfg.steps or out_of_time:
            value = dev_loss(model, dev_rows, dev_shards, tokenizer, sp, pools, cfg)
            history["dev_loss"].append((step, value))
            log.info("step %d: train %.4f, dev %.4f", step, running, value)
            if value < best:
                best, stale = value, 0
                best_state = {
                    n: (lo.a.detach().clone(), lo.b.detach().clone()) for n, lo in layers.items()
                }
                history["best_step"] = step
            else:
                stale += 1
                if stale >= cfg.patience:
                    log.info("no better dev loss in %d evaluations: stopping", stale)
                    break
            if out_of_time:
                log.info(
                    "time budget of %.0f min spent at step %d: stopping", cfg.max_minutes, step
                )
                break
    history.update(
        steps_run=step, seconds=round(time.perf_counter() - started, 1), best_dev_loss=best
    )
    if best_state is not None:
        with torch.no_grad():
            for name, (a, b) in best_state.items():
                layers[name].a.copy_(a)
                layers[name].b.copy_(b)
    else:
        history["best_step"] = 0
    return layers, history


def train(cfg: TrainConfig, model=None, tokenizer=None, progress: bool = True) -> Path:
    """Fit, then write the adapter (adapter.json, adapter.npz) to cfg.out; returns the folder."""
    if model is None:
        model, tokenizer = load_base(cfg.model_dir)
    layers, history = fit(model, tokenizer, cfg, progress)
    targets = lora_targets(layers, model.config.d_model)
    out = Path(cfg.out)
    data_cfg = json.loads((Path(cfg.data) / "train" / "config.json").read_text())
    sha = ct2_adapter.save_adapter(
        out,
        cfg.name,
        targets,
        {"train_config": asdict(cfg), "data_config": data_cfg, "history": history},
    )
    log.info("adapter written to %s (best step %s): %s", out, history.get("best_step"), sha)
    return out
