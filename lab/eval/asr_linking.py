"""Linking accuracy on ASR-noisy spans: real Whisper n-best lists of the synthetic fixtures.

For every fixture (tests/fixtures/fixtures.jsonl: audio, reference text, intent, entities)
that names a BRAND or a PRODUCT, three ways to reach a catalog product line are compared:

- first_pass: the parser's spans on the first-pass best hypothesis, then `Linker.link`;
- nbest: `Linker.link_nbest` over all hypotheses (each parsed by the same parser);
- gold_spans: the reference's gold spans on the reference text (no ASR, no parser).

Gold product lines are NOT found by linking (that would make gold_spans right by
construction): `gold_lines` matches the gold brand and product words against the catalog's
names and aliases exactly (case/accent-folded). A hit is "the top linked product's line is
one of the gold lines".

Decoded n-best lists are cached as JSON (keyed by each clip's sha256 and the Whisper
settings) so re-runs skip the ~2 s/clip decode; without the cache they are decoded again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from asr.nbest import Hypothesis, NBest
from assistant.inventory import Inventory
from assistant.linker import Linker
from nlu.schema import Entity, NluResult, Parser
from textnorm import fold

log = logging.getLogger(__name__)

PRODUCT_LABELS = ("BRAND", "PRODUCT")
CACHE_VERSION = 1


def load_fixtures(path: str | Path) -> list[dict]:
    """fixtures.jsonl rows, with "audio" = absolute path of the clip."""
    path = Path(path)
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            row["audio"] = str(path.parent / row["file"])
            rows.append(row)
    return rows


def gold_lines(entities: list[dict], inventory: Inventory) -> set[str]:
    """Catalog lines the gold BRAND/PRODUCT words name, by exact folded name/alias match.

    Lines of the brand (name or brand alias equal to the BRAND span; every line when there
    is no BRAND span) whose product name equals the PRODUCT span; if none does, those with a
    product alias equal to it ("cereal" -> every Kellogg's cereal); with no PRODUCT span,
    every line of the brand ("Coca-Cola twelve pack" -> any Coca-Cola line). Empty set: the
    catalog has no such product (the fixture is then reported, not scored).
    """
    brand = " ".join(fold(e["text"]) for e in entities if e["label"] == "BRAND") or None
    product = " ".join(fold(e["text"]) for e in entities if e["label"] == "PRODUCT") or None
    products = inventory.products()
    brand_aliases: dict[str, set[str]] = defaultdict(set)  # brand -> folded forms
    product_aliases: dict[str, set[str]] = defaultdict(set)  # line -> folded forms
    for sku, kind, _lang, alias in inventory.aliases():
        p = products[sku]
        if kind == "brand":
            brand_aliases[p.brand].add(fold(alias))
        elif kind == "product":
            product_aliases[p.line].add(fold(alias))
    lines = {
        p.line: p
        for p in products.values()
        if brand is None or brand in brand_aliases[p.brand] | {fold(p.brand)}
    }
    if product is None:
        return set(lines)
    named = {ln for ln, p in lines.items() if product in (fold(p.product_en), fold(p.product_es))}
    return named or {ln for ln in lines if product in product_aliases[ln]}


# ---- n-best cache ------------------------------------------------------------------------


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _nbest_to_dict(nbest: NBest) -> dict:
    return {
        "language": nbest.language,
        "language_prob": nbest.language_prob,
        "duration_s": nbest.duration_s,
        "hypotheses": [{**asdict(h), "token_ids": list(h.token_ids)} for h in nbest.hypotheses],
    }


def _nbest_from_dict(d: dict) -> NBest:
    hyps = tuple(Hypothesis(**{**h, "token_ids": tuple(h["token_ids"])}) for h in d["hypotheses"])
    return NBest(hyps, d["language"], d["language_prob"], d["duration_s"])


def decode_fixtures(
    rows: list[dict], cache: str | Path | None, nbest: int = 5, transcriber=None
) -> tuple[list[NBest], dict]:
    """One NBest per fixture row, from the cache where the clip and settings match.

    Whisper (CPU, int8, language detected among en/es as the server does) is loaded only
    when a clip is missing from the cache. Returns (n-best lists, info about the decode).
    """
    settings = {"version": CACHE_VERSION, "nbest": nbest, "device": "cpu", "language": "auto"}
    cached: dict = {}
    cache = Path(cache) if cache else None
    if cache and cache.is_file():
        data = json.loads(cache.read_text(encoding="utf-8"))
        if data.get("settings") == settings:
            cached = data.get("clips", {})
    out: list[NBest] = []
    decoded = 0
    clips: dict[str, dict] = {}
    for row in tqdm(rows, desc="n-best lists", unit="clip"):
        key = f"{row['file']}:{_sha256(row['audio'])}"
        if key not in cached:
            if transcriber is None:
                from asr.transcriber import Transcriber, TranscriberConfig

                transcriber = Transcriber(TranscriberConfig(device="cpu", nbest=nbest))
            from asr.audio import decode_audio

            cached[key] = _nbest_to_dict(transcriber.nbest(decode_audio(row["audio"])))
            decoded += 1
        clips[key] = cached[key]
        out.append(_nbest_from_dict(cached[key]))
    if cache and decoded:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(
            json.dumps({"settings": settings, "clips": clips}, ensure_ascii=False, indent=1) + "\n",
            encoding="utf-8",
        )
    return out, {"clips": len(rows), "decoded": decoded, "from_cache": len(rows) - decoded}


# ---- evaluation --------------------------------------------------------------------------


def _gold_nlu(row: dict) -> NluResult:
    ents = tuple(Entity(e["label"], e["text"], e["start"], e["end"]) for e in row["entities"])
    return NluResult(row["text"], row["language"], row["intent"], 1.0, ents)


def evaluate_asr_linking(
    rows: list[dict], nbests: list[NBest], linker: Linker, parsers: dict[str, Parser]
) -> tuple[dict, list[dict]]:
    """Line accuracy per (method, language) over fixtures naming a BRAND or PRODUCT.

    Returns (summary: "method/lang" -> {"fixtures", "line_accuracy"}, per-fixture details).
    Methods: gold_spans, and <parser>/first_pass, <parser>/nbest for each parser given.
    """
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    details = []
    for row, nb in zip(rows, nbests, strict=True):
        if not any(e["label"] in PRODUCT_LABELS for e in row["entities"]):
            continue
        gold = gold_lines(row["entities"], linker.inventory)
        detail = {
            "file": row["file"],
            "language": row["language"],
            "reference": row["text"],
            "first_pass": nb.first_pass_best.text if nb.first_pass_best else "",
            "decoded_language": nb.language,
            "gold_lines": sorted(gold),
            "linked": {},
        }
        details.append(detail)
        if not gold:
            log.warning("%s: no catalog line matches the gold spans; not scored", row["file"])
            continue
        results = {"gold_spans": linker.link(_gold_nlu(row))}
        for name, parser in parsers.items():
            first = nb.first_pass_best.text if nb.first_pass_best else ""
            results[f"{name}/first_pass"] = linker.link(parser.parse(first, nb.language))
            results[f"{name}/nbest"] = linker.link_nbest(nb, parser)
        for method, result in results.items():
            line = result.best.product.line if result.best else None
            detail["linked"][method] = line
            counts = hits[f"{method}/{row['language']}"]
            counts[0] += line in gold
            counts[1] += 1
    summary = {
        key: {"fixtures": n, "line_accuracy": round(ok / n, 4)}
        for key, (ok, n) in sorted(hits.items())
    }
    return summary, details
