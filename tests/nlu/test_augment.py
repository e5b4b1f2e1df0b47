"""Label-preserving augmentation (lab.nlu.augment): spans stay on their labels' text, carrier
words change, punctuation and words glued to mentions survive."""

from __future__ import annotations

import random

from lab.nlu.augment import AugmentConfig, Augmenter, augment_rows

WORDS = {"en": ["window", "later", "quiet"], "es": ["ventana", "luego", "tranquilo"]}
ROW = {
    "text": "¿mariana descansa este mes?",
    "language": "es",
    "intent": "associate_schedule",
    "entities": [{"label": "PERSON", "start": 1, "end": 8}],
}
ROW_EN = {
    "text": "where are the tide pods, aisle please",
    "language": "en",
    "intent": "find_product",
    "entities": [
        {"label": "BRAND", "start": 14, "end": 18},
        {"label": "PRODUCT", "start": 19, "end": 23},
    ],
}


def _spans(row: dict) -> list[tuple[str, str]]:
    return [(e["label"], row["text"][e["start"] : e["end"]]) for e in row["entities"]]


def test_everything_off_returns_the_row_unchanged():
    off = Augmenter(WORDS, AugmentConfig(p_replace=0, p_insert=0, p_delete=0, p_mention=0))
    for row in (ROW, ROW_EN):
        out = off.augment(row, random.Random(0))
        assert out["text"] == row["text"] and out["entities"] == row["entities"]


def test_carrier_words_replaced_mentions_and_glued_punctuation_kept():
    swap = Augmenter(WORDS, AugmentConfig(p_replace=1.0, p_insert=0, p_delete=0, p_mention=0))
    out = swap.augment(ROW, random.Random(1))
    # "¿" is glued to the name and "mes?" carries punctuation: both stay.
    assert out["text"].startswith("¿mariana ") and out["text"].endswith(" mes?")
    assert out["text"].split()[1] in WORDS["es"] and out["text"].split()[2] in WORDS["es"]
    assert _spans(out) == [("PERSON", "mariana")]
    assert out["intent"] == ROW["intent"] and out["language"] == "es"


def test_mentions_replaced_with_their_labels_and_offsets_recomputed():
    names = Augmenter(WORDS, AugmentConfig(p_replace=0, p_insert=0, p_delete=0, p_mention=1.0))
    for seed in range(20):
        out = names.augment(ROW_EN, random.Random(seed))
        labels = [label for label, _ in _spans(out)]
        assert labels == ["BRAND", "PRODUCT"]
        for _, text in _spans(out):
            assert all(w.lower() in WORDS["en"] for w in text.split())
        assert out["text"].startswith("where are the ") and out["text"].endswith(", aisle please")


def test_augment_rows_is_seeded_and_spans_stay_inside_the_text():
    aug = Augmenter(WORDS)
    a = augment_rows([ROW, ROW_EN], aug, 50, seed=3)
    assert a == augment_rows([ROW, ROW_EN], aug, 50, seed=3)
    assert a != augment_rows([ROW, ROW_EN], aug, 50, seed=4)
    for row in a:
        for e in row["entities"]:
            assert 0 <= e["start"] < e["end"] <= len(row["text"])
            assert row["text"][e["start"] : e["end"]].strip() == row["text"][e["start"] : e["end"]]


def test_pseudo_mentions_are_altered_training_mentions_of_the_same_label():
    from lab.nlu.augment import alter, training_mentions

    rng = random.Random(0)
    for _ in range(50):
        new = alter("colgate", rng)
        changed = sum(a != b for a, b in zip(new, "colgate", strict=True))
        assert len(new) == 7 and 1 <= changed <= 2
    mentions = training_mentions([ROW, ROW_EN])
    assert mentions[("en", "BRAND")] == ["tide"] and mentions[("es", "PERSON")] == ["mariana"]
    cfg = AugmentConfig(p_replace=0, p_insert=0, p_delete=0, p_mention=1.0, p_pseudo=1.0)
    out = Augmenter(WORDS, cfg, mentions).augment(ROW_EN, random.Random(3))
    (brand, b), (product, p) = _spans(out)
    assert (brand, product) == ("BRAND", "PRODUCT")
    assert b != "tide" and len(b) == 4 and p != "pods" and len(p) == 4
