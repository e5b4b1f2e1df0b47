"""Picovoice Rhino context YAML -> a domain pack's templates and slots.

Rhino's expression syntax: `[a, b]` one of the choices, `(x)` optional, `$slot:name` a slot
(the variable name is the label), `@macro` a shared choice list. Ours (lab.domains.corpus):
`(a|b)`, `[x]`, `{name}`. Choices are written lower-case: the student is trained on both
cases anyway, and the benchmark compares label text without case.
"""

from __future__ import annotations

import re

_SLOT = re.compile(r"\$[A-Za-z0-9_]+:([A-Za-z0-9_]+)")
_MACRO = re.compile(r"@([A-Za-z0-9_]+)")


def convert_expression(expression: str, macros: dict[str, list[str]] | None = None) -> str:
    """One Rhino expression -> one pack template (words lower-cased, slot names kept)."""
    text = _MACRO.sub(lambda m: "[" + ", ".join((macros or {})[m.group(1)]) + "]", expression)
    out = []
    for part in re.split(r"(\$[A-Za-z0-9_]+:[A-Za-z0-9_]+)", text):
        slot = _SLOT.fullmatch(part)
        if slot:
            out.append("{" + slot.group(1) + "}")
            continue
        part = part.lower()
        # choices first, into placeholders, so that optional words can take the brackets
        part = re.sub(
            r"\[([^\]]*)\]",
            lambda m: "\x01" + "|".join(c.strip() for c in m.group(1).split(",")) + "\x02",
            part,
        )
        part = re.sub(r"\(([^)]*)\)", r"[\1]", part)
        out.append(part.replace("\x01", "(").replace("\x02", ")"))
    return "".join(out)


def convert_context(context: dict) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """A loaded Rhino file's `context` -> (intent -> templates, slot -> values)."""
    macros = context.get("macros") or {}
    templates = {
        intent: [convert_expression(e, macros) for e in expressions]
        for intent, expressions in context["expressions"].items()
    }
    slots = {name: [v.strip() for v in values] for name, values in context["slots"].items()}
    return templates, slots
