"""Train the rescorer: tokenizer + masked-LM teacher, PLL scores, stage 1 distillation, stage 2
MWER (or MWED) on n-best lists, ONNX export with lambda tuned on dev.

    python -m lab.rescoring.train teacher            # tokenizer + MLM teacher on domain text
    python -m lab.rescoring.train pll                # teacher PLL of every hypothesis (all splits)
    python -m lab.rescoring.train student --stage2 mwer --name s12_mwer
    python -m lab.rescoring.train export --name s12_mwer   # -> rescoring/models/rescorer/

Everything lands under build/rescoring/ except the exported model. CPU is enough (a few
minutes per step on 2 cores); CUDA is used when present.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lab.rescoring.data import NBestExample, load_split, tune_weight
from lab.rescoring.model import EncoderConfig, save_json, student_from_teacher, train_tokenizer
from lab.rescoring.scoring import (  # shared with lab.rescoring.evaluate
    WORK,
    encode,
    load_student,
    load_teacher,
    pll_scores,
    student_scores,
    train_examples,
)

log = logging.getLogger(__name__)

from lab import REPO  # noqa: E402

CORPUS = Path(os.environ.get("RESCORING_CORPUS", REPO / "build" / "corpus"))
MODEL_DIR = REPO / "rescoring" / "models" / "rescorer"
SEED = 13
SPLITS = ("train", "dev", "test")


def _torch():
    import torch

    torch.manual_seed(SEED)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    log.info("training on %s", device)
    return torch, device


def _lines(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def domain_texts() -> list[str]:
    """Text the teacher learns from: NLU corpus train split + unlabelled pool, train references.

    Dev/test corpus splits are left out so the held-out templates and products stay unseen.
    """
    texts: list[str] = []
    for name in ("train.jsonl", "pool.jsonl", "unlabelled.jsonl"):
        path = CORPUS / name
        if path.is_file():
            # Rows with simulated ASR noise are what the LM should learn to dislike.
            texts += [r["text"] for r in _lines(path) if not r.get("noisy")]
    if (CORPUS / "unlabelled.txt").is_file():
        texts += (CORPUS / "unlabelled.txt").read_text(encoding="utf-8").splitlines()
    nbest = WORK / "nbest" / "train.jsonl"
    if nbest.is_file():
        texts += [r["reference"] for r in _lines(nbest)]
    return sorted(set(t.strip() for t in texts if t.strip()))


def hypothesis_texts() -> list[str]:
    out = []
    for split in ("train",):
        path = WORK / "nbest" / f"{split}.jsonl"
        if path.is_file():
            for row in _lines(path):
                out += [h["text"] for h in row["hypotheses"]]
    return out


# ---------------------------------------------------------------- teacher


def cmd_teacher(args: argparse.Namespace) -> None:
    torch, device = _torch()
    torch.set_num_threads(args.threads)
    from tokenizers import Tokenizer  # noqa: F401

    from lab.rescoring.model import new_teacher

    texts = domain_texts()
    if args.max_texts and len(texts) > args.max_texts:
        # --resume draws a fresh sample (round r): more distinct sentences for the same cost.
        texts = random.Random(SEED + args.resume).sample(texts, args.max_texts)
    log.info("teacher text: %d sentences", len(texts))
    out = WORK / "teacher"
    if args.resume:
        model, tok, cfg = load_teacher(device, WORK)
        torch.set_grad_enabled(True)
        log.info("resuming the teacher in %s (round %d)", out, args.resume)
    else:
        # The vocabulary also sees hypotheses so that misrecognitions split into pieces.
        tok = train_tokenizer(texts + hypothesis_texts(), vocab_size=args.vocab)
        cfg = EncoderConfig(
            vocab_size=tok.get_vocab_size(), layers=args.layers, max_length=args.max_length
        )
        out.mkdir(parents=True, exist_ok=True)
        tok.save(str(out / "tokenizer.json"))
        save_json(out / "config.json", cfg.to_dict())
        model = new_teacher(cfg).to(device)
    ids, mask = encode(tok, texts, cfg.max_length)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(texts) / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=steps, pct_start=0.1
    )
    mask_id = tok.token_to_id("[MASK]")
    rng = np.random.default_rng(SEED)
    model.train()
    bar = tqdm(total=steps, desc="teacher MLM", unit="step")
    for _ in range(args.epochs):
        order = rng.permutation(len(texts))
        for start in range(0, len(order), args.batch):
            b = order[start : start + args.batch]
            x = torch.from_numpy(ids[b]).to(device)
            m = torch.from_numpy(mask[b]).to(device)
            x, m = x[:, : int(m.sum(1).max())], m[:, : int(m.sum(1).max())]
            labels = x.clone()
            special = (x <= 4) | (m == 0)
            pick = (torch.rand(x.shape, device=device) < 0.15) & ~special
            labels[~pick] = -100
            r = torch.rand(x.shape, device=device)
            inp = x.clone()
            inp[pick & (r < 0.8)] = mask_id
            rand_tok = torch.randint(5, cfg.vocab_size, x.shape, device=device)
            inp[pick & (r >= 0.8) & (r < 0.9)] = rand_tok[pick & (r >= 0.8) & (r < 0.9)]
            loss = model(input_ids=inp, attention_mask=m, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    from safetensors.torch import save_model

    # save_model: the MLM decoder shares its weight with the word embeddings.
    save_model(model, str(out / "model.safetensors"))
    log.info("teacher saved in %s", out)


def cmd_pll(args: argparse.Namespace) -> None:
    _, device = _torch()
    import torch

    torch.set_num_threads(args.threads)
    model, tok, cfg = load_teacher(device, WORK)
    result: dict[str, dict] = {}
    cost_path = WORK / "pll" / "cost.json"
    if cost_path.is_file():  # scoring the splits in several runs keeps the earlier costs
        result = {k: v for k, v in json.loads(cost_path.read_text()).items() if k in SPLITS}
    for split in args.splits.split(","):
        path = WORK / "nbest" / f"{split}.jsonl"
        if not path.is_file():
            continue
        examples = train_examples(WORK) if split == "train" else load_split(split)
        if split == "train" and args.max_train_lists and len(examples) > args.max_train_lists:
            # PLL costs one teacher forward per token: stage 1 learns from a sample of lists.
            examples = random.Random(SEED).sample(examples, args.max_train_lists)
        texts = [t for e in examples for t in e.texts]
        started = time.perf_counter()
        scores = pll_scores(model, tok, cfg, texts, device)
        elapsed = time.perf_counter() - started
        k = 0
        by_id = {}
        for e in examples:
            by_id[e.id] = [round(float(s), 4) for s in scores[k : k + len(e.texts)]]
            k += len(e.texts)
        save_json(WORK / "pll" / f"{split}.json", by_id)
        result[split] = {"hypotheses": len(texts), "seconds": round(elapsed, 2)}
        log.info("PLL %s: %d hypotheses in %.1f s", split, len(texts), elapsed)
    save_json(cost_path, {"device": device, "threads": args.threads, **result})


# ---------------------------------------------------------------- student


def _load_pll(split: str) -> dict[str, list[float]]:
    return json.loads((WORK / "pll" / f"{split}.json").read_text())


def _batches(examples: list[NBestExample], size: int, rng: random.Random):
    order = list(range(len(examples)))
    rng.shuffle(order)
    for start in range(0, len(order), size):
        yield [examples[i] for i in order[start : start + size]]


def list_loss(torch, scores, asr, errors, counts, kind: str, weight: float, temperature: float):
    """MWER or MWED loss over a batch of n-best lists given as flat tensors.

    scores: second-pass scores [N]; asr: first-pass scores [N]; errors: word errors [N];
    counts: hypotheses per list. MWER: expected word errors under softmax(asr + w*score),
    minus the list mean (variance reduction, as in the paper). MWED: cross-entropy between
    softmax(-errors / T) and softmax(asr + w*score) (matching the error distribution).
    """
    total = scores.new_zeros(())
    k = 0
    for n in counts:
        s = asr[k : k + n] + weight * scores[k : k + n]
        e = errors[k : k + n]
        logp = torch.log_softmax(s, 0)
        if kind == "mwer":
            total = total + (logp.exp() * (e - e.mean())).sum()
        else:
            target = torch.softmax(-e / temperature, 0)
            total = total - (target * logp).sum()
        k += n
    return total / len(counts)


def first_pass_prior(
    examples: list[NBestExample], word_bonus: float, catalog_bonus: float
) -> dict[str, np.ndarray]:
    """What stage 2 adds the second-pass score to, per list id: asr_score plus the final-score
    counts (rescoring.combine) at fixed bonuses, so that MWER teaches the rescorer what the word
    penalty and the catalog bonus do not already fix. Zero bonuses: asr_score alone."""
    if not word_bonus and not catalog_bonus:
        return {e.id: e.asr for e in examples}
    from rescoring.combine import Combination, list_features

    gazetteer = None
    if catalog_bonus:
        from assistant.gazetteer import build_gazetteer
        from assistant.inventory import Inventory

        gazetteer = build_gazetteer(Inventory())
    counts = Combination(weight=0.0, word_bonus=word_bonus, catalog_bonus=catalog_bonus)
    zeros = np.float32(0.0)
    return {
        e.id: counts.final(e.asr, zeros, list_features(e.texts, gazetteer)).astype(np.float32)
        for e in examples
    }


def cmd_student(args: argparse.Namespace) -> None:
    torch, device = _torch()
    torch.set_num_threads(args.threads)
    teacher, tok, tcfg = load_teacher(device, WORK)
    torch.set_grad_enabled(True)
    keep = tuple(float(x) for x in args.keep.split(",")) if args.keep else ()
    cfg = EncoderConfig(
        vocab_size=tcfg.vocab_size,
        hidden=tcfg.hidden,
        layers=args.layers,
        heads=tcfg.heads,
        ffn=tcfg.ffn,
        max_length=tcfg.max_length,
        keep=keep,
    )
    layers = [round(i * (tcfg.layers - 1) / max(1, args.layers - 1)) for i in range(args.layers)]
    model = student_from_teacher(teacher.cpu(), cfg, layers)
    del teacher
    if args.init:
        # Start from another student's weights (e.g. stage 1 done once, several stage 2s).
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(WORK / "students" / args.init / "model.safetensors")))
        log.info("initialized from student %s", args.init)
    model = model.to(device)
    train = train_examples(WORK)
    pll = _load_pll("train")
    scored = [e for e in train if e.id in pll]  # lists the teacher scored (stage 1 data)
    log.info("train lists: %d (%d with teacher PLL)", len(train), len(scored))
    rng = random.Random(SEED)

    # PLL targets are standardized: the head learns a unit-scale score, lambda sets its weight.
    all_pll = np.concatenate([np.asarray(pll[e.id]) for e in scored])
    mu, sigma = float(all_pll.mean()), float(all_pll.std() or 1.0)

    def forward(texts):
        ids, mask = encode(tok, texts, cfg.max_length)
        return model(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))

    history = {}
    if args.stage1_epochs:
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr1, weight_decay=0.01)
        model.train()
        bar = tqdm(
            total=args.stage1_epochs * math.ceil(len(scored) / args.lists), desc="stage 1 (PLL)"
        )
        for _ in range(args.stage1_epochs):
            for batch in _batches(scored, args.lists, rng):
                texts = [t for e in batch for t in e.texts]
                target = np.concatenate([(np.asarray(pll[e.id]) - mu) / sigma for e in batch])
                pred = forward(texts)
                loss = torch.nn.functional.mse_loss(
                    pred, torch.tensor(target, dtype=torch.float32, device=device)
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
                bar.update(1)
                bar.set_postfix(mse=f"{loss.item():.3f}")
        bar.close()
        history["stage1_mse"] = round(loss.item(), 4)
    if args.stage2 != "none" and args.stage2_epochs:
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr2, weight_decay=0.01)
        model.train()
        useful = [e for e in train if len(e.texts) > 1]
        prior = first_pass_prior(useful, args.word_bonus, args.catalog_bonus)
        bar = tqdm(
            total=args.stage2_epochs * math.ceil(len(useful) / args.lists),
            desc=f"stage 2 ({args.stage2})",
        )
        for _ in range(args.stage2_epochs):
            for batch in _batches(useful, args.lists, rng):
                texts = [t for e in batch for t in e.texts]
                pred = forward(texts)
                asr = torch.tensor(np.concatenate([prior[e.id] for e in batch]), device=device)
                err = torch.tensor(np.concatenate([e.errors for e in batch]), device=device)
                loss = list_loss(
                    torch,
                    pred,
                    asr,
                    err,
                    [len(e.texts) for e in batch],
                    args.stage2,
                    args.train_weight,
                    args.temperature,
                )
                if args.distill_weight and any(e.id in pll for e in batch):
                    # Keep the LM prior: MSE to the teacher on the lists it scored.
                    keep, target = [], []
                    k = 0
                    for e in batch:
                        if e.id in pll:
                            keep += range(k, k + len(e.texts))
                            target.append((np.asarray(pll[e.id]) - mu) / sigma)
                        k += len(e.texts)
                    loss = loss + args.distill_weight * torch.nn.functional.mse_loss(
                        pred[torch.tensor(keep, device=device)],
                        torch.tensor(np.concatenate(target), dtype=torch.float32, device=device),
                    )
                opt.zero_grad()
                loss.backward()
                opt.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
    from safetensors.torch import save_file

    out = WORK / "students" / args.name
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    save_file(
        {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()},
        str(out / "model.safetensors"),
    )
    tok.save(str(out / "tokenizer.json"))
    save_json(
        out / "config.json",
        {
            **cfg.to_dict(),
            "teacher_layers": layers,
            "pll_mean": mu,
            "pll_std": sigma,
            "args": {k: v for k, v in vars(args).items() if k != "func"},
            **history,
        },
    )
    log.info("student saved in %s", out)


# ---------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> None:
    import torch

    model, tok, cfg = load_student(args.name, WORK)
    dev = load_split("dev")
    weight, dev_wer = tune_weight(dev, student_scores(model, tok, cfg, dev))
    log.info("lambda %.4f, dev WER %.2f", weight, dev_wer)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ids, mask = encode(tok, ["where can I find tide pods", "hola"], cfg.max_length)
    fp32 = out / "model.fp32.onnx"
    torch.onnx.export(
        model,
        (torch.from_numpy(ids), torch.from_numpy(mask)),
        str(fp32),
        input_names=["input_ids", "attention_mask"],
        output_names=["score"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "seq"},
            "attention_mask": {0: "batch", 1: "seq"},
            "score": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(out / "model.onnx"), weight_type=QuantType.QInt8)
    fp32.unlink()
    tok.save(str(out / "tokenizer.json"))
    save_json(
        out / "config.json",
        {
            "lambda": weight,
            "max_length": cfg.max_length,
            "threads": 2,
            "encoder": cfg.to_dict(),
            "student": args.name,
            "dev_wer": round(dev_wer, 3),
        },
    )
    log.info("exported to %s", out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.rescoring.train", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("teacher")
    p.add_argument("--vocab", type=int, default=6000)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--max-texts", type=int, default=0, help="sample this many sentences (0: all)")
    p.add_argument("--max-length", type=int, default=32, help="subword tokens, [CLS]/[SEP] in")
    p.add_argument(
        "--resume", type=int, default=0, help="round r > 0: keep training the saved teacher"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.set_defaults(func=cmd_teacher)
    p = sub.add_parser("pll")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-train-lists", type=int, default=0, help="sample of train lists (0: all)")
    p.add_argument("--splits", default="train,dev,test")
    p.set_defaults(func=cmd_pll)
    p = sub.add_parser("student")
    p.add_argument("--name", required=True)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument(
        "--keep", default="", help="Pyramid: kept fraction after each layer, e.g. 1,0.6,0.4"
    )
    p.add_argument("--init", default="", help="start from this student (same layers/sizes)")
    p.add_argument("--stage1-epochs", type=int, default=2)
    p.add_argument("--stage2", choices=["none", "mwer", "mwed"], default="mwer")
    p.add_argument("--stage2-epochs", type=int, default=3)
    p.add_argument("--lists", type=int, default=32, help="n-best lists per step")
    p.add_argument("--lr1", type=float, default=5e-4)
    p.add_argument("--lr2", type=float, default=1e-4)
    p.add_argument("--train-weight", type=float, default=0.1, help="lambda inside the MWER softmax")
    p.add_argument("--distill-weight", type=float, default=0.1)
    p.add_argument(
        "--word-bonus", type=float, default=0.0, help="stage 2: word bonus added to asr_score"
    )
    p.add_argument(
        "--catalog-bonus", type=float, default=0.0, help="stage 2: catalog bonus, likewise"
    )
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_student)
    p = sub.add_parser("export")
    p.add_argument("--name", required=True)
    p.add_argument("--out", default=str(MODEL_DIR))
    p.set_defaults(func=cmd_export)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.func(args)


if __name__ == "__main__":
    main()
