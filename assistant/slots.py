"""Slot filling for domain packs: each entity the student finds is put on its slot's
canonical value (DomainPack.canonical), so that "8 oz" and "eight ounce" answer alike.

Wraps any nlu.schema.Parser; the spans are the student's: `Entity.value` is added, and a
span of a closed slot that names no value is dropped.
"""

from __future__ import annotations

from dataclasses import replace

from assistant.domain import DomainPack
from nlu.schema import NluResult


class SlotFiller:
    """A Parser whose results carry canonical slot values (implements nlu.schema.Parser)."""

    def __init__(self, parser, pack: DomainPack):
        self.parser = parser
        self.pack = pack

    def fill(self, result: NluResult) -> NluResult:
        """Each entity with its canonical value. A span of a closed slot (one whose values
        the pack lists) that names none of them is dropped: "broo" is no roast, and an order
        with a roast nobody asked for is a wrong order."""
        entities = []
        for e in result.entities:
            value = self.pack.canonical(e.label, e.text, result.language)
            if value is None and self.pack.is_closed(e.label):
                continue
            entities.append(replace(e, value=value))
        return replace(result, entities=tuple(entities))

    def parse(self, text: str, language: str | None = None) -> NluResult:
        return self.fill(self.parser.parse(text, language))

    def parse_batch(
        self, texts: list[str], languages: list[str | None] | None = None
    ) -> list[NluResult]:
        return [self.fill(r) for r in self.parser.parse_batch(texts, languages)]


def slot_values(pack: DomainPack, nlu: NluResult) -> dict[str, str]:
    """label -> value (canonical where known, else the text heard): the first mention of each
    label that the intent takes (any label when the pack does not say)."""
    allowed = set(pack.intent_slots.get(nlu.intent, ())) or set(pack.labels.entities)
    out: dict[str, str] = {}
    for entity in nlu.entities:
        if entity.label in allowed and entity.label not in out:
            out[entity.label] = entity.value or entity.text
    return out
