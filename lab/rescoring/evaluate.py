"""Evaluation report of the second pass: `python -m lab.rescoring.evaluate` -> docs/rescoring_report.{md,json}.

On the held-out test n-best lists (build/rescoring/nbest/test.jsonl): WER of the first pass,
rescored and oracle, per language and per voice (the held-out voices included); the gap to the
oracle closed; entity-word accuracy (brand and product words of the reference found in the
chosen hypothesis); fixed vs broken counts; the ablation (first pass, PLL teacher scored
directly with its cost, stage 1 only, stage 1 + MWER, stage 1 + MWED, MWER only); downstream
intent accuracy / entity F1 of the NLU parser on first-pass, rescored, oracle and reference
text (lab.rescoring.downstream); latency of the committed ONNX rescorer for 8 hypotheses on 2 CPU
threads next to the previous model's; the Pyramid-BERT speed / WER table; the final-score
counts (rescoring.combine: word insertion penalty, catalog bonus) added one at a time, and
alone without the rescorer, each with its weights tuned on dev.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from lab import REPO  # noqa: E402
from lab.report import describe_machine, machine_info, percentiles
from lab.rescoring.data import NBestExample, load_split, pick, tune_weight, wer
from lab.rescoring.synth import HELD_OUT
from lab.rescoring.tune import choose, tune
from rescoring.combine import Combination, list_features
from textnorm import normalize

DOCS = REPO / "docs"
WORK_STUDENTS = Path(os.environ.get("RESCORING_WORK", REPO / "build" / "rescoring")) / "students"
ENTITY_LABELS = ("BRAND", "PRODUCT")


def entity_accuracy(examples: list[NBestExample], chosen: list[int]) -> float:
    """% of brand/product words of the references present in the chosen hypotheses."""
    hit = total = 0
    for e, i in zip(examples, chosen, strict=True):
        hyp = set(normalize(e.texts[i], e.language, accents=False).split())
        for ent in e.row.get("entities", []):
            if ent.get("label") in ENTITY_LABELS:
                for w in normalize(ent["text"], e.language, accents=False).split():
                    total += 1
                    hit += w in hyp
    return 100.0 * hit / max(1, total)


def summary(examples, chosen) -> dict:
    first = pick(examples, None, 0.0)
    oracle = [e.oracle for e in examples]
    w1, w2, wo = wer(examples, first), wer(examples, chosen), wer(examples, oracle)
    fixed = sum(
        1
        for e, f, c in zip(examples, first, chosen, strict=True)
        if e.errors[f] > e.errors[e.oracle] and e.errors[c] == e.errors[e.oracle]
    )
    broken = sum(
        1
        for e, f, c in zip(examples, first, chosen, strict=True)
        if e.errors[f] == e.errors[e.oracle] and e.errors[c] > e.errors[f]
    )
    return {
        "utterances": len(examples),
        "wer_first_pass": round(w1, 2),
        "wer_rescored": round(w2, 2),
        "wer_oracle": round(wo, 2),
        "relative_wer_reduction_pct": round(100 * (w1 - w2) / w1, 1) if w1 else 0.0,
        "gap_closed_pct": round(100 * (w1 - w2) / (w1 - wo), 1) if w1 > wo else 0.0,
        "entity_word_acc_first_pass": round(entity_accuracy(examples, first), 1),
        "entity_word_acc_rescored": round(entity_accuracy(examples, chosen), 1),
        "fixed": fixed,
        "broken": broken,
        "first_pass_wrong_oracle_right": sum(
            1
            for e, f in zip(examples, first, strict=True)
            if e.errors[f] > 0 and e.errors[e.oracle] == 0
        ),
    }


def grouped(examples, chosen, key) -> dict:
    groups: dict[str, list[int]] = defaultdict(list)
    for k, e in enumerate(examples):
        groups[key(e)].append(k)
    return {
        g: summary([examples[k] for k in idx], [chosen[k] for k in idx])
        for g, idx in sorted(groups.items())
    }


def student_lists(name: str, examples: list[NBestExample]) -> list[np.ndarray]:
    from lab.rescoring.scoring import load_student, student_scores

    model, tok, cfg = load_student(name)
    return student_scores(model, tok, cfg, examples)


def pll_lists(split: str, examples: list[NBestExample]) -> list[np.ndarray] | None:
    from lab.rescoring.scoring import WORK

    path = WORK / "pll" / f"{split}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return [np.asarray(data[e.id], dtype=np.float32) for e in examples]


def counts_ablation(reranker, gazetteer, dev, test, test_scores, test_features) -> dict:
    """Test rows of the deployed ONNX rescorer with the final-score counts added one at a time,
    and of the counts alone (no second pass), weights tuned on dev for each row."""
    dev_scores = [reranker.score_texts(list(e.texts)) for e in dev]
    dev_features = [list_features(e.texts, gazetteer) for e in dev]
    zeros = {
        "dev": [np.zeros_like(e.asr) for e in dev],
        "test": [np.zeros_like(e.asr) for e in test],
    }
    rows = {
        "counts only (no rescorer)": (zeros, ("words", "catalog")),
        "rescorer, lambda only": ({"dev": dev_scores, "test": test_scores}, ()),
        "rescorer + words": ({"dev": dev_scores, "test": test_scores}, ("words",)),
        "rescorer + catalog": ({"dev": dev_scores, "test": test_scores}, ("catalog",)),
        "rescorer + words + catalog": (
            {"dev": dev_scores, "test": test_scores},
            ("words", "catalog"),
        ),
    }
    out = {}
    for name, (scores, use) in rows.items():
        combination, dev_wer = tune(dev, scores["dev"], dev_features, use)
        chosen = choose(test, scores["test"], test_features, combination)
        out[name] = {
            "weights": combination.to_config(),
            "dev_wer": round(dev_wer, 2),
            **summary(test, chosen),
        }
    return out


def _timed(fn, repeats: int) -> dict:
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t))
    q = percentiles(times, (50, 90), ndigits=2)
    return {"median_ms": q["p50"], "p90_ms": q["p90"]}


def onnx_latency(model_dir: Path, texts: list[str], gazetteer=None, repeats: int = 200) -> dict:
    """Median / p90 ms of the whole second pass of one list (`Reranker.rank`: tokenizing, one
    batched ONNX call, the counts and the re-sort), 2 intra-op threads."""
    from asr.nbest import Hypothesis, NBest
    from rescoring.runtime import Reranker

    reranker = Reranker(model_dir, threads=2, gazetteer=gazetteer)
    nbest = NBest(
        hypotheses=tuple(Hypothesis(text=t, asr_score=-0.1 * k) for k, t in enumerate(texts)),
        language="en",
    )
    return {
        "hypotheses": len(texts),
        **_timed(lambda: reranker.rank(nbest), repeats),
        "onnx_call_only": _timed(lambda: reranker.score_texts(texts), repeats),
        "onnx_bytes": (model_dir / "model.onnx").stat().st_size,
    }


def torch_latency(name: str, texts: list[str], repeats: int = 100) -> dict:
    """The same for a trained student in PyTorch (fp32, 2 threads): plain vs Pyramid."""
    import torch

    from lab.rescoring.scoring import encode, load_student

    torch.set_num_threads(2)
    model, tok, cfg = load_student(name)
    ids, mask = encode(tok, texts, cfg.max_length)
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
    with torch.no_grad():
        return _timed(lambda: model(ids_t, mask_t), repeats)


def pll_cpu_cost(texts: list[str]) -> float:
    """ms to score 8 hypotheses with the PLL teacher on 2 CPU threads (one pass per token)."""
    import torch

    from lab.rescoring.scoring import load_teacher, pll_scores

    torch.set_num_threads(2)
    model, tok, cfg = load_teacher("cpu")
    pll_scores(model, tok, cfg, texts, "cpu")
    t = time.perf_counter()
    for _ in range(5):
        pll_scores(model, tok, cfg, texts, "cpu")
    return round(1000 * (time.perf_counter() - t) / 5, 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.rescoring.evaluate", description=__doc__)
    parser.add_argument("--students", default="s1,s12_mwer,s12_mwed,s2_mwer")
    parser.add_argument(
        "--pyramid", default="", help="plain,pyramid student names for the speed/WER table"
    )
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument(
        "--baseline-model-dir",
        type=Path,
        default=REPO / "build" / "rescoring" / "baseline_v1",
        help="an earlier ONNX rescorer timed in the same run (skipped when absent)",
    )
    parser.add_argument("--db", default=None, help="inventory URL for the catalog gazetteer")
    parser.add_argument("--out", type=Path, default=DOCS / "rescoring_report")
    args = parser.parse_args(argv)
    from assistant.gazetteer import build_gazetteer
    from assistant.inventory import Inventory
    from lab.rescoring.scoring import train_examples
    from rescoring.runtime import DEFAULT_MODEL_DIR

    model_dir = args.model_dir or DEFAULT_MODEL_DIR
    deployed = json.loads((model_dir / "config.json").read_text())
    dev, test, train = load_split("dev"), load_split("test"), train_examples()
    report: dict = {
        "machine": machine_info(
            first_pass="n-best decoded on this CPU (CTranslate2 int8 Whisper base, window 10 s, "
            "8 readings, beam 16)"
        ),
        "data": {
            "train_lists": len(train),
            "train_lists_reused": sum(e.id.startswith("reused-") for e in train),
            "dev_lists": len(dev),
            "test_lists": len(test),
            "held_out_voices": sorted(HELD_OUT),
            "train_voices": dict(sorted(Counter(e.voice for e in train).items())),
        },
        "deployed": {
            "student": deployed.get("student"),
            "weights": Combination.from_config(deployed).to_config(),
            # --model-dir elsewhere: a candidate evaluated like the deployed model.
            "role": "deployed"
            if model_dir.resolve() == DEFAULT_MODEL_DIR.resolve()
            else "candidate",
            "dir": os.path.relpath(model_dir, REPO),
        },
        "ablation": {},
    }
    first = pick(test, None, 0.0)
    report["ablation"]["first_pass"] = summary(test, first)
    systems: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    pll_dev, pll_test = pll_lists("dev", dev), pll_lists("test", test)
    if pll_dev is not None and pll_test is not None:
        systems["pll_teacher"] = (pll_dev, pll_test)
    names = [s for s in args.students.split(",") if s]
    pyramid = [s for s in args.pyramid.split(",") if s]
    for name in names + [p for p in pyramid if p not in names]:
        try:
            systems[name] = (student_lists(name, dev), student_lists(name, test))
        except FileNotFoundError:
            continue
    for name, (d, t) in systems.items():
        weight, dev_wer = tune_weight(dev, d)
        row = summary(test, pick(test, t, weight))
        report["ablation"][name] = {"lambda": round(weight, 4), "dev_wer": round(dev_wer, 2), **row}
    # The deployed model: ONNX scores, its own weights and the gazetteer the server builds.
    from rescoring.runtime import Reranker

    gazetteer = build_gazetteer(Inventory(args.db))
    reranker = Reranker(model_dir, gazetteer=gazetteer)
    scores = [reranker.score_texts(list(e.texts)) for e in test]
    features = [list_features(e.texts, gazetteer) for e in test]
    chosen = choose(test, scores, features, reranker.combination)
    report["counts"] = counts_ablation(reranker, gazetteer, dev, test, scores, features)
    report["deployed"]["test"] = summary(test, chosen)
    report["deployed"]["per_language"] = grouped(test, chosen, lambda e: e.language)
    report["deployed"]["per_voice"] = grouped(
        test, chosen, lambda e: e.voice + (" (held out)" if e.voice in HELD_OUT else "")
    )
    from lab.rescoring.downstream import downstream

    report["downstream"] = downstream(
        [e.row for e in test],
        {
            "reference": [e.reference for e in test],
            "first_pass": [e.texts[i] for e, i in zip(test, first, strict=True)],
            "rescored": [e.texts[i] for e, i in zip(test, chosen, strict=True)],
            "oracle": [e.texts[e.oracle] for e in test],
        },
    )
    # Latency: the longest 8-reading list of the test split (worst case), and a typical one.
    eights = sorted((e for e in test if len(e.texts) >= 8), key=lambda e: len(" ".join(e.texts)))
    lists = {"longest": list(eights[-1].texts[:8]), "median": list(eights[len(eights) // 2].texts)}
    report["latency"] = {"load_average_before": round(os.getloadavg()[0], 2)}
    for key, texts in lists.items():
        report["latency"][key] = onnx_latency(model_dir, texts, gazetteer)
        if (args.baseline_model_dir / "model.onnx").is_file():
            report["latency"][key]["baseline_v1"] = onnx_latency(args.baseline_model_dir, texts)
    with contextlib.suppress(FileNotFoundError):  # no teacher built: no PLL cost
        report["latency"]["pll_teacher_cpu_ms"] = pll_cpu_cost(lists["median"])
    if pyramid:
        report["pyramid"] = {}
        for name in pyramid:
            with contextlib.suppress(FileNotFoundError):
                report["pyramid"][name] = {
                    "keep": json.loads((WORK_STUDENTS / name / "config.json").read_text()).get(
                        "keep"
                    ),
                    "latency_median_list": torch_latency(name, lists["median"]),
                    "latency_longest_list": torch_latency(name, lists["longest"]),
                    **{k: report["ablation"][name][k] for k in ("wer_rescored", "gap_closed_pct")},
                }
    report["latency"]["load_average_after"] = round(os.getloadavg()[0], 2)
    fixtures = DOCS / "rescoring_fixtures.json"  # written by python -m lab.rescoring.fixtures_check
    if fixtures.is_file():
        report["fixtures"] = {
            k: v for k, v in json.loads(fixtures.read_text()).items() if k != "rows"
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    )
    args.out.with_suffix(".md").write_text(render(report))
    print(render(report))


def _row(name: str, s: dict, extra: tuple = ()) -> str:
    """A table row; `extra` cells go between the name and the figures."""
    return (
        f"| {' | '.join(str(x) for x in (name, *extra))} | {s['utterances']} | {s['wer_first_pass']} | {s['wer_rescored']} | "
        f"{s['wer_oracle']} | {s['relative_wer_reduction_pct']} | {s['gap_closed_pct']} | "
        f"{s['entity_word_acc_first_pass']} -> {s['entity_word_acc_rescored']} | "
        f"{s['fixed']} / {s['broken']} |"
    )


HEADER = (
    "| system | lists | WER 1st pass | WER rescored | WER oracle | rel. reduction % | "
    "gap closed % | entity words % | fixed / broken |\n|---|---|---|---|---|---|---|---|---|"
)


COUNTS_HEADER = HEADER.replace("| system |", "| system | weights (dev) | dev WER |").replace(
    "|---|", "|---|---|---|", 1
)


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _machine_line(m: dict | str) -> str:
    """The machine and where the n-best lists were decoded (older reports: one string)."""
    if isinstance(m, str):
        return m
    return f"{describe_machine(m)}; {m['first_pass']}" if "first_pass" in m else describe_machine(m)


def render(r: dict) -> str:
    lines = [
        "# RescoreBERT second pass: evaluation report",
        "",
        "Generated by `python -m lab.rescoring.evaluate` (see rescoring/models/rescorer/card.json for",
        "the commands that rebuild the corpus and the model). Machine: "
        + _machine_line(r["machine"])
        + ".",
        "",
        f"Data: {r['data']}",
        "",
        "## Ablation on the test split (lambda tuned on dev for each system)",
        "",
        HEADER,
    ]
    for name, s in r["ablation"].items():
        lines.append(_row(name, s))
    if r.get("counts"):
        lines += [
            "",
            "## Final-score counts (rescoring.combine), ONNX rescorer, weights tuned on dev",
            "",
            "words: word insertion penalty; catalog: bonus per word inside a catalog phrase of "
            "the store's gazetteer (built from the inventory, as the server does).",
            "",
            COUNTS_HEADER,
        ]
        for name, s in r["counts"].items():
            weights = ", ".join(f"{k} {v}" for k, v in s["weights"].items())
            lines.append(_row(name, s, extra=(weights, s["dev_wer"])))
    d = r["deployed"]
    weights = ", ".join(f"{k} {v}" for k, v in d["weights"].items())
    lines += [
        "",
        f"## {d.get('role', 'deployed').capitalize()} ONNX model ({d['student']}, int8, "
        f"{weights}, {d.get('dir', 'rescoring/models/rescorer')})",
        "",
        HEADER,
        _row("all", d["test"]),
    ]
    lines += [_row(k, v) for k, v in d["per_language"].items()]
    lines += [_row(k, v) for k, v in d["per_voice"].items()]
    lat = r["latency"]
    lines += [
        "",
        "## Latency (8 hypotheses, 2 threads)",
        "",
        "The whole second pass of one list (`Reranker.rank`: tokenizing, one batched ONNX call, "
        "the counts, the re-sort), and the ONNX call alone, timed in the same run. "
        f"Load average {lat['load_average_before']} before, {lat['load_average_after']} after "
        "(2 cores shared with other jobs).",
        "",
        "| list | model | median ms | p90 ms | ONNX call alone, median ms | ONNX bytes |",
        "|---|---|---|---|---|---|",
    ]
    for key in ("median", "longest"):
        for name, x in (
            ("deployed", lat[key]),
            ("previous (v1, 4 layers, 48 tokens)", lat[key].get("baseline_v1")),
        ):
            if x is None:
                continue
            call = x.get("onnx_call_only", {}).get("median_ms", "-")
            lines.append(
                f"| {key} | {name} | {x['median_ms']} | {x['p90_ms']} | {call} "
                f"| {x['onnx_bytes']} |"
            )
    if "pll_teacher_cpu_ms" in lat:
        lines += ["", f"PLL teacher scored directly: {lat['pll_teacher_cpu_ms']} ms (median list)."]
    if r.get("pyramid"):
        lines += [
            "",
            "## Pyramid-BERT vs plain encoder (PyTorch fp32, 2 threads, 8 hypotheses)",
            "",
            "| student | kept fraction per layer | median list ms | longest list ms | "
            "test WER rescored | gap closed % |",
            "|---|---|---|---|---|---|",
        ]
        for name, x in r["pyramid"].items():
            lines.append(
                f"| {name} | {x['keep'] or 'all (plain)'} | "
                f"{x['latency_median_list']['median_ms']} | "
                f"{x['latency_longest_list']['median_ms']} | {x['wer_rescored']} | "
                f"{x['gap_closed_pct']} |"
            )
    down = r.get("downstream")
    if down:
        lines += [
            "",
            f"## Downstream NLU on the test lists ({down['parser']})",
            "",
            "Entity = label + normalized words of a gold entity of the reference.",
            "",
            "| text | language | intent accuracy | entity P | entity R | entity F1 |",
            "|---|---|---|---|---|---|",
        ]
        for key in ("first_pass", "rescored", "oracle", "reference"):
            for lang, x in down[key].items():
                lines.append(
                    f"| {key} | {lang} | {x['intent_accuracy']} | {x['entity_precision']} | "
                    f"{x['entity_recall']} | {x['entity_f1']} |"
                )
    fx = r.get("fixtures")
    if fx:
        lines += [
            "",
            "## Audio fixtures through `assistant transcribe` (python -m lab.rescoring.fixtures_check)",
            "",
            f"{fx['fixtures']} fixtures; {fx['first_pass_wrong_right_reading_in_8best']} have a "
            f"wrong first pass and an error-free reading in the 8-best. The rescored `text` fixes "
            f"**{fx['fixed']}** of them and breaks **{fx['broken']}** right first passes; word "
            f"errors {fx['errors_first_pass']} -> {fx['errors_rescored']} "
            "(docs/rescoring_fixtures.json).",
        ]
    lines += [
        "",
        "fixed: first pass worse than the oracle, rescored as good as the oracle; broken: first "
        "pass as good as the oracle, rescored worse.",
        "",
        "## Targets of issue 6 (computed from the tables above)",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for lang, x in d["per_language"].items():
        v = x["relative_wer_reduction_pct"]
        lines.append(f"| >= 15% relative WER reduction, {lang} | {v}% | {_yes(v >= 15)} |")
    v = d["test"]["gap_closed_pct"]
    lines.append(f"| >= 40% of the first-pass-to-oracle gap closed | {v}% | {_yes(v >= 40)} |")
    for key in ("median", "longest"):
        v = lat[key]["median_ms"]
        lines.append(
            f"| <= 10 ms for 8 hypotheses, 2 threads ({key} list) | {v} ms | {_yes(v <= 10)} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
