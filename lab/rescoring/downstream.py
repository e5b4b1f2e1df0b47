"""Downstream effect of the second pass: the NLU parser on first-pass, rescored and reference
text of the test n-best lists -> intent accuracy and entity F1 per language.

Spans of a transcript cannot be compared by character offsets with the reference's, so an
entity counts as right when its label and its normalized words (textnorm.normalize with
accents stripped, as lab.wer counts them: case, punctuation, numbers) match a gold entity of
the reference; each gold entity is matched at most once. This is what the answer depends on: the right brand and
product words with the right label.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence

from textnorm import normalize

log = logging.getLogger(__name__)


def load_parser():
    """The learned NLU student when installed, else the rule/gazetteer baseline."""
    from nlu.runtime import load_default_parser

    parser = load_default_parser()
    if parser is not None:
        return parser, "nlu student (ONNX)"
    from nlu.baseline import BaselineParser

    return BaselineParser(), "nlu baseline"


def _entities(items, language: str) -> Counter:
    keys = ((e["label"], normalize(e["text"], language, accents=False)) for e in items)
    return Counter((label, words) for label, words in keys if words)


def score_texts(rows: Sequence[dict], results: Sequence) -> dict:
    """rows: {"language", "intent", "entities"} gold of the reference; results: NluResult of
    some text of the same utterance. Returns per language and "all":
    {"n", "intent_accuracy", "entity_precision", "entity_recall", "entity_f1"} (fractions)."""
    acc: dict = defaultdict(lambda: [0, 0, 0, 0, 0])  # n, intent hits, tp, pred, gold
    for row, res in zip(rows, results, strict=True):
        gold = _entities(row.get("entities", []), row["language"])
        pred = _entities(
            ({"label": e.label, "text": e.text} for e in res.entities), row["language"]
        )
        tp = sum((gold & pred).values())
        for lang in (row["language"], "all"):
            a = acc[lang]
            a[0] += 1
            a[1] += int(res.intent == row.get("intent"))
            a[2] += tp
            a[3] += sum(pred.values())
            a[4] += sum(gold.values())
    out = {}
    for lang, (n, hits, tp, n_pred, n_gold) in sorted(acc.items()):
        p = tp / n_pred if n_pred else 0.0
        r = tp / n_gold if n_gold else 0.0
        out[lang] = {
            "n": n,
            "intent_accuracy": round(hits / max(1, n), 4),
            "entity_precision": round(p, 4),
            "entity_recall": round(r, 4),
            "entity_f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
        }
    return out


def downstream(rows: Sequence[dict], texts: dict[str, Sequence[str]]) -> dict:
    """texts: name ("reference", "first_pass", "rescored", ...) -> one text per row."""
    parser, name = load_parser()
    languages = [r["language"] for r in rows]
    out: dict = {"parser": name}
    for key, values in texts.items():
        results = parser.parse_batch(list(values), languages)
        out[key] = score_texts(rows, results)
        log.info("downstream %s: %s", key, out[key].get("all"))
    return out
