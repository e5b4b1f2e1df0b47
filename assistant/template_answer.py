"""Answers from a domain pack's answer templates, for packs without a plug-in answerer.

A template names slots in braces and puts optional chunks in square brackets; a chunk is
dropped when a slot inside it was not heard:

    "One {size} {coffeeDrink}[ with {milkAmount}][ and {sugarAmount}], coming up."
    + {coffeeDrink: "latte", milkAmount: "soy milk"} -> "One latte with soy milk, coming up."

Slot values are the canonical values assistant.slots fills in, or the text heard when the
slot lists none.
"""

from __future__ import annotations

import re

from assistant.answer import Answer
from assistant.domain import DomainPack
from assistant.slots import slot_values
from nlu.schema import NluResult

_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NOT_UNDERSTOOD = {
    "en": "Sorry, I did not understand that.",
    "es": "Lo siento, no lo entendí.",
}


def fill_template(template: str, values: dict[str, str]) -> str:
    """Fill `{slot}`s from `values`; drop `[...]` chunks with a missing slot; tidy spaces."""

    def chunk(match: re.Match) -> str:
        body = match.group(1)
        return body if all(values.get(s) for s in _SLOT.findall(body)) else ""

    text = _OPTIONAL.sub(chunk, template)
    text = _SLOT.sub(lambda m: values.get(m.group(1)) or "", text)
    text = re.sub(r"\s+", " ", text)
    return re.sub(r"\s+([,.?!;:])", r"\1", text).strip()


class TemplateAnswerer:
    """NluResult -> Answer from the pack's templates; one verb: `answer`.

    fallback: the plug-in answerer for intents the pack has no template for (the retail
    pack's inventory answerer), or None (a fixed "not understood" answer).
    """

    def __init__(self, pack: DomainPack, fallback=None):
        self.pack = pack
        self.fallback = fallback

    def answer(self, nlu: NluResult, store: str = "1", **context) -> Answer:
        lang = nlu.language if nlu.language in self.pack.languages else self.pack.languages[0]
        template = self.pack.answers.get(lang, {}).get(nlu.intent)
        if template is None and self.fallback is not None:
            return self.fallback.answer(nlu, store, **context)
        values = slot_values(self.pack, nlu)
        if template is None:
            text = _NOT_UNDERSTOOD.get(lang, _NOT_UNDERSTOOD["en"])
            return Answer(text, lang, nlu.intent, "out_of_scope", store=store)
        return Answer(
            fill_template(template, values),
            lang,
            nlu.intent,
            "template",
            store=store,
            details={"slots": values},
        )
