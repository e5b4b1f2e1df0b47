"""Model outputs (numpy logits) -> `NluResult`, shared by the ONNX runtime and the PyTorch
trainer so that both are scored by exactly the same decoding."""

from __future__ import annotations

import numpy as np

from nlu.bio import tags_to_spans, word_starts
from nlu.schema import RETAIL, LabelSet, NluResult

LANGUAGES: tuple[str, ...] = ("en", "es")


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def word_level_tags(
    text: str, offsets: list[tuple[int, int]], tags: list[int], labels: LabelSet = RETAIL
) -> list[int]:
    """Make each word's later pieces continue its first piece's tag (B-X/I-X -> I-X, O -> O).

    A small student sometimes tags only some pieces of a word ("com|ing" -> "ing" as an
    entity, "ais|le" glued to a SIZE); entities are whole words in ANNOTATION.md, so the
    first piece with a letter or digit decides ("¿Tienda": "Tienda", not "¿"), as in the usual
    first-sub-word NER evaluation.
    """
    out = list(tags)
    names, tag_to_id = labels.tags, labels.tag_to_id
    first: int | None = None  # tag of the current word's first piece with a letter or digit
    for i, start in enumerate(word_starts(text, offsets)):
        s, e = offsets[i]
        if s == e:  # special token
            continue
        if start or text[s] in "'’":  # "ethan|'s": the gold span stops before the clitic
            first = None
        if first is None:
            # Leading "▁", "¿", quotes: the word's tag comes from its first real piece.
            if any(ch.isalnum() for ch in text[s:e]):
                first = out[i]
            continue
        out[i] = 0 if first == 0 else tag_to_id["I-" + names[first].split("-", 1)[1]]
    return out


def decode(
    text: str,
    offsets: list[tuple[int, int]],
    intent_logits: np.ndarray,
    language_logits: np.ndarray,
    tag_logits: np.ndarray,
    language: str | None = None,
    word_level: bool = True,
    labels: LabelSet = RETAIL,
) -> NluResult:
    """One query.

    Args:
        text: the query as given (offsets index into it).
        offsets: per-token (start, end) from the tokenizer, specials (0, 0); len n <= T.
        intent_logits: [n_intents]; language_logits: [2]; tag_logits: [T, n_tags] (padding
            rows beyond len(offsets) are ignored).
        language: when the caller knows it ("en"/"es"), it wins over the model's guess.
        word_level: every sub-word takes the tag of its word's first piece (see
            `word_level_tags`); False decodes each piece's own tag.
        labels: the intents and tags the logits index (the model's labels.json).
    """
    intent_p = softmax(intent_logits)
    k = int(intent_p.argmax())
    if language is None:
        language = LANGUAGES[int(np.argmax(language_logits))]
    tag_p = softmax(tag_logits[: len(offsets)])
    tags = [int(t) for t in tag_p.argmax(-1)]
    scores = tag_p.max(-1)
    if word_level:
        tags = word_level_tags(text, offsets, tags, labels)
    entities = tags_to_spans(text, offsets, tags, scores.tolist(), labels.tags)
    return NluResult(text, language, labels.intents[k], float(intent_p[k]), tuple(entities))
