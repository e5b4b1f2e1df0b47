"""Downstream scoring of transcripts against the reference's gold: exact arithmetic."""

from lab.rescoring.downstream import score_texts
from nlu.schema import Entity, NluResult


def _res(intent, *ents):
    return NluResult(
        text="",
        language="en",
        intent=intent,
        intent_score=1.0,
        entities=tuple(
            Entity(label=lab, text=t, start=0, end=len(t), score=1.0) for lab, t in ents
        ),
    )


def test_score_texts_matches_label_and_normalized_words():
    rows = [
        {
            "language": "en",
            "intent": "find_product",
            "entities": [{"label": "BRAND", "text": "Tide"}, {"label": "PRODUCT", "text": "pods"}],
        },
        {
            "language": "es",
            "intent": "check_stock",
            "entities": [{"label": "SIZE", "text": "talla cuatro"}],
        },
    ]
    results = [
        _res("find_product", ("BRAND", "tide"), ("PRODUCT", "tied pods")),  # 1 of 2 right
        _res("find_product", ("SIZE", "Talla 4")),  # intent wrong, entity right after normalizing
    ]
    out = score_texts(rows, results)
    assert out["en"]["intent_accuracy"] == 1.0
    assert out["en"]["entity_precision"] == 0.5 and out["en"]["entity_recall"] == 0.5
    assert out["es"]["intent_accuracy"] == 0.0 and out["es"]["entity_f1"] == 1.0
    assert out["all"]["n"] == 2
    assert out["all"]["entity_precision"] == round(2 / 3, 4)
    assert out["all"]["entity_f1"] == round(2 / 3, 4)
