"""Pick between two second passes on dev, with a paired test:
`python -m lab.rescoring.compare --candidate DIR [--candidate-features words catalog]`
-> docs/rescoring_selection.{json,md}.

A second pass is an ONNX rescorer plus the counts its final score uses (rescoring.combine:
none, words, catalog). Both (the committed one and a candidate: another export, or the same
model with other counts) score the dev and test n-best lists. Each gets its own weights tuned
on dev (lab.rescoring.tune). The selection uses dev only:

- dev WER of each at its weights;
- a paired comparison of the per-list word errors on dev, with the weights cross-fitted (each
  half of dev scored at the weights tuned on the other half, so neither system is tested on the
  lists its weights were tuned on): sign test on the lists where the two choices differ in
  errors, and a paired bootstrap (lists resampled, 10,000 draws) of the corpus-WER difference;
- decision: the candidate replaces the deployed model only when its dev WER is lower *and*
  the paired bootstrap puts the difference below zero with >= 95% probability (one-sided
  p < 0.05); otherwise the deployed model stays (a tie keeps the incumbent).

Test figures (first pass, rescored, oracle, relative reduction per language, gap closed) are
reported for both, never used to select or tune. `--write-weights` stores the dev-tuned weights
in the kept model's config.json. The catalog counts use the gazetteer of the inventory
(`--db`, default the SQLite file; the curated lists when it is down), as the server does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import zlib
from pathlib import Path

import numpy as np

from lab import REPO  # noqa: E402
from lab.rescoring.data import NBestExample, load_split, pick, wer
from lab.rescoring.tune import choose, tune
from rescoring.combine import FEATURES, Combination, ListFeatures, list_features

DOCS = REPO / "docs"


def onnx_lists(model_dir: Path, examples: list[NBestExample]) -> list[np.ndarray]:
    from rescoring.runtime import Reranker

    reranker = Reranker(model_dir, threads=1)
    return [reranker.score_texts(list(e.texts)) for e in examples]


def per_list_errors(examples: list[NBestExample], chosen: list[int]) -> np.ndarray:
    return np.asarray([float(e.errors[i]) for e, i in zip(examples, chosen, strict=True)])


def cross_fitted_errors(
    examples: list[NBestExample],
    scores: list[np.ndarray],
    features: list[ListFeatures],
    use: tuple[str, ...],
) -> np.ndarray:
    """Per-list word errors, each half of the lists at the weights tuned on the other half
    (halves by a hash of the list id: fixed, independent of the model)."""
    half = np.asarray([zlib.crc32(e.id.encode()) % 2 for e in examples])
    out = np.zeros(len(examples))
    for h in (0, 1):
        fit = [k for k in range(len(examples)) if half[k] != h]
        held = [k for k in range(len(examples)) if half[k] == h]
        combination, _ = tune(
            [examples[k] for k in fit], [scores[k] for k in fit], [features[k] for k in fit], use
        )
        held_examples = [examples[k] for k in held]
        chosen = choose(
            held_examples, [scores[k] for k in held], [features[k] for k in held], combination
        )
        out[held] = per_list_errors(held_examples, chosen)
    return out


def sign_test(a: np.ndarray, b: np.ndarray) -> dict:
    """Lists where a has fewer / more word errors than b; two-sided exact binomial p."""
    better, worse = int((a < b).sum()), int((a > b).sum())
    n = better + worse
    k = min(better, worse)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    return {"candidate_better": better, "candidate_worse": worse, "p_two_sided": round(p, 4)}


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, words: np.ndarray, draws: int = 10_000, seed: int = 13
) -> dict:
    """Corpus-WER difference a - b (points) over lists resampled with replacement."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(draws, len(a)))
    w = words[idx].sum(1)
    diff = 100.0 * ((a[idx].sum(1) - b[idx].sum(1)) / w)
    return {
        "wer_difference": round(float(100.0 * (a.sum() - b.sum()) / words.sum()), 3),
        "ci95": [
            round(float(np.percentile(diff, 2.5)), 3),
            round(float(np.percentile(diff, 97.5)), 3),
        ],
        "p_candidate_not_better": round(float((diff >= 0).mean()), 4),
        "draws": draws,
    }


def split_figures(
    examples: list[NBestExample],
    scores: list[np.ndarray],
    features: list[ListFeatures],
    combination: Combination,
) -> dict:
    """First pass, rescored and oracle WER on test; relative reduction and gap closed, overall
    and per language (reported only)."""

    def block(ex, sc, ft) -> dict:
        first = wer(ex, pick(ex, None, 0.0))
        resc = wer(ex, choose(ex, sc, ft, combination))
        oracle = wer(ex, [e.oracle for e in ex])
        return {
            "lists": len(ex),
            "wer_first_pass": round(first, 2),
            "wer_rescored": round(resc, 2),
            "wer_oracle": round(oracle, 2),
            "relative_wer_reduction_pct": round(100 * (first - resc) / first, 1),
            "gap_closed_pct": round(100 * (first - resc) / (first - oracle), 1)
            if first > oracle
            else 0.0,
        }

    out = {"all": block(examples, scores, features)}
    for lang in sorted({e.language for e in examples}):
        idx = [k for k, e in enumerate(examples) if e.language == lang]
        out[lang] = block(
            [examples[k] for k in idx], [scores[k] for k in idx], [features[k] for k in idx]
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.rescoring.compare", description=__doc__)
    parser.add_argument("--candidate", type=Path, default=None, help="default: the deployed one")
    parser.add_argument("--deployed", type=Path, default=None, help="default: the committed one")
    for side in ("candidate", "deployed"):
        parser.add_argument(
            f"--{side}-features",
            nargs="*",
            choices=FEATURES,
            default=None,
            help="counts its final score may use (default: those its config.json uses)",
        )
    parser.add_argument("--db", default=None, help="inventory URL for the catalog gazetteer")
    parser.add_argument("--out", type=Path, default=DOCS / "rescoring_selection")
    parser.add_argument(
        "--write-weights",
        "--write-lambda",
        action="store_true",
        help="store the dev-tuned weights in the kept model's config.json",
    )
    args = parser.parse_args(argv)
    from assistant.gazetteer import build_gazetteer
    from assistant.inventory import Inventory
    from rescoring.runtime import DEFAULT_MODEL_DIR

    dirs = {"deployed": args.deployed or DEFAULT_MODEL_DIR}
    dirs["candidate"] = args.candidate or dirs["deployed"]
    dev, test = load_split("dev"), load_split("test")
    gazetteer = build_gazetteer(Inventory(args.db))
    features = {
        "dev": [list_features(e.texts, gazetteer) for e in dev],
        "test": [list_features(e.texts, gazetteer) for e in test],
    }
    load = os.getloadavg()[0]
    first_dev = pick(dev, None, 0.0)
    words = np.asarray([e.ref_words for e in dev], dtype=np.float64)
    report: dict = {
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores shared with other jobs "
        f"(load average {load:.1f} at start)",
        "dev_lists": len(dev),
        "dev_languages": {g: sum(e.language == g for e in dev) for g in ("en", "es")},
        "test_lists": len(test),
        "dev_first_pass_wer": round(wer(dev, first_dev), 2),
        "dev_oracle_wer": round(wer(dev, [e.oracle for e in dev]), 2),
        "models": {},
    }
    errors, tuned = {}, {}
    for key, model_dir in dirs.items():
        config = json.loads((model_dir / "config.json").read_text())
        use = getattr(args, f"{key}_features")
        use = tuple(use) if use is not None else Combination.from_config(config).features
        dev_scores = onnx_lists(model_dir, dev)
        tuned[key], dev_wer = tune(dev, dev_scores, features["dev"], use)
        errors[key] = cross_fitted_errors(dev, dev_scores, features["dev"], use)
        report["models"][key] = {
            "dir": str(model_dir.resolve().relative_to(REPO))
            if model_dir.resolve().is_relative_to(REPO)
            else str(model_dir),
            "student": config.get("student"),
            "features": list(use),
            "weights_before": Combination.from_config(config).to_config(),
            "weights_dev": tuned[key].to_config(),
            "dev_wer": round(dev_wer, 2),
            "dev_wer_cross_fitted": round(100 * errors[key].sum() / words.sum(), 2),
            "test": split_figures(test, onnx_lists(model_dir, test), features["test"], tuned[key]),
        }
    cand, dep = errors["candidate"], errors["deployed"]
    report["paired_dev"] = {
        "sign_test": sign_test(cand, dep),
        "bootstrap": paired_bootstrap(cand, dep, words),
    }
    wins = (
        report["models"]["candidate"]["dev_wer"] < report["models"]["deployed"]["dev_wer"]
        and report["paired_dev"]["bootstrap"]["p_candidate_not_better"] < 0.05
    )
    report["decision"] = "candidate" if wins else "deployed"
    if args.write_weights:
        kept = "candidate" if wins else "deployed"
        path = dirs[kept] / "config.json"
        config = json.loads(path.read_text())
        config.pop("lambda_source", None)  # older configs: lambda only
        config.update(tuned[kept].to_config())
        config["dev_wer"] = report["models"][kept]["dev_wer"]
        config["dev_lists"] = len(dev)
        config["weights_source"] = "python -m lab.rescoring.compare (ONNX scores, dev lists)"
        path.write_text(json.dumps(config, indent=2) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(render(report))
    print(render(report))


def render(r: dict) -> str:
    lines = [
        "# Rescorer selection on dev (`python -m lab.rescoring.compare`)",
        "",
        f"Machine: {r['machine']}. Dev: {r['dev_lists']} lists ({r['dev_languages']}), first "
        f"pass {r['dev_first_pass_wer']}, oracle {r['dev_oracle_wer']}. Test ({r['test_lists']} "
        "lists, held-out voices and templates) is reported, never used to select or tune.",
        "",
        "| system | student | counts | weights (dev) | dev WER | dev WER, cross-fitted weights "
        "| test WER first / rescored / oracle | test rel. reduction all / en / es "
        "| test gap closed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, m in r["models"].items():
        t = m["test"]
        weights = ", ".join(f"{k} {v}" for k, v in m["weights_dev"].items())
        lines.append(
            f"| {key} ({m['dir']}) | {m['student']} | {', '.join(m['features']) or 'none'} "
            f"| {weights} | {m['dev_wer']} "
            f"| {m['dev_wer_cross_fitted']} | {t['all']['wer_first_pass']} / "
            f"{t['all']['wer_rescored']} / {t['all']['wer_oracle']} | "
            f"{t['all']['relative_wer_reduction_pct']}% / {t['en']['relative_wer_reduction_pct']}%"
            f" / {t['es']['relative_wer_reduction_pct']}% | {t['all']['gap_closed_pct']}% |"
        )
    s, b = r["paired_dev"]["sign_test"], r["paired_dev"]["bootstrap"]
    lines += [
        "",
        "Paired on dev (per-list word errors, cross-fitted weights), candidate minus deployed:",
        f"- sign test: candidate better on {s['candidate_better']} lists, worse on "
        f"{s['candidate_worse']} (two-sided p = {s['p_two_sided']});",
        f"- paired bootstrap ({b['draws']} draws): WER difference {b['wer_difference']} points, "
        f"95% interval {b['ci95']}, P(candidate not better) = {b['p_candidate_not_better']}.",
        "",
        f"Decision (lower dev WER and one-sided bootstrap p < 0.05, else the incumbent stays): "
        f"**{r['decision']}**.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
