"""Round trips between character spans and token BIO tags (nlu.bio)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nlu.bio import IGNORE_INDEX, spans_to_ids, spans_to_tags, tags_to_spans, word_starts
from nlu.schema import BIO_TAGS

E5_TOKENIZER = next(
    Path(__file__)
    .resolve()
    .parents[2]
    .glob(
        ".venv/lib/python*/site-packages/semantra_multilingual/assets/multilingual-e5-small/tokenizer.json"
    ),
    None,
)


def whitespace_offsets(text: str, specials: bool = True) -> list[tuple[int, int]]:
    """A minimal tokenizer: words and single punctuation marks, with [CLS]/[SEP] specials."""
    offs = [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]
    return [(0, 0), *offs, (0, 0)] if specials else offs


CASES = [
    (
        "how many huggies diapers size four do we have",
        [(9, 16, "BRAND"), (17, 24, "PRODUCT"), (25, 34, "SIZE")],
    ),
    (
        "¿dónde están los pañales  huggies talla 4?",
        [(17, 24, "PRODUCT"), (26, 33, "BRAND"), (34, 41, "SIZE")],
    ),
    ("where's the kellogg's frosted flakes, um", [(12, 21, "BRAND"), (22, 36, "PRODUCT")]),
    (
        "is the samsung 55-inch tv in stock at store 12",
        [(7, 14, "BRAND"), (15, 22, "SIZE"), (23, 25, "PRODUCT"), (38, 46, "STORE")],
    ),
    ("who works today", [(10, 15, "DATE")]),
    ("cuéntame un chiste", []),
]


@pytest.mark.parametrize(("text", "spans"), CASES)
def test_round_trip_word_tokenizer(text, spans):
    offsets = whitespace_offsets(text)
    tags = spans_to_tags(text, offsets, spans)
    assert tags[0] == "O" and tags[-1] == "O"
    got = [(e.start, e.end, e.label) for e in tags_to_spans(text, offsets, tags)]
    assert got == sorted(spans)


@pytest.mark.skipif(E5_TOKENIZER is None, reason="multilingual-e5 tokenizer not installed")
@pytest.mark.parametrize(("text", "spans"), CASES)
def test_round_trip_sentencepiece(text, spans):
    from tokenizers import Tokenizer

    enc = Tokenizer.from_file(str(E5_TOKENIZER)).encode(text)
    tags = spans_to_tags(text, enc.offsets, spans)
    got = [(e.start, e.end, e.label) for e in tags_to_spans(text, enc.offsets, tags)]
    assert got == sorted(spans)
    # Every entity starts with a B tag and every B starts a word.
    starts = word_starts(text, enc.offsets)
    for tag, start in zip(tags, starts, strict=True):
        if tag.startswith("B-"):
            assert start


def test_ids_ignore_specials_and_use_schema_order():
    text = "where is the tide pods"
    offsets = whitespace_offsets(text)
    ids = spans_to_ids(text, offsets, [{"start": 13, "end": 17, "label": "BRAND"}])
    assert ids[0] == IGNORE_INDEX and ids[-1] == IGNORE_INDEX
    assert [BIO_TAGS[i] for i in ids[1:-1]] == ["O", "O", "O", "B-BRAND", "O"]


def test_decoding_is_lenient_and_trims_punctuation():
    text = "find tide pods, please"
    offsets = whitespace_offsets(text, specials=False)  # find tide pods , please
    tags = ["O", "I-BRAND", "B-PRODUCT", "I-PRODUCT", "O"]
    ents = tags_to_spans(text, offsets, tags, scores=[1, 0.8, 0.6, 0.4, 1])
    assert [(e.label, e.text) for e in ents] == [("BRAND", "tide"), ("PRODUCT", "pods")]
    assert ents[1].score == pytest.approx(0.5)
    # Integer tags and the ignore index decode too.
    ids = [0, BIO_TAGS.index("B-BRAND"), IGNORE_INDEX, 0, 0]
    assert [e.text for e in tags_to_spans(text, offsets, ids)] == ["tide"]


def test_glued_subword_b_tag_continues_the_word():
    text = "huggies"
    offsets = [(0, 3), (3, 7)]  # hug + gies
    ents = tags_to_spans(text, offsets, ["B-BRAND", "B-BRAND"])
    assert [(e.text, e.start, e.end) for e in ents] == [("huggies", 0, 7)]
