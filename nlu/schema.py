"""Label schema (../shared/ANNOTATION.md) and the typed output of every parser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

INTENTS: tuple[str, ...] = (
    "find_product",
    "check_stock",
    "top_sellers",
    "associate_schedule",
    "out_of_scope",
)
ENTITY_LABELS: tuple[str, ...] = (
    "BRAND",
    "PRODUCT",
    "SIZE",
    "COLOR",
    "DEPARTMENT",
    "DATE",
    "PERSON",
    "STORE",
)
# BIO tag set shared by corpus, teacher and student: index 0 is "O".
BIO_TAGS: tuple[str, ...] = ("O",) + tuple(
    f"{prefix}-{label}" for label in ENTITY_LABELS for prefix in ("B", "I")
)


@dataclass(frozen=True)
class Entity:
    """A labelled span; start/end are character offsets into the parsed text (end exclusive)."""

    label: str
    text: str
    start: int
    end: int
    score: float = 1.0

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class NluResult:
    """What a parser makes of one query."""

    text: str
    language: str  # "en" or "es"
    intent: str
    intent_score: float
    entities: tuple[Entity, ...] = ()

    def to_dict(self) -> dict:
        """The wire shape of `assistant parse --json` (DESIGN.md)."""
        return {
            "text": self.text,
            "language": self.language,
            "intent": {"name": self.intent, "score": round(self.intent_score, 4)},
            "entities": [e.to_dict() for e in self.entities],
        }

    def first(self, label: str) -> Entity | None:
        return next((e for e in self.entities if e.label == label), None)


@runtime_checkable
class Parser(Protocol):
    """Text -> intent + entity spans. Implemented by the baseline rule parser and the ONNX student."""

    def parse(self, text: str, language: str | None = None) -> NluResult: ...

    def parse_batch(
        self, texts: list[str], languages: list[str | None] | None = None
    ) -> list[NluResult]: ...
