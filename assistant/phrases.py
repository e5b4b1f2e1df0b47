"""Phrase lists that bias the first pass toward the store's words, chosen per utterance.

Whisper conditions on at most 223 tokens of "previous text", and the catalog has hundreds of
brands and product lines. A `PhraseIndex` holds the phrases of each language and answers one
question: which of them should the decoder see for this utterance? When every phrase fits the
prompt (a client's short list, the coffee menu), all of them, with no draft decode
(`needs_draft` False). Otherwise the first pass decodes a cheap greedy draft and the index
retrieves the phrases that look or sound like a stretch of that draft:

- spelling: rapidfuzz ratio of accent- and case-folded word n-grams against each phrase;
- sound: the linker's phonetic keys (metaphone for English, `spanish_key` for Spanish) of
  the same n-grams ("hotties" ~ "huggies" by key, "tied pods" ~ "tide pods").

The chosen phrases go to the decoder in the utterance's language (asr.transcriber), which
then re-decodes the same encoder output with them as the prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from assistant.linker import english_key, spanish_key
from nlu.lexicon import STOPWORDS
from textnorm import fold

log = logging.getLogger(__name__)

LANGUAGES = ("en", "es")
# Whisper's prompt budget is 223 tokens; catalog names run ~3.5 characters a token, and a
# draft-selected list is kept well inside it so the prompt stays about the utterance.
STATIC_MAX_CHARS = 600  # a whole list this long goes to the decoder as it is
SELECT_MAX_CHARS = 240  # a per-utterance selection: about 60-70 tokens
SELECT_MAX_PHRASES = 16
MIN_SCORE = 72.0  # rapidfuzz 0-100; below this a stretch of the draft is not that phrase
MAX_NGRAM = 4  # longest stretch of the draft compared with a phrase (words)
# A draft word that is a whole word of a phrase ("coffee" in "Maxwell House coffee") makes the
# phrase a candidate just above MIN_SCORE: the decoder gets the store's brands of what was
# named when the brand itself was misheard beyond recognition ("McDonald's coffee").
SHARED_WORD_SCORE = MIN_SCORE + 2
MAX_SHARED_WORD_PHRASES = 6  # per draft word: the first ones listed
# Limits of a client-given list (websocket `start` "phrases", `--phrases FILE`).
MAX_PHRASES = 500
MAX_PHRASE_CHARS = 80


class PhraseError(ValueError):
    """A phrase list that breaks the documented limits."""


def check_phrases(phrases: object) -> tuple[str, ...]:
    """A client's phrase list, validated: a list of at most MAX_PHRASES non-empty strings of at
    most MAX_PHRASE_CHARS characters each. Returns them stripped, duplicates removed."""
    if not isinstance(phrases, list):
        raise PhraseError("phrases must be a list of strings")
    if len(phrases) > MAX_PHRASES:
        raise PhraseError(f"at most {MAX_PHRASES} phrases, got {len(phrases)}")
    out: dict[str, None] = {}
    for phrase in phrases:
        if not isinstance(phrase, str) or not phrase.strip():
            raise PhraseError("every phrase must be a non-empty string")
        if len(phrase) > MAX_PHRASE_CHARS:
            raise PhraseError(f"a phrase may have at most {MAX_PHRASE_CHARS} characters")
        out[" ".join(phrase.split())] = None
    return tuple(out)


@dataclass(frozen=True)
class _Entry:
    text: str  # as the decoder sees it ("Huggies diapers")
    folded: str  # fold(text): lower case, no accents ("huggies diapers")
    words: int
    key: str  # phonetic key of the whole phrase in its language, "" when too short


@dataclass
class PhraseIndex:
    """Phrases per language ("en", "es"); `select` picks those for one utterance.

    A phrase given for both languages (a brand, a person) is listed under each.
    """

    phrases: dict[str, tuple[str, ...]]
    _entries: dict[str, list[_Entry]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._entries = {lang: [] for lang in LANGUAGES}
        for lang in LANGUAGES:
            seen: set[str] = set()
            for text in self.phrases.get(lang, ()):
                folded = " ".join(fold(text).split())
                if len(folded) < 2 or folded in seen:
                    continue
                seen.add(folded)
                key = _key(folded, lang) if len(folded.replace(" ", "")) >= 4 else ""
                self._entries[lang].append(_Entry(text, folded, len(folded.split()), key))
        self._folded = {lang: [e.folded for e in es] for lang, es in self._entries.items()}
        self._joined = {lang: [f.replace(" ", "") for f in fs] for lang, fs in self._folded.items()}
        self._by_word: dict[str, dict[str, list[int]]] = {lang: {} for lang in LANGUAGES}
        for lang, entries in self._entries.items():
            for i, entry in enumerate(entries):
                for word in set(entry.folded.split()):
                    if len(word) >= 4 and word not in STOPWORDS:
                        self._by_word[lang].setdefault(word, []).append(i)
        self._keys = {lang: [e.key for e in es] for lang, es in self._entries.items()}
        # A language whose whole list fits the prompt gets all of it, with no draft.
        self._whole = {
            lang: _chars(e.text for e in es) <= STATIC_MAX_CHARS
            for lang, es in self._entries.items()
        }

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> PhraseIndex:
        """One list for both languages (a `--phrases` file, a client's `phrases`)."""
        phrases = tuple(" ".join(line.split()) for line in lines if line.strip())
        return cls({lang: phrases for lang in LANGUAGES})

    def __len__(self) -> int:
        return max(len(v) for v in self._entries.values())

    @property
    def needs_draft(self) -> bool:
        """True when a language's list is too long to go to the decoder whole."""
        return not all(self._whole.values())

    def select(self, drafts: Sequence[str], language: str) -> tuple[str, ...]:
        """The phrases to prompt one utterance with, best match first.

        drafts: what a cheap decode heard (any number of readings; empty when `needs_draft`
        is False). language: "en" or "es", the language the utterance is decoded in.
        """
        entries = self._entries.get(language, [])
        if not entries:
            return ()
        if self._whole[language]:
            return tuple(e.text for e in entries)
        scores: dict[int, float] = {}
        for draft in drafts:
            words = fold(draft).split()
            for gram in _ngrams(words):
                self._score(gram, language, scores)
            for word in words:
                for i in self._by_word[language].get(word, ())[:MAX_SHARED_WORD_PHRASES]:
                    scores[i] = max(scores.get(i, 0.0), SHARED_WORD_SCORE)
        chosen, chars = [], 0
        for i, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])):
            text = entries[i].text
            if len(chosen) >= SELECT_MAX_PHRASES or chars + len(text) + 2 > SELECT_MAX_CHARS:
                break
            chosen.append(text)
            chars += len(text) + 2
        return tuple(chosen)

    def _score(self, gram: str, language: str, scores: dict[int, float]) -> None:
        """Best score of each phrase against one n-gram of the draft (updates `scores`)."""
        n = gram.count(" ") + 1
        folded = self._folded[language]
        for _, score, i in process.extract(
            gram, folded, scorer=fuzz.ratio, score_cutoff=MIN_SCORE, limit=8
        ):
            if abs(self._entries[language][i].words - n) <= 1:
                scores[i] = max(scores.get(i, 0.0), score)
        if n > 1:  # word boundaries misheard: "an escath" ~ "nescafe"
            for _, score, i in process.extract(
                gram.replace(" ", ""),
                self._joined[language],
                scorer=fuzz.ratio,
                score_cutoff=MIN_SCORE,
                limit=8,
            ):
                scores[i] = max(scores.get(i, 0.0), 0.95 * score)
        key = _key(gram, language)
        if len(key) >= 3:
            for _, score, i in process.extract(
                key, self._keys[language], scorer=fuzz.ratio, score_cutoff=85, limit=8
            ):
                # a sound-alike counts a little less than a spelling match of the same grade
                scores[i] = max(scores.get(i, 0.0), 0.95 * score)


@dataclass(frozen=True)
class HeardDraft:
    """A phrase selector whose draft is already known: what a partial decode of the same
    utterance heard (asr.streaming: Speculation.heard). The first pass then needs no draft
    decode of its own, ~105 ms of a final on 2 CPU cores (docs/latency.md).

    index: the selector that would have drafted; heard: the partial decode's readings."""

    index: PhraseIndex
    heard: tuple[str, ...]

    @property
    def needs_draft(self) -> bool:
        return False

    def select(self, drafts: Sequence[str], language: str) -> tuple[str, ...]:
        return self.index.select(self.heard, language)


def _key(text: str, language: str) -> str:
    return spanish_key(text) if language == "es" else english_key(text)


def _chars(texts: Iterable[str]) -> int:
    return sum(len(t) + 2 for t in texts)


def _ngrams(words: list[str]) -> list[str]:
    """Word n-grams (1..MAX_NGRAM) that hold at least one content word of 3+ letters."""
    out = []
    for i in range(len(words)):
        for n in range(1, MAX_NGRAM + 1):
            gram = words[i : i + n]
            if len(gram) < n:
                break
            if any(len(w) >= 3 and w not in STOPWORDS for w in gram):
                out.append(" ".join(gram))
    return out


def catalog_phrases(inventory) -> PhraseIndex:
    """The store's words per language: brands, brand + product line, department names,
    associates' names. From the inventory database; from the curated lists when it is down
    (assistant.gazetteer does the same for the baseline parser)."""
    from assistant.inventory import InventoryUnavailable

    try:
        return _from_inventory(inventory)
    except InventoryUnavailable as error:
        log.warning("catalog phrases from the curated lists (inventory unavailable: %s)", error)
    return _from_lists()


def _from_inventory(inventory) -> PhraseIndex:
    en: dict[str, None] = {}
    es: dict[str, None] = {}
    for product in inventory.products().values():
        for bucket in (en, es):
            bucket[product.brand] = None
        en[f"{product.brand} {product.product_en}"] = None
        es[f"{product.product_es} {product.brand}"] = None
    for d in inventory.departments().values():  # common nouns: lower case, as mid-sentence
        for name in (d.name_en, *d.aliases_en):
            en[name.lower()] = None
        for name in (d.name_es, *d.aliases_es):
            es[name.lower()] = None
    for name in inventory.all_associate_names():
        for bucket in (en, es):
            bucket[name] = bucket[name.split()[0]] = None
    return PhraseIndex({"en": tuple(en), "es": tuple(es)})


def _from_lists() -> PhraseIndex:
    from assistant.inventory.catalog import load_lists

    data = load_lists()
    en: dict[str, None] = {}
    es: dict[str, None] = {}
    for d in data["departments"]:
        for name in (d["en"], *d["aliases_en"]):
            en[name.lower()] = None
        for name in (d["es"], *d["aliases_es"]):
            es[name.lower()] = None
        for t in d["types"]:
            for b in t["brands"]:
                brand = b["brand"] if isinstance(b, dict) else b
                line_en = b.get("line", "") if isinstance(b, dict) else ""
                line_es = b.get("line_es", line_en) if isinstance(b, dict) else ""
                en[brand] = es[brand] = None
                en[f"{brand} {line_en or t['en']}"] = None
                es[f"{line_es or t['es']} {brand}"] = None
    people = data["people"]
    for name in people["first_en"] + people["first_es"]:
        en[name] = es[name] = None
    return PhraseIndex({"en": tuple(en), "es": tuple(es)})
