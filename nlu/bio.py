"""Character spans <-> token BIO tags, for any tokenizer that reports character offsets.

Used by the corpus (labelled spans), the teacher and student trainers (token targets) and
the runtime parser (spans from predicted tags). Works with `tokenizers.Tokenizer` encodings
(`encoding.offsets`) and Hugging Face fast tokenizers (`return_offsets_mapping=True`).

Conventions:
- `offsets` is one `(start, end)` character pair per token, end exclusive. Special tokens
  (`<s>`, `[CLS]`, padding) have `start == end` and are never labelled.
- SentencePiece tokens carry their leading space ("▁los" -> " los"); the whitespace is
  trimmed before comparing with spans, and a token that is only a space ("▁" before
  "paña") takes the tag of the piece that follows it in the same word, so that a word's
  first token is always its B-tag.
- Every sub-word of an entity word is tagged (B on the first token, I on the rest); a
  trainer that wants first-sub-word-only targets can mask with `word_starts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from nlu.schema import BIO_TAGS, Entity

IGNORE_INDEX = -100  # the cross-entropy ignore index of PyTorch: special tokens get it
TAG_TO_ID: dict[str, int] = {tag: i for i, tag in enumerate(BIO_TAGS)}
# Characters trimmed from both ends of a decoded span (ANNOTATION.md: evaluation trims
# whitespace and surrounding punctuation). Apostrophes inside a word ("kellogg's") stay.
_TRIM = " \t\n\r.,;:!?¿¡\"'()[]{}«»“”‘’-–—…/"

Span = tuple[int, int, str]  # (start, end, label), character offsets, end exclusive


def _spans(spans: Iterable[Any]) -> list[Span]:
    """Accept (start, end, label) tuples, dicts with start/end/label, or `Entity` objects."""
    out: list[Span] = []
    for s in spans:
        if isinstance(s, dict):
            out.append((int(s["start"]), int(s["end"]), str(s["label"])))
        elif isinstance(s, Entity):
            out.append((s.start, s.end, s.label))
        else:
            start, end, label = s
            out.append((int(start), int(end), str(label)))
    return sorted(out)


def trimmed_offsets(text: str, offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Offsets with surrounding whitespace removed; a whitespace-only token becomes (end, end)."""
    out = []
    for start, end in offsets:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        out.append((start, end))
    return out


def _is_special(raw: tuple[int, int]) -> bool:
    return raw[0] == raw[1]


def spans_to_tags(text: str, offsets: Sequence[tuple[int, int]], spans: Iterable[Any]) -> list[str]:
    """Token BIO tags (strings) for the given character spans.

    Args:
        text: the string the tokenizer encoded.
        offsets: one (start, end) pair per token; `len(offsets) == n_tokens`.
        spans: entities as (start, end, label), dicts or `Entity`; must not overlap.
    Returns:
        `n_tokens` tags from `nlu.schema.BIO_TAGS`; special tokens get "O" (see `spans_to_ids`
        for the ignore index).
    """
    spans_ = _spans(spans)
    trimmed = trimmed_offsets(text, offsets)
    owner: list[int | None] = [None] * len(offsets)  # index into spans_ per token
    for i, (raw, (s, e)) in enumerate(zip(offsets, trimmed, strict=True)):
        if _is_special(raw) or s == e:
            continue
        for k, (ss, se, _) in enumerate(spans_):
            if s < se and ss < e:
                owner[i] = k
                break
    # A whitespace-only piece ("▁") belongs to the word that follows it.
    for i in range(len(offsets) - 2, -1, -1):
        raw, (s, e) = offsets[i], trimmed[i]
        glued_to_next = raw[1] == offsets[i + 1][0]
        if not _is_special(raw) and s == e and owner[i + 1] is not None and glued_to_next:
            owner[i] = owner[i + 1]
    tags: list[str] = []
    prev: int | None = None
    for k in owner:
        if k is None:
            tags.append("O")
        else:
            tags.append(("I-" if k == prev else "B-") + spans_[k][2])
        prev = k
    return tags


def spans_to_ids(
    text: str,
    offsets: Sequence[tuple[int, int]],
    spans: Iterable[Any],
    ignore_index: int = IGNORE_INDEX,
    tag_to_id: dict[str, int] | None = None,
) -> list[int]:
    """Like `spans_to_tags` but as indices into a tag set (`tag_to_id`, default the retail
    BIO_TAGS), special tokens set to `ignore_index`."""
    tag_to_id = tag_to_id or TAG_TO_ID
    tags = spans_to_tags(text, offsets, spans)
    return [
        ignore_index if _is_special(raw) else tag_to_id[tag]
        for raw, tag in zip(offsets, tags, strict=True)
    ]


def word_starts(text: str, offsets: Sequence[tuple[int, int]]) -> list[bool]:
    """True where a token begins a whitespace-separated word (False for special tokens).

    A token starts a word when it is the first real token, when its raw text begins with
    whitespace (SentencePiece "▁los"), or when a gap separates it from the previous token
    (WordPiece drops the spaces). Trainers use this to mask non-initial sub-words.
    """
    out: list[bool] = []
    prev_end: int | None = None
    for raw in offsets:
        if _is_special(raw):
            out.append(False)
            continue
        start = raw[0]
        out.append(prev_end is None or start != prev_end or text[start].isspace())
        prev_end = raw[1]
    return out


def _trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in _TRIM:
        start += 1
    while end > start and text[end - 1] in _TRIM:
        end -= 1
    return start, end


def tags_to_spans(
    text: str,
    offsets: Sequence[tuple[int, int]],
    tags: Sequence[str | int],
    scores: Sequence[float] | None = None,
    tag_names: Sequence[str] = BIO_TAGS,
) -> list[Entity]:
    """Decode token tags into character-span entities.

    Lenient like seqeval's default: an I-tag that does not continue a span of its label opens
    one; a B-tag on a piece glued to the previous piece of the same label (no space between,
    a sub-word) continues that span instead of splitting the word. Spans are trimmed of
    whitespace and surrounding punctuation; empty results are dropped.

    Args:
        text: the encoded string.
        offsets: per-token (start, end).
        tags: per-token tag strings or indices into `tag_names` (IGNORE_INDEX treated as "O").
        scores: optional per-token confidence in [0, 1]; an entity's score is their mean.
        tag_names: the tag set integer tags index (default the retail BIO_TAGS).
    Returns:
        entities in text order.
    """
    trimmed = trimmed_offsets(text, offsets)
    entities: list[Entity] = []
    cur: list[Any] | None = None  # [label, start, end, score_sum, n, last_raw_end]

    def close() -> None:
        nonlocal cur
        if cur is not None:
            start, end = _trim_span(text, cur[1], cur[2])
            if start < end:
                entities.append(Entity(cur[0], text[start:end], start, end, cur[3] / cur[4]))
        cur = None

    for i, (raw, (s, e)) in enumerate(zip(offsets, trimmed, strict=True)):
        tag = tags[i]
        if isinstance(tag, int):
            tag = tag_names[tag] if 0 <= tag < len(tag_names) else "O"
        if _is_special(raw) or tag == "O":
            close()
            continue
        prefix, label = tag.split("-", 1)
        score = float(scores[i]) if scores is not None else 1.0
        glued = cur is not None and raw[0] == cur[5] and not text[raw[0] : raw[0] + 1].isspace()
        if cur is not None and cur[0] == label and (prefix == "I" or glued):
            if s < e:
                cur[1] = min(cur[1], s) if cur[1] < cur[2] else s
                cur[2] = max(cur[2], e)
            cur[3] += score
            cur[4] += 1
            cur[5] = raw[1]
            continue
        close()
        cur = [label, s, e, score, 1, raw[1]]
        if s == e:  # a "▁" piece: the span starts with the next piece
            cur[1] = cur[2] = raw[1]
    close()
    return entities


def encode_example(tokenizer: Any, text: str, spans: Iterable[Any]) -> tuple[list[int], list[int]]:
    """Token ids and BIO tag ids for one example with a `tokenizers.Tokenizer`.

    Returns:
        (input_ids, tag_ids), both of length n_tokens, specials tagged IGNORE_INDEX.
    """
    enc = tokenizer.encode(text)
    return list(enc.ids), spans_to_ids(text, enc.offsets, spans)
