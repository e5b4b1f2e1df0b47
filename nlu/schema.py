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


def bio_tags(entities: tuple[str, ...]) -> tuple[str, ...]:
    """The BIO tag set of an entity list: index 0 is "O", then B-X, I-X per label in order."""
    return ("O",) + tuple(f"{prefix}-{label}" for label in entities for prefix in ("B", "I"))


@dataclass(frozen=True)
class LabelSet:
    """A domain's intents and entity labels, and the BIO tags the tagger predicts.

    The retail schema (ANNOTATION.md) is `RETAIL`; a domain pack (assistant.domain) declares
    its own, and a trained student carries its set in labels.json (`from_json` / `to_json`).
    """

    intents: tuple[str, ...]
    entities: tuple[str, ...]

    @property
    def tags(self) -> tuple[str, ...]:
        return bio_tags(self.entities)

    @property
    def tag_to_id(self) -> dict[str, int]:
        return {tag: i for i, tag in enumerate(self.tags)}

    def to_json(self) -> dict:
        """The labels.json shape of a model directory."""
        return {
            "intents": list(self.intents),
            "tags": list(self.tags),
            "entities": list(self.entities),
        }

    @classmethod
    def from_json(cls, data: dict) -> LabelSet:
        labels = cls(tuple(data["intents"]), tuple(data["entities"]))
        if "tags" in data and tuple(data["tags"]) != labels.tags:
            raise ValueError("labels.json: tags do not follow its entities in B/I order")
        return labels


# BIO tag set shared by corpus, teacher and student of the retail domain: index 0 is "O".
BIO_TAGS: tuple[str, ...] = bio_tags(ENTITY_LABELS)
RETAIL = LabelSet(INTENTS, ENTITY_LABELS)


@dataclass(frozen=True)
class Entity:
    """A labelled span; start/end are character offsets into the parsed text (end exclusive).

    value: the slot's canonical value the span names, where the domain pack lists values
    ("8 oz" -> "eight ounce"); None otherwise (and then absent from the JSON).
    """

    label: str
    text: str
    start: int
    end: int
    score: float = 1.0
    value: str | None = None

    def to_dict(self) -> dict:
        out = {
            "label": self.label,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 4),
        }
        if self.value is not None:
            out["value"] = self.value
        return out


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
