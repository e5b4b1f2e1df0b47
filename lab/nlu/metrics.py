"""Span F1 (exact and relaxed) per label and language, and intent accuracy (ANNOTATION.md).

Exact: same label and same character span after trimming whitespace and surrounding
punctuation. Relaxed: same label and overlapping spans (each gold span matched at most once).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from nlu.bio import _trim_span
from nlu.schema import ENTITY_LABELS, NluResult

Span = tuple[int, int, str]


def _norm(text: str, spans: Sequence[Span]) -> list[Span]:
    out = []
    for s, e, label in spans:
        s2, e2 = _trim_span(text, s, e)
        if s2 < e2:
            out.append((s2, e2, label))
    return out


def _match(gold: list[Span], pred: list[Span], relaxed: bool) -> int:
    used = [False] * len(gold)
    hits = 0
    for ps, pe, pl in pred:
        for i, (gs, ge, gl) in enumerate(gold):
            if used[i] or gl != pl:
                continue
            if (ps == gs and pe == ge) or (relaxed and ps < ge and gs < pe):
                used[i] = True
                hits += 1
                break
    return hits


def _f1(tp: int, n_pred: int, n_gold: int) -> dict:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "support": n_gold}


def score(
    examples: Sequence[dict],
    predictions: Sequence[NluResult],
    entity_labels: Sequence[str] = ENTITY_LABELS,
) -> dict:
    """examples: corpus rows {"text","language","intent","entities":[{start,end,label}]};
    entity_labels: the domain's labels (default the retail schema).

    Returns {"n", "intent_accuracy", "by_language": {lang: {"n","intent_accuracy",
    "exact": {"micro": {...}, label: {...}}, "relaxed": {...}}}, "all": {same, both languages}}.
    """
    counts: dict = defaultdict(
        lambda: defaultdict(lambda: [0, 0, 0])
    )  # (lang,mode)->label->tp,np,ng
    intents: dict = defaultdict(lambda: [0, 0])
    for ex, pred in zip(examples, predictions, strict=True):
        text = ex["text"]
        gold = _norm(text, [(g["start"], g["end"], g["label"]) for g in ex["entities"]])
        pr = _norm(text, [(p.start, p.end, p.label) for p in pred.entities])
        for lang in (ex["language"], "all"):
            intents[lang][0] += int(pred.intent == ex["intent"])
            intents[lang][1] += 1
            for mode, relaxed in (("exact", False), ("relaxed", True)):
                for label in entity_labels:
                    g = [s for s in gold if s[2] == label]
                    p = [s for s in pr if s[2] == label]
                    c = counts[(lang, mode)][label]
                    c[0] += _match(g, p, relaxed)
                    c[1] += len(p)
                    c[2] += len(g)
    out: dict = {"by_language": {}}
    for lang in sorted(intents):
        block: dict = {
            "n": intents[lang][1],
            "intent_accuracy": round(intents[lang][0] / max(intents[lang][1], 1), 4),
        }
        for mode in ("exact", "relaxed"):
            per = counts[(lang, mode)]
            tp = sum(v[0] for v in per.values())
            npred = sum(v[1] for v in per.values())
            ngold = sum(v[2] for v in per.values())
            block[mode] = {"micro": _f1(tp, npred, ngold)} | {
                label: _f1(*per[label]) for label in entity_labels if per[label][2] or per[label][1]
            }
        if lang == "all":
            out["all"] = block
        else:
            out["by_language"][lang] = block
    return out
