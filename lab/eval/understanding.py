"""What was meant from what was heard (issue 16): answer accuracy on held-out phrasings.

    python -m lab.eval.heldout_nbest --per-language 60      # once: held-out audio -> n-best
    python -m lab.eval.understanding --out docs/understanding_eval

Sets (all from the corpus *test* split: templates, product lines and first names train never
saw; data/corpus_sample/test_sample.jsonl):
- gold text, as spoken: the queries as the corpus renders them;
- gold text, as written: each product query with its brand/product/size/colour words replaced
  by one gold SKU's catalog name as printed ("Gildan T-Shirts, Gray, Medium"), so the exact
  SKU is the only right answer;
- n-best from held-out audio (lab.eval.heldout_nbest: held-out voices and conditions, the
  deployed first pass), rescored by the deployed second pass, answered two ways: `top1` (the
  top hypothesis, the n-best only as a fallback when it links nothing: the behaviour before)
  and `joint` (every hypothesis parsed in one batch, intent and SKU decided together).

A product query is right when the intent is right and the first product of the answer is in
the gold SKU set (or, for a SKU the catalog lacks, an honest not_found). A wrong-product
assertion: a location/stock answer whose first product is not in the gold SKU set (the
associate walks to the wrong shelf). Asking back is neither right nor a wrong assertion.
Schedules: right when the linked person (first name) is in the answer; top sellers and
schedules by department: right department.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import random
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from lab import REPO
from lab.report import machine_info
from textnorm import fold

log = logging.getLogger(__name__)
ROWS = REPO / "data" / "corpus_sample" / "test_sample.jsonl"
NBEST = REPO / "build" / "understanding" / "heldout_nbest.json"


def as_written(rows: list[dict], products: dict, seed: int = 7) -> list[dict]:
    """Product queries with the product words replaced by a gold SKU's catalog name
    (lab.nlu.augment.with_catalog_name); scored on answers, so the spans are dropped."""
    from lab.nlu.augment import with_catalog_name

    rng = random.Random(seed)
    out = []
    for r in rows:
        skus = sorted(s for s in r.get("skus") or [] if s in products)
        if not skus or with_catalog_name(r, products[skus[0]]) is None:
            continue
        written = with_catalog_name(r, products[rng.choice(skus)])
        out.append({**written, "entities": []})
    return out


def classify(row: dict, answer, inventory) -> str:
    """right | intent | wrong_product | wrong_variant | asked | not_found | person | other."""
    if answer is None:
        return "other"
    if answer.intent != row["intent"]:
        return "intent"
    if row["intent"] in ("find_product", "check_stock") and row.get("skus"):
        gold = set(row["skus"])
        if answer.kind in ("location", "stock") and answer.products:
            first = answer.products[0].sku
            if first in gold:
                return "right"
            lines = {inventory.product(s).line for s in gold if inventory.product(s)}
            p = inventory.product(first)
            return "wrong_variant" if p is not None and p.line in lines else "wrong_product"
        return "asked" if answer.kind == "ambiguous" else "not_found"
    if row["intent"] == "out_of_scope":
        return "right"
    gold = {e["label"]: e["text"] for e in row["entities"]}
    if "PERSON" in gold:
        first = fold(gold["PERSON"].split()[0])
        said = fold(answer.text).replace(",", " ").replace(".", " ").split()
        return "right" if answer.kind == "schedule" and first in said else "person"
    if "DEPARTMENT" in gold:
        from lab.bench.hear_the_store import _department_id

        want = _department_id(gold["DEPARTMENT"], inventory)
        return "right" if want and answer.details.get("department") == want else "other"
    return "right"


def summarize(records: list[dict]) -> dict:
    out: dict = {}
    groups = defaultdict(list)
    for r in records:
        groups[(r["set"], r["system"], r["language"])].append(r)
        groups[(r["set"], r["system"], r["language"], r["intent"])].append(r)
    for key, rs in sorted(groups.items()):
        classes = defaultdict(int)
        for r in rs:
            classes[r["class"]] += 1
        out["/".join(key)] = {
            "queries": len(rs),
            "answer_accuracy": round(classes["right"] / len(rs), 4),
            "wrong_product_share": round(classes["wrong_product"] / len(rs), 4),
            "classes": dict(sorted(classes.items())),
        }
    people = [r for r in records if r.get("person")]
    by = defaultdict(list)
    for r in people:
        by[(r["set"], r["system"])].append(r["class"] == "right")
    out["_person_link_accuracy"] = {
        "/".join(k): {"queries": len(v), "accuracy": round(sum(v) / len(v), 4)}
        for k, v in sorted(by.items())
    }
    return out


def run(args) -> dict:
    from asr.nbest import NBest
    from assistant.answer import Answerer
    from assistant.pipeline import load_pipeline
    from lab.eval.heldout_nbest import nbest_from_dict

    pipeline = load_pipeline(transcriber=object())
    inventory, parser, linker = pipeline.inventory, pipeline.parser, pipeline.answerer.linker
    tuned = {
        k: v
        for k, v in (("nbest_temperature", args.temperature), ("min_support", args.min_support))
        if v is not None
    }
    linker.config = replace(linker.config, **tuned)
    answerers = {
        "joint": Answerer(inventory, linker, parser, joint=True),
        "top1": Answerer(inventory, linker, parser, joint=False),
    }
    rows = [json.loads(x) for x in ROWS.read_text(encoding="utf-8").splitlines() if x.strip()]
    rows = [r for r in rows if not r.get("noisy")]
    written = as_written(rows, inventory.products())
    records = []
    t = time.perf_counter()
    for set_name, rs in (("spoken", rows), ("written", written)) if args.text else ():
        nlus = []
        for i in range(0, len(rs), 64):
            nlus.extend(parser.parse_batch([r["text"] for r in rs[i : i + 64]]))
        for r, nlu in zip(rs, nlus, strict=True):
            answer = answerers["joint"].answer(nlu, "1", today=inventory.as_of())
            records.append(_record(set_name, "text", r, answer, inventory))
    text_s = time.perf_counter() - t
    nbest_info = {}
    path = Path(args.nbest)
    if path.is_file():
        cache = json.loads(path.read_text())
        t = time.perf_counter()
        for clip in cache["clips"].values():
            nb: NBest = nbest_from_dict(clip["nbest"])
            if pipeline.reranker is not None:
                nb = pipeline.reranker.rank(nb)
            row = clip["row"]
            nlus = parser.parse_batch(
                [h.text for h in nb.hypotheses], [nb.language] * len(nb.hypotheses)
            )
            for name, answerer in answerers.items():
                answer = answerer.answer(nlus[0], "1", nbest=nb, nlus=nlus, today=inventory.as_of())
                records.append(_record("audio", name, row, answer, inventory))
        nbest_info = {
            "file": str(path),
            "clips": len(cache["clips"]),
            "first_pass": cache.get("first_pass"),
            "seconds": round(time.perf_counter() - t, 1),
        }
    return {
        "text_seconds": round(text_s, 1),
        "nbest": nbest_info,
        "results": summarize(records),
        "records": records,
    }


def _record(set_name, system, row, answer, inventory) -> dict:
    return {
        "set": set_name,
        "system": system,
        "language": row["language"],
        "intent": row["intent"],
        "text": row["text"],
        "person": any(e["label"] == "PERSON" for e in row["entities"]),
        "class": classify(row, answer, inventory),
        "answer": answer.text if answer else None,
    }


def markdown(report: dict) -> str:
    res = report["results"]
    lines = [
        "# Understanding what was meant from what was heard (issue 16)",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']['cores']}-core {report['machine']['cpu']}, load average "
        f"{report['machine']['load_avg_1m']} (shared with two other engineers' jobs); "
        f"run {report['date']}. Sets and scoring: the docstring of `lab/eval/understanding.py`.",
        "",
        "## Per set, system and language",
        "",
        "| set / system / language | queries | answer accuracy | wrong-product share | classes |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, r in res.items():
        if key.startswith("_") or key.count("/") != 2:
            continue
        lines.append(
            f"| {key} | {r['queries']} | {r['answer_accuracy']:.3f} | "
            f"{r['wrong_product_share']:.3f} | {r['classes']} |"
        )
    lines += ["", "## Per intent", "", "| set / system / language / intent | queries | answer accuracy | wrong-product share | classes |", "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for key, r in res.items():
        if key.startswith("_") or key.count("/") != 3:
            continue
        lines.append(
            f"| {key} | {r['queries']} | {r['answer_accuracy']:.3f} | "
            f"{r['wrong_product_share']:.3f} | {r['classes']} |"
        )
    lines += ["", "## Person-link accuracy (schedule queries naming a person)", "",
              "| set / system | queries | accuracy |", "| --- | --- | --- |"]  # fmt: skip
    for key, r in res["_person_link_accuracy"].items():
        lines.append(f"| {key} | {r['queries']} | {r['accuracy']:.3f} |")
    info = report.get("nbest") or {}
    if info:
        lines += ["", f"n-best: {info['clips']} held-out clips from `{info['file']}` "
                  f"({info['first_pass']}), rescored by the deployed reranker."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nbest", default=str(NBEST))
    ap.add_argument("--out", default="docs/understanding_eval")
    ap.add_argument("--render", action="store_true", help="only rewrite OUT.md from OUT.json")
    ap.add_argument("--temperature", type=float, help="LinkerConfig.nbest_temperature")
    ap.add_argument("--min-support", type=float, help="LinkerConfig.min_support")
    ap.add_argument(
        "--text", action=argparse.BooleanOptionalAction, default=True, help="the gold-text sets"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    if args.render:
        report = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    else:
        report = {
            "command": "python -m lab.eval.understanding "
            + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": machine_info(),
            "date": dt.date.today().isoformat(),
        }
        report.update(run(args))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(
            json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    text = markdown(report)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
