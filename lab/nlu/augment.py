"""Label-preserving augmentation of the labelled corpus, for the student's last stage.

The student fails on the test split's held-out *templates*: carrier words it never saw
("¿mariana descansa este mes?", "hay pedido de palmolive") get tagged as brands and
products, because in training every unfamiliar word sat in an entity slot. The teacher
gets them right from pre-training. These operations (after Dai & Adel 2020, "An Analysis of
Simple Data Augmentation for Named Entity Recognition") put everyday words of the same
language where the carrier words were, and unfamiliar words into the entity slots, so the
tag has to come from the context:

- replace a carrier word by an everyday word;
- insert an everyday word after a carrier word;
- delete a carrier word;
- replace a BRAND / PRODUCT / PERSON mention by one or two everyday words (title-cased for
  names), or (`p_pseudo`) by a training mention of the same label with one or two letters
  changed ("colgate" -> "colbate"): brand-like strings no one has seen, keeping its label.

Spans are recomputed, intent and language are kept; the teacher's logits on the new text are
the other target of that stage (lab.nlu.train, stage "aug"). Everyday words come from wordfreq's
frequency lists (general web and subtitle text, not our corpus), minus every word that occurs
inside an entity of the training split, so an inserted "O" word is never a brand, colour,
size or name of ours.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

MENTION_LABELS = frozenset({"BRAND", "PRODUCT", "PERSON"})


@dataclass(frozen=True)
class AugmentConfig:
    """Per-word / per-mention probabilities of each operation."""

    p_replace: float = 0.15
    p_insert: float = 0.08
    p_delete: float = 0.08
    p_mention: float = 0.25
    p_pseudo: float = 0.0  # share of replaced mentions that become altered training mentions
    seed: int = 13


def everyday_words(
    train_rows: Sequence[dict], languages: Sequence[str] = ("en", "es"), top_n: int = 8000
) -> dict[str, list[str]]:
    """language -> alphabetic words among wordfreq's `top_n` most frequent, minus every word
    inside an entity span of `train_rows` (corpus rows: text, entities[{label,start,end}])."""
    import wordfreq  # noqa: PLC0415 - training extra

    entity_words = {
        w.lower()
        for r in train_rows
        for e in r["entities"]
        for w in r["text"][e["start"] : e["end"]].split()
    }
    return {
        lang: [
            w
            for w in wordfreq.top_n_list(lang, top_n)
            if w.isalpha() and len(w) >= 2 and w not in entity_words
        ]
        for lang in languages
    }


def training_mentions(train_rows: Sequence[dict]) -> dict[tuple[str, str], list[str]]:
    """(language, label) -> the distinct mention texts of `train_rows` (sorted)."""
    out: dict[tuple[str, str], set[str]] = {}
    for r in train_rows:
        for e in r["entities"]:
            if e["label"] in MENTION_LABELS:
                key = (r["language"], e["label"])
                out.setdefault(key, set()).add(r["text"][e["start"] : e["end"]])
    return {k: sorted(v) for k, v in out.items()}


VOWELS, CONSONANTS = "aeiou", "bcdfghjklmnprstvz"


def alter(text: str, rng: random.Random) -> str:
    """One or two letters changed, vowel for vowel and consonant for consonant."""
    chars = list(text)
    letters = [i for i, c in enumerate(chars) if c.lower() in VOWELS + CONSONANTS]
    for i in rng.sample(letters, min(len(letters), rng.choice((1, 2)))):
        pool = VOWELS if chars[i].lower() in VOWELS else CONSONANTS
        new = rng.choice(pool.replace(chars[i].lower(), ""))
        chars[i] = new.upper() if chars[i].isupper() else new
    return "".join(chars)


class Augmenter:
    """words: language -> everyday words (see `everyday_words`); mentions: (language,
    label) -> training mentions (see `training_mentions`), needed when `p_pseudo` > 0."""

    def __init__(
        self,
        words: dict[str, list[str]],
        config: AugmentConfig = AugmentConfig(),
        mentions: dict[tuple[str, str], list[str]] | None = None,
    ):
        self.words = words
        self.cfg = config
        self.mentions = mentions or {}

    def augment(self, row: dict, rng: random.Random) -> dict:
        """One new corpus row from `row`; entities keep their labels, offsets are new."""
        vocab = self.words[row["language"]]
        pieces: list[tuple[str, str | None]] = []  # (text, label or None for carrier text)
        pos = 0
        for e in sorted(row["entities"], key=lambda e: e["start"]):
            pieces += self._carrier(row["text"][pos : e["start"]], vocab, rng, pos > 0, True)
            mention = row["text"][e["start"] : e["end"]]
            if e["label"] in MENTION_LABELS and rng.random() < self.cfg.p_mention:
                seen = self.mentions.get((row["language"], e["label"]))
                if seen and rng.random() < self.cfg.p_pseudo:
                    mention = alter(rng.choice(seen), rng)
                else:
                    mention = " ".join(rng.choice(vocab) for _ in range(rng.choice((1, 1, 2))))
                    if e["label"] == "PERSON" or rng.random() < 0.3:
                        mention = mention.title()
            pieces.append((mention, e["label"]))
            pos = e["end"]
        pieces += self._carrier(row["text"][pos:], vocab, rng, pos > 0, False)
        text, entities = "", []
        for piece, label in pieces:
            if label is not None:
                entities.append({"label": label, "start": len(text), "end": len(text) + len(piece)})
            text += piece
        return {**row, "text": text, "entities": entities, "augmented": True}

    def _carrier(
        self, segment: str, vocab: list[str], rng: random.Random, after: bool, before: bool
    ) -> list[tuple[str, None]]:
        """Edit the whitespace-separated alphabetic words of a carrier segment. `after` /
        `before`: a mention touches the segment on that side. Punctuation, and a word glued
        to a mention without a space ("¿" + name, name + "'s"), stay as they were."""
        words = segment.split()
        if not words:
            return [(segment, None)]
        lead = segment[: len(segment) - len(segment.lstrip())]
        trail = segment[len(segment.rstrip()) :]
        out: list[str] = []
        for i, w in enumerate(words):
            glued = (i == 0 and after and not lead) or (
                i == len(words) - 1 and before and not trail
            )
            editable = w.isalpha() and not glued
            r = rng.random()
            if editable and r < self.cfg.p_delete and len(words) > 1:
                continue
            if editable and r < self.cfg.p_delete + self.cfg.p_replace:
                w = rng.choice(vocab)
            out.append(w)
            if editable and rng.random() < self.cfg.p_insert:
                out.append(rng.choice(vocab))
        return [(lead + " ".join(out) + trail, None)]


def augment_rows(rows: Sequence[dict], augmenter: Augmenter, n: int, seed: int = 13) -> list[dict]:
    """`n` augmented rows, each from a row of `rows` drawn at random (seeded)."""
    rng = random.Random(seed)
    return [augmenter.augment(rng.choice(rows), rng) for _ in range(n)]


# ---- catalog names as written (issue 16) -------------------------------------------------

PRODUCT_SLOT_LABELS = ("BRAND", "PRODUCT", "SIZE", "COLOR")


def catalog_name(product, language: str) -> tuple[str, list[dict]]:
    """A product's shelf-label name and its spans, offsets into the name.

    "Gildan T-Shirts, Gray, Medium" -> [Gildan]BRAND [T-Shirts]PRODUCT, [Gray]COLOR,
    [Medium]SIZE; "Pañales Huggies Supreme, Talla 6" -> [Pañales]PRODUCT [Huggies]BRAND
    [Supreme]PRODUCT, [Talla 6]SIZE. `product`: anything with brand, name_en / name_es,
    color and color_es (a catalog row or an inventory record).
    """
    name = product.name_es if language == "es" else product.name_en
    spans: list[dict] = []

    def add(label: str, start: int, end: int) -> None:
        while start < end and not name[start].isalnum():
            start += 1
        while end > start and not name[end - 1].isalnum():
            end -= 1
        if end > start:
            spans.append({"label": label, "start": start, "end": end, "text": name[start:end]})

    head_end = name.find(",") if "," in name else len(name)
    brand_at = name.find(product.brand, 0, head_end) if product.brand else -1
    if brand_at >= 0:
        add("PRODUCT", 0, brand_at)
        add("BRAND", brand_at, brand_at + len(product.brand))
        add("PRODUCT", brand_at + len(product.brand), head_end)
    else:
        add("PRODUCT", 0, head_end)
    colors = {c.lower() for c in (product.color, getattr(product, "color_es", "")) if c}
    start = head_end
    while start < len(name):
        end = name.find(",", start + 1)
        end = len(name) if end < 0 else end
        part = name[start + 1 : end].strip()
        offset = name.index(part, start) if part else start
        words = part.lower().removeprefix("color ").strip()
        if words in colors:
            add("COLOR", offset + len(part) - len(words), offset + len(part))
        else:
            add("SIZE", offset, offset + len(part))
        start = end
    return name, sorted(spans, key=lambda e: e["start"])


def with_catalog_name(row: dict, product) -> dict | None:
    """`row` (a product query) with its brand/product/size/colour words replaced by the
    product's catalog name as written, labels carried (other spans shifted); None when
    those words are not together (more than two other words among them)."""
    ents = [e for e in row["entities"] if e["label"] in PRODUCT_SLOT_LABELS]
    if row["intent"] not in ("find_product", "check_stock") or not ents:
        return None
    start, end = min(e["start"] for e in ents), max(e["end"] for e in ents)
    gap = row["text"][start:end]
    for e in sorted(ents, key=lambda e: -e["start"]):
        gap = gap[: e["start"] - start] + gap[e["end"] - start :]
    if len(gap.split()) > 2:
        return None
    name, spans = catalog_name(product, row["language"])
    text = row["text"][:start] + name + row["text"][end:]
    shift = len(name) - (end - start)
    entities = [{**e, "start": e["start"] + start, "end": e["end"] + start} for e in spans]
    for e in row["entities"]:
        if e["label"] in PRODUCT_SLOT_LABELS:
            continue
        if e["end"] <= start:
            entities.append(dict(e))
        elif e["start"] >= end:
            entities.append({**e, "start": e["start"] + shift, "end": e["end"] + shift})
    entities.sort(key=lambda e: e["start"])
    return {**row, "text": text, "skus": [product.sku], "entities": entities, "written": True}


def written_rows(rows: Sequence[dict], products: dict, n: int, seed: int = 13) -> list[dict]:
    """Up to `n` product queries of `rows` rewritten with one of their SKUs' catalog names
    (`products`: sku -> product), seeded; for training, `rows` is the train split."""
    rng = random.Random(seed)
    pool = [r for r in rows if r["intent"] in ("find_product", "check_stock") and r.get("skus")]
    out: list[dict] = []
    for r in rng.sample(pool, min(len(pool), 3 * n)):
        skus = sorted(s for s in r["skus"] if s in products)
        written = with_catalog_name(r, products[rng.choice(skus)]) if skus else None
        if written is not None:
            out.append(written)
            if len(out) == n:
                break
    return out
