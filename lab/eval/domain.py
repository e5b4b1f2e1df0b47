"""Domain evaluation, every number of docs/domain_eval.{json,md} from one command:

    python -m lab.eval.domain --corpus build/corpus/test.jsonl --db URL \
        --sample 0 --out docs/domain_eval

1. Answer accuracy on the corpus test split, per language, for the gazetteer baseline
   parser, the learned parser (when installed) and gold spans. A product question
   (find_product / check_stock with gold "skus") counts as answered right when the intent
   is right and the top linked SKU is in the gold SKU set ("sku" accuracy; a query naming
   only a product type lists every matching SKU, so any of them is right) or in the gold
   product line ("line" accuracy). Other intents count when the intent is right. "gold
   spans" feeds the gold intent and entities to the linker: the linker's own accuracy.
2. Linking accuracy on ASR-noisy spans from real Whisper n-best lists of the synthetic
   audio fixtures (see lab.eval.asr_linking).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

from assistant.inventory import Inventory
from assistant.linker import Linker
from assistant.pipeline import load_parser
from lab.eval.asr_linking import decode_fixtures, evaluate_asr_linking, load_fixtures
from nlu.schema import Entity, NluResult, Parser

PRODUCT_INTENTS = ("find_product", "check_stock")
PARSE_BATCH = 64

log = logging.getLogger(__name__)


def _parse_all(parser: Parser, texts: list[str], name: str) -> list[NluResult]:
    """Parse in batches (the learned parser is much faster batched); tqdm per batch."""
    out: list[NluResult] = []
    for i in tqdm(range(0, len(texts), PARSE_BATCH), desc=f"parsing ({name})", unit="batch"):
        out.extend(parser.parse_batch(texts[i : i + PARSE_BATCH]))
    return out


def load_parsers(inventory: Inventory, learned: bool = True) -> dict[str, Parser]:
    """{"baseline": gazetteer parser} plus {"learned": student} when one is installed."""
    parsers = {"baseline": load_parser(inventory, prefer_learned=False)}
    if learned:
        try:
            from nlu.runtime import load_default_parser

            student = load_default_parser()
        except ImportError as error:
            log.info("no learned parser (%s)", error)
            student = None
        if student is not None:
            parsers["learned"] = student
    return parsers


def _gold_nlu(row: dict) -> NluResult:
    ents = tuple(Entity(e["label"], e["text"], e["start"], e["end"]) for e in row["entities"])
    return NluResult(row["text"], row["language"], row["intent"], 1.0, ents)


def evaluate(rows: list[dict], linker: Linker, parsers: dict[str, Parser]) -> dict:
    """Per "system/lang": intent, answer and product-link accuracy (see module docstring).

    parsers: name -> parser; "gold_spans" (gold intent and entities) is always added.
    """
    products = linker.inventory.products()
    stats: dict = defaultdict(lambda: defaultdict(int))
    parsed = {
        name: _parse_all(parser, [r["text"] for r in rows], name)
        for name, parser in parsers.items()
    }
    for i, row in enumerate(tqdm(rows, desc="linking", unit="query")):
        lang = row["language"]
        product_q = row["intent"] in PRODUCT_INTENTS and (row.get("skus") or row.get("line"))
        gold_skus = set(row.get("skus") or [])
        for system in (*parsers, "gold_spans"):
            key = (system, lang)
            nlu = parsed[system][i] if system in parsed else _gold_nlu(row)
            intent_ok = nlu.intent == row["intent"]
            s = stats[key]
            s["n"] += 1
            s["intent_ok"] += intent_ok
            if not product_q:
                s["answer_ok"] += intent_ok
                s["answer_line_ok"] += intent_ok
                continue
            s["n_product"] += 1
            best = linker.link(nlu).best if nlu.intent in PRODUCT_INTENTS else None
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
    # gold SKU sets of type-only queries span several lines: "line" is stricter than "sku" there
    product_rows = [r for r in rows if r["intent"] in PRODUCT_INTENTS and r.get("skus")]
    several = sum(
        len({products[s].line for s in r["skus"] if s in products}) > 1 for r in product_rows
    )
    out["_gold_sku_sets_spanning_several_lines"] = round(several / max(len(product_rows), 1), 4)
    return out


def _corpus_rows(path: str, sample: int, seed: int) -> list[dict]:
    corpus = Path(path)
    if not corpus.is_file():
        raise SystemExit(f"{corpus}: no such corpus; build it with scripts/build_corpus.sh")
    rows = [
        json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    if sample and len(rows) > sample:
        rows = random.Random(seed).sample(rows, sample)
    return rows


def run_evaluation(
    rows: list[dict],
    inventory: Inventory,
    fixtures: str | None,
    nbest_cache: str | None,
    learned: bool = True,
) -> dict:
    """Both evaluations; the "corpus" and (with fixtures) "asr_linking" sections of the report."""
    parsers = load_parsers(inventory, learned)
    linker = Linker(inventory)
    t = time.perf_counter()
    report: dict = {
        "parsers": sorted(parsers),
        "corpus_results": evaluate(rows, linker, parsers),
        "corpus_seconds": 0.0,
    }
    report["corpus_seconds"] = round(time.perf_counter() - t, 1)
    if fixtures:
        fixture_rows = load_fixtures(fixtures)
        t = time.perf_counter()
        nbests, decode_info = decode_fixtures(fixture_rows, nbest_cache)
        summary, details = evaluate_asr_linking(fixture_rows, nbests, linker, parsers)
        report["asr_linking"] = {
            "fixtures": fixtures,
            "decode": decode_info,
            "seconds": round(time.perf_counter() - t, 1),
            "results": summary,
            "details": details,
        }
    return report


def _markdown(report: dict) -> list[str]:
    results = report["corpus_results"]
    lines = [
        "# Domain evaluation",
        "",
        f"Regenerate every number: `{report['command']}`  ",
        f"Machine: {report['machine']}; run {report['date']}; catalog {report['catalog_version']}; "
        f"parsers: {', '.join(report['parsers'])}.",
        "",
        "## 1. Answer accuracy on the corpus test split",
        "",
        f"{report['sample']} queries (seed {report['seed']}) of `{report['corpus']}`, "
        f"{report['corpus_seconds']} s.",
        "",
        "| system / language | queries | product queries | intent acc | answer acc (SKU) | answer acc (line) "
        "| product link acc (SKU) | product link acc (line) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, r in results.items():
        if key.startswith("_"):
            continue
        lines.append(
            f"| {key} | {r['queries']} | {r['product_queries']} | {r['intent_accuracy']:.3f} | "
            f"{r['answer_accuracy_sku']:.3f} | {r['answer_accuracy_line']:.3f} | "
            f"{r['product_link_accuracy_sku']:.3f} | {r['product_link_accuracy_line']:.3f} |"
        )
    lines += [
        "",
        f"Share of gold SKUs present in this catalog: {results['_gold_skus_in_catalog']:.3f} "
        "(below 1 when the corpus was built from another catalog version: rebuild it with "
        "scripts/build_corpus.sh).",
        "",
        "- baseline = gazetteer/rule parser (nlu.baseline) + linker; learned = ONNX student "
        "(nlu.runtime), when installed; gold_spans = gold intent and entities + linker.",
        "- SKU right = the top linked SKU is in the query's gold SKU set. A query naming only a "
        'product type or a brand ("Nike socks") lists every SKU that fits it, so any of them is '
        "right; a query naming size/colour lists only the SKUs with that size/colour.",
        "- line right = the top linked SKU belongs to the gold product line (the one line the "
        "corpus generator drew). Stricter than SKU right for type-only queries: "
        f"{results['_gold_sku_sets_spanning_several_lines']:.3f} of the product queries have a gold "
        'SKU set spanning several lines ("where are the socks"), where any of those lines is a '
        'right answer but only the drawn one counts for "line". The SKU columns are the headline.',
        "- Answer accuracy counts every query (non-product intents: intent right); product link "
        "accuracy only product queries (with the system's own intent: a product query parsed "
        "as another intent is not linked and counts as wrong).",
    ]
    asr = report.get("asr_linking")
    if asr:
        info = asr["decode"]
        lines += [
            "",
            "## 2. Linking accuracy on ASR-noisy spans (synthetic audio fixtures)",
            "",
            f"`{asr['fixtures']}`: Whisper base (CTranslate2, CPU int8, n-best 5, language "
            f"detected among en/es), {info['clips']} clips ({info['decoded']} decoded now, "
            f"{info['from_cache']} from the n-best cache), {asr['seconds']} s. Scored: the "
            "fixtures whose reference names a BRAND or PRODUCT.",
            "",
            "| method / language | fixtures | line accuracy |",
            "| --- | --- | --- |",
        ]
        for key, r in asr["results"].items():
            lines.append(f"| {key} | {r['fixtures']} | {r['line_accuracy']:.3f} |")
        lines += [
            "",
            "- <parser>/first_pass: the parser's spans on the first-pass best hypothesis, "
            "then Linker.link; <parser>/nbest: Linker.link_nbest over every hypothesis "
            "(posterior-weighted); gold_spans: gold spans of the reference text.",
            "- Gold lines come from the catalog, not from the linker: lines of the named brand "
            "(name or brand alias equal to the gold BRAND words, case/accent-folded) whose "
            "product name equals the gold PRODUCT words, else whose product alias does; no "
            "PRODUCT words: any line of the brand. A hit: the top linked line is a gold line.",
            "- Small sample (one clip per query, TTS voices): a hit or miss moves a cell by "
            "1/9-1/10. Per-clip readings and links are in domain_eval.json (asr_linking.details).",
            "",
            "| clip | first-pass best | gold lines | "
            + " | ".join(sorted({m for d in asr["details"] for m in d["linked"]}))
            + " |",
            "| --- | --- | --- | "
            + " | ".join("---" for _ in sorted({m for d in asr["details"] for m in d["linked"]}))
            + " |",
        ]
        methods = sorted({m for d in asr["details"] for m in d["linked"]})
        for d in asr["details"]:
            gold = set(d["gold_lines"])
            cells = [
                ("✓ " if d["linked"].get(m) in gold else "✗ ") + str(d["linked"].get(m))
                for m in methods
            ]
            lines.append(
                f"| {Path(d['file']).stem} | {d['first_pass']} | {', '.join(d['gold_lines'])} | "
                + " | ".join(cells)
                + " |"
            )
    return lines


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
    ap.add_argument(
        "--fixtures",
        default="tests/fixtures/fixtures.jsonl",
        help="audio fixtures for ASR-noisy linking ('' to skip)",
    )
    ap.add_argument(
        "--nbest-cache",
        default="build/domain_eval/fixture_nbest.json",
        help="decoded n-best lists of the fixtures (rebuilt from audio when absent)",
    )
    ap.add_argument("--no-learned", action="store_true", help="skip the learned parser")
    ap.add_argument("--out", default="docs/domain_eval", help="writes OUT.json and OUT.md")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = _corpus_rows(args.corpus, args.sample, args.seed)
    inventory = Inventory(args.db)
    report = {
        "command": "python -m lab.eval.domain "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "corpus": args.corpus,
        "sample": len(rows),
        "seed": args.seed,
        "catalog_version": inventory.check(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores "
        "(dev machine: 2-core x86-64 CPU shared with other jobs, no GPU)",
        "date": dt.date.today().isoformat(),
    }
    report.update(
        run_evaluation(
            rows, inventory, args.fixtures or None, args.nbest_cache, not args.no_learned
        )
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    lines = _markdown(report)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
