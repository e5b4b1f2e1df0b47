"""The gazetteer: the store's surface forms per label, and the longest-match core over them.

Shared by the baseline parser (entities), the linker and phrases (via STOPWORDS and fold)
and the second pass (rescoring.combine: `covered_words`, the catalog feature). Phrases are
compared as folded word tuples (textnorm.fold: case, accents, apostrophes, punctuation).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from nlu.lexicon import STOPWORDS
from textnorm import fold

# a gazetteer phrase that fits several labels: which one wins (lower first)
LABEL_PRIORITY = {"BRAND": 0, "PRODUCT": 1, "PERSON": 2, "DEPARTMENT": 3, "COLOR": 4}


@dataclass(frozen=True)
class Gazetteer:
    """Plain lists of surface forms per label (the catalog's names, aliases and mishearings)."""

    brands: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()
    persons: tuple[str, ...] = ()
    _index: dict = field(default_factory=dict, compare=False, repr=False)

    def index(self) -> dict[tuple[str, ...], str]:
        """Folded token tuple -> label (the highest-priority label when a phrase has several)."""
        if not self._index:
            groups = (
                ("BRAND", self.brands),
                ("PRODUCT", self.products),
                ("DEPARTMENT", self.departments),
                ("COLOR", self.colors),
                ("PERSON", self.persons),
            )
            for label, phrases in groups:
                for phrase in phrases:
                    key = tuple(fold(phrase).split())
                    if not key or (len(key) == 1 and key[0] in STOPWORDS):
                        continue
                    if len(key) == 1 and len(key[0]) < 2:
                        continue
                    old = self._index.get(key)
                    if old is None or LABEL_PRIORITY[label] < LABEL_PRIORITY[old]:
                        self._index[key] = label
        return self._index

    @cached_property
    def max_len(self) -> int:
        """Words of the longest phrase (cached: looked up at every token)."""
        return max((len(k) for k in self.index()), default=1)

    @cached_property
    def first_words(self) -> frozenset[str]:
        """The words that start a phrase."""
        return frozenset(k[0] for k in self.index())

    def longest_match(self, tokens: Sequence[str], i: int) -> tuple[int, str] | None:
        """(tokens used, label) of the longest phrase starting at tokens[i], or None.

        tokens: folded tokens (one may hold several words: "&" folds to "and")."""
        head = tokens[i].split()
        if not head or head[0] not in self.first_words:
            return None  # most tokens start no phrase: one set lookup instead of max_len
        index = self.index()
        for n in range(min(self.max_len, len(tokens) - i), 0, -1):
            label = index.get(tuple(w for t in tokens[i : i + n] for w in t.split()))
            if label:
                return n, label
        return None

    def covered_words(self, text: str) -> int:
        """Words of `text` inside gazetteer phrases, matched left to right, longest first
        (the second pass's catalog feature: "tide pods" covers 2 words, "tied pods" 0)."""
        tokens, i, covered = fold(text).split(), 0, 0
        while i < len(tokens):
            match = self.longest_match(tokens, i)
            covered += match[0] if match else 0
            i += match[0] if match else 1
        return covered

    @classmethod
    def from_lists(cls, **lists: Iterable[str]) -> Gazetteer:
        return cls(**{k: tuple(dict.fromkeys(v)) for k, v in lists.items()})

    @classmethod
    def from_catalog_rows(
        cls,
        rows: Iterable[dict],
        persons: Iterable[str] = (),
        departments: Iterable[str] = (),
    ) -> Gazetteer:
        """Surface forms of catalog rows (the objects of `assistant catalog --json`): brand and
        brand_aliases; product_en/es and aliases_en/es (product lines and spoken types);
        color/color_es and their aliases; department/department_es. Persons (first names) and
        extra department aliases are not in the rows, so the caller hands them in."""
        lists: dict[str, list[str]] = {"brands": [], "products": [], "colors": []}
        depts = list(departments)
        for row in rows:
            lists["brands"] += [row.get("brand") or "", *(row.get("brand_aliases") or [])]
            lists["products"] += [row.get("product_en") or "", row.get("product_es") or ""]
            lists["products"] += [*(row.get("aliases_en") or []), *(row.get("aliases_es") or [])]
            lists["colors"] += [row.get("color") or "", row.get("color_es") or ""]
            lists["colors"] += row.get("color_aliases_en") or []
            lists["colors"] += row.get("color_aliases_es") or []
            depts += [row.get("department") or "", row.get("department_es") or ""]
        return cls.from_lists(
            **{k: [x for x in v if x] for k, v in lists.items()},
            departments=[d for d in depts if d],
            persons=list(persons),
        )

    @classmethod
    def from_catalog_jsonl(
        cls, path: str | Path, persons: Iterable[str] = (), departments: Iterable[str] = ()
    ) -> Gazetteer:
        """`from_catalog_rows` over a JSONL file (one catalog row per line)."""
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return cls.from_catalog_rows(rows, persons, departments)
