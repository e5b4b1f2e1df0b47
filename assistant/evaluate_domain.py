"""Answer accuracy on the corpus test split: baseline parser vs gold spans, per language.

    python -m assistant.evaluate_domain --corpus build/corpus/test.jsonl --db URL \
        --sample 2000 --out docs/domain_eval

A product question (find_product / check_stock with gold "skus") counts as answered right
when the intent is right and the linked SKU is one of the gold SKUs ("sku" accuracy) or of
the gold product line ("line" accuracy: survives a catalog rebuild that renumbers SKUs).
Other intents count when the intent is right. "gold spans" feeds the gold intent and
entities to the linker: the linker's own accuracy, free of parser errors.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

from assistant.answer import build_assistant
from nlu.schema import Entity, NluResult

PRODUCT_INTENTS = ("find_product", "check_stock")


def _gold_nlu(row: dict) -> NluResult:
    ents = tuple(Entity(e["label"], e["text"], e["start"], e["end"]) for e in row["entities"])
    return NluResult(row["text"], row["language"], row["intent"], 1.0, ents)


def evaluate(rows: list[dict], bundle) -> dict:
    products = bundle.inventory.products()
    stats: dict = defaultdict(lambda: defaultdict(int))
    for row in tqdm(rows, desc="evaluating", unit="query"):
        lang = row["language"]
        product_q = row["intent"] in PRODUCT_INTENTS and (row.get("skus") or row.get("line"))
        gold_skus = set(row.get("skus") or [])
        for system in ("baseline", "gold_spans"):
            key = (system, lang)
            nlu = bundle.parser.parse(row["text"]) if system == "baseline" else _gold_nlu(row)
            intent_ok = nlu.intent == row["intent"]
            s = stats[key]
            s["n"] += 1
            s["intent_ok"] += intent_ok
            if not product_q:
                s["answer_ok"] += intent_ok
                s["answer_line_ok"] += intent_ok
                continue
            s["n_product"] += 1
            best = bundle.linker.link(nlu).best if nlu.intent in PRODUCT_INTENTS else None
            sku_ok = bool(best and best.sku in gold_skus)
            line_ok = bool(best and best.product.line == row.get("line"))
            s["link_sku_ok"] += sku_ok
            s["link_line_ok"] += line_ok
            s["answer_ok"] += intent_ok and sku_ok
            s["answer_line_ok"] += intent_ok and line_ok
    out = {}
    for (system, lang), s in sorted(stats.items()):
        out[f"{system}/{lang}"] = {
            "queries": s["n"],
            "product_queries": s["n_product"],
            "intent_accuracy": round(s["intent_ok"] / max(s["n"], 1), 4),
            "answer_accuracy_sku": round(s["answer_ok"] / max(s["n"], 1), 4),
            "answer_accuracy_line": round(s["answer_line_ok"] / max(s["n"], 1), 4),
            "product_link_accuracy_sku": round(s["link_sku_ok"] / max(s["n_product"], 1), 4),
            "product_link_accuracy_line": round(s["link_line_ok"] / max(s["n_product"], 1), 4),
        }
    known = sum(1 for r in rows for s in r.get("skus") or [] if s in products)
    total = sum(len(r.get("skus") or []) for r in rows)
    out["_gold_skus_in_catalog"] = round(known / max(total, 1), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--corpus", default="build/corpus/test.jsonl")
    ap.add_argument(
        "--db",
        default=None,
        help="inventory URL (default: $RETAIL_ASSISTANT_DB or the SQLite file)",
    )
    ap.add_argument(
        "--sample", type=int, default=2000, help="queries sampled from the split (0: all)"
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default="docs/domain_eval", help="writes OUT.json and OUT.md")
    args = ap.parse_args(argv)
    rows = [
        json.loads(line)
        for line in Path(args.corpus).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    if args.sample and len(rows) > args.sample:
        rows = random.Random(args.seed).sample(rows, args.sample)
    bundle = build_assistant(args.db, prefer_learned=False)
    t = time.perf_counter()
    results = evaluate(rows, bundle)
    elapsed = time.perf_counter() - t
    report = {
        "command": "python -m assistant.evaluate_domain "
        + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
        "corpus": args.corpus,
        "sample": len(rows),
        "seed": args.seed,
        "catalog_version": bundle.inventory.check(),
        "machine": f"{platform.machine()} {platform.processor() or ''} (dev machine: 2-core x86-64 CPU, no GPU)".strip(),
        "seconds": round(elapsed, 1),
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    lines = [
        "# Domain evaluation: answer accuracy on the corpus test split",
        "",
        f"Command: `{report['command']}`  ",
        f"Catalog {report['catalog_version']}, {report['sample']} queries sampled (seed {args.seed}) from `{args.corpus}`, "
        f"{report['machine']}, {report['seconds']} s.",
        "",
        "| system / language | queries | intent acc | answer acc (SKU) | answer acc (line) | product link acc (SKU) | product link acc (line) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, r in results.items():
        if key.startswith("_"):
            continue
        lines.append(
            f"| {key} | {r['queries']} | {r['intent_accuracy']:.3f} | {r['answer_accuracy_sku']:.3f} | {r['answer_accuracy_line']:.3f} | "
            f"{r['product_link_accuracy_sku']:.3f} | {r['product_link_accuracy_line']:.3f} |"
        )
    lines += [
        "",
        f"Share of gold SKUs present in this catalog: {results['_gold_skus_in_catalog']:.3f} (below 1 when the corpus was built "
        "from another catalog version; the line columns do not depend on it).",
        "",
        "baseline = gazetteer/rule parser (nlu.baseline) + linker; gold_spans = gold intent and entities + linker.",
        "Answer accuracy counts every query (non-product intents: intent right); product link accuracy only product queries.",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
