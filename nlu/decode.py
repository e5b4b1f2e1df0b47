"""Model outputs (numpy logits) -> `NluResult`, shared by the ONNX runtime and the PyTorch
trainer so that both are scored by exactly the same decoding."""

from __future__ import annotations

import numpy as np

from nlu.bio import tags_to_spans
from nlu.schema import INTENTS, NluResult

LANGUAGES: tuple[str, ...] = ("en", "es")


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def decode(
    text: str,
    offsets: list[tuple[int, int]],
    intent_logits: np.ndarray,
    language_logits: np.ndarray,
    tag_logits: np.ndarray,
    language: str | None = None,
) -> NluResult:
    """One query.

    Args:
        text: the query as given (offsets index into it).
        offsets: per-token (start, end) from the tokenizer, specials (0, 0); len n <= T.
        intent_logits: [n_intents]; language_logits: [2]; tag_logits: [T, n_tags] (padding
            rows beyond len(offsets) are ignored).
        language: when the caller knows it ("en"/"es"), it wins over the model's guess.
    """
    intent_p = softmax(intent_logits)
    k = int(intent_p.argmax())
    if language is None:
        language = LANGUAGES[int(np.argmax(language_logits))]
    tag_p = softmax(tag_logits[: len(offsets)])
    tags = tag_p.argmax(-1)
    scores = tag_p.max(-1)
    entities = tags_to_spans(text, offsets, [int(t) for t in tags], scores.tolist())
    return NluResult(text, language, INTENTS[k], float(intent_p[k]), tuple(entities))
