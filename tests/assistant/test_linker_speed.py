"""The linker's speed-ups change no score: batched, cached form matching equals one
process.extract per span and kind of form, as the linker did before (issue 14)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from inventory_db import sqlite_url  # noqa: F401
from rapidfuzz import fuzz, process

from assistant.inventory import Inventory
from assistant.linker import MIN_JOINED_CHARS, Linker, english_key, spanish_key
from textnorm import fold

SPANS = [
    "tide pods", "tidepods", "collugs", "pañales u diez", "leche la la", "where can i find",
    "de", "", "  ", "kellogg's", "can", "frosted flakes", "cereal kellogg's", "jugo jumex",
    "samsung fifty five inch", "papitas", "ozark camping chair", "levis", "x",
]  # fmt: skip


def reference_scores(forms, span: str, weight: float) -> dict[str, float]:
    """_Forms.scores as it was written before the batched version: one extract per pass."""
    query = fold(span)
    if not query:
        return {}
    best: dict[str, float] = defaultdict(float)
    joined = query.replace(" ", "")
    passes = (
        (query, forms.forms, 1.0),
        (joined if len(joined) >= MIN_JOINED_CHARS else "", forms.joined, 1.0),
        (english_key(query), forms.en, weight),
        (spanish_key(query), forms.es, weight),
    )
    for q, choices, w in passes:
        if len(q) < 2 or (w != 1.0 and (len(q.replace(" ", "")) < 3 or len(query) < 4)):
            continue
        for _form, score, idx in process.extract(
            q, choices, scorer=fuzz.ratio, limit=40, score_cutoff=60
        ):
            for owner in forms.owners[idx]:
                best[owner] = max(best[owner], w * score / 100.0)
    return dict(best)


@pytest.fixture(scope="module")
def linker(sqlite_url):  # noqa: F811
    linker = Linker(Inventory(sqlite_url))
    linker.warm_up()
    return linker


@pytest.mark.parametrize("kind", ["_brands", "_products", "_types"])
@pytest.mark.parametrize("weight", [0.92, 0.85])
def test_batched_scores_equal_one_extract_per_span(linker, kind, weight):
    forms = getattr(linker, kind)
    batched = forms.many(SPANS, weight)  # all new: matched together
    assert batched == [reference_scores(forms, s, weight) for s in SPANS]
    assert [dict(forms.scores(s, weight)) for s in SPANS] == batched  # now from the cache


def test_scores_hands_out_a_copy(linker):
    first = linker._brands.scores("tide", 0.92)
    first["Tide"] = -1.0
    first["not a brand"] = 1.0
    assert linker._brands.scores("tide", 0.92) == reference_scores(linker._brands, "tide", 0.92)
