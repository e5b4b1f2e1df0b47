"""Span F1 and intent accuracy: exact arithmetic on hand-made cases."""

from lab.nlu.metrics import score
from nlu.schema import Entity, NluResult


def _row(text, intent, ents, lang="en"):
    return {"text": text, "language": lang, "intent": intent, "entities": ents}


def test_exact_relaxed_and_per_language():
    gold = [
        _row(
            "where are tide pods",
            "find_product",
            [
                {"label": "BRAND", "start": 10, "end": 14},
                {"label": "PRODUCT", "start": 15, "end": 19},
            ],
        ),
        _row("leche lala", "find_product", [{"label": "PRODUCT", "start": 0, "end": 5}], "es"),
    ]
    preds = [
        NluResult(
            "where are tide pods",
            "en",
            "find_product",
            0.9,
            (Entity("BRAND", "tide", 10, 14), Entity("PRODUCT", "pod", 15, 18)),
        ),
        NluResult(
            "leche lala",
            "es",
            "check_stock",
            0.9,
            (Entity("PRODUCT", "leche", 0, 5), Entity("BRAND", "lala", 6, 10)),
        ),
    ]
    m = score(gold, preds)
    en, es = m["by_language"]["en"], m["by_language"]["es"]
    assert en["intent_accuracy"] == 1.0 and es["intent_accuracy"] == 0.0
    assert en["exact"]["micro"]["f1"] == 0.5  # BRAND right, PRODUCT off by one char
    assert en["relaxed"]["micro"]["f1"] == 1.0  # overlapping spans count when relaxed
    assert es["exact"]["micro"]["precision"] == 0.5 and es["exact"]["micro"]["recall"] == 1.0
    assert m["all"]["exact"]["micro"]["support"] == 3
    assert m["all"]["intent_accuracy"] == 0.5


def test_trimming_punctuation_counts_as_exact():
    gold = [_row("¿tide?", "find_product", [{"label": "BRAND", "start": 1, "end": 5}], "es")]
    preds = [NluResult("¿tide?", "es", "find_product", 1.0, (Entity("BRAND", "¿tide?", 0, 6),))]
    assert score(gold, preds)["all"]["exact"]["micro"]["f1"] == 1.0
