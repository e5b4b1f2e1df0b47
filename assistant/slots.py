"""Slot filling for domain packs: each entity the student finds is put on its slot's
canonical value (DomainPack.canonical), so that "8 oz" and "eight ounce" answer alike.

Wraps any nlu.schema.Parser; the spans are the student's: `Entity.value` is added, and a
span of a closed slot that names no value is dropped.
"""

from __future__ import annotations

from dataclasses import replace

from asr.nbest import NBest
from assistant.domain import DomainPack
from nlu.schema import NluResult

# Joint n-best reading: each distinct slot a hypothesis fills with one of the pack's values
# adds this many nats to its score. 1 is the plain choice (a slot the grammar knows is worth
# an e-fold of likelihood); on the coffee development clips it takes clean acceptance from
# 96.7% (0: docs/coffee_ablation/no_joint_nbest.md) to 98.0% (docs/coffee_benchmark.md).
SLOT_BONUS_NATS = 1.0


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


def rank_by_slots(
    nbest: NBest, nlus: list[NluResult], bonus: float = SLOT_BONUS_NATS
) -> tuple[NBest, list[NluResult]]:
    """The n-best list re-sorted with `bonus` added to each hypothesis's score per distinct
    slot its parse fills with a pack value, and the parses in the new order.

    Whisper's top reading often drops or garbles a slot that a close second hears ("I" before
    "I want a small double shot iced mocha"); the pack's values say which reading is an order.
    nlus: the parses of `nbest.hypotheses`, in order (SlotFiller output)."""
    if len(nlus) != len(nbest.hypotheses):
        raise ValueError("one parse per hypothesis expected")
    scored = [
        (replace(h, score=h.score + bonus * len({e.label for e in n.entities if e.value})), n)
        for h, n in zip(nbest.hypotheses, nlus, strict=True)
    ]
    scored.sort(key=lambda pair: pair[0].score, reverse=True)
    return replace(nbest, hypotheses=tuple(h for h, _ in scored)), [n for _, n in scored]
