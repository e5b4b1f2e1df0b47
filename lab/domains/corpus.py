"""A domain pack's phrasing templates -> a labelled corpus for lab.nlu.train.

Template syntax (the same marks as the retail corpus, docs/domain_packs.md):
`(a|b|c)` one alternative, `[x]` optional, `{slot}` a value of that slot (labelled with the
slot's name), nested freely. Every row is written in the trainer's shape,
{"text", "language", "intent", "entities": [{"label", "start", "end", "text"}], "template"},
with labels.json (the pack's LabelSet) beside the splits.

Whole templates are held out for dev and test (a tenth each, when an intent has at least
five), so the scores measure phrasings the student never saw; rows are also written in the
styles a first pass writes (capitalized and punctuated, or bare lower case), with the
pack's aliases for values ("8 ounce" for "eight ounce") and the odd filler word.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from assistant.domain import DomainPack

log = logging.getLogger(__name__)
SPLITS = ("train", "dev", "test")
FILLERS = {"en": ("um", "uh", "so", "okay"), "es": ("eh", "este", "bueno", "pues")}


class TemplateError(ValueError):
    """A template that does not parse (unbalanced brackets, unknown slot)."""


# A parsed template is a sequence of nodes: str (literal), ("slot", name),
# ("alt", [seq, ...]) or ("opt", seq).
Node = str | tuple


def parse_template(text: str, slots: set[str]) -> list[Node]:
    """Template string -> node sequence; raises TemplateError naming the problem."""
    pos = 0

    def seq(stop: str) -> list[Node]:
        nonlocal pos
        out: list[Node] = []
        literal = ""
        while pos < len(text) and text[pos] not in stop:
            ch = text[pos]
            if ch in "([{":
                if literal:
                    out.append(literal)
                    literal = ""
                pos += 1
                if ch == "(":
                    alts = [seq("|)")]
                    while pos < len(text) and text[pos] == "|":
                        pos += 1
                        alts.append(seq("|)"))
                    expect(")")
                    out.append(("alt", alts))
                elif ch == "[":
                    out.append(("opt", seq("]")))
                    expect("]")
                else:
                    end = text.find("}", pos)
                    name = text[pos:end] if end > 0 else ""
                    if name not in slots:
                        raise TemplateError(f"{text!r}: unknown slot {{{name}}}")
                    out.append(("slot", name))
                    pos = end + 1
            elif ch in ")]}|":
                raise TemplateError(f"{text!r}: unexpected {ch!r} at {pos}")
            else:
                literal += ch
                pos += 1
        if literal:
            out.append(literal)
        return out

    def expect(ch: str) -> None:
        nonlocal pos
        if pos >= len(text) or text[pos] != ch:
            raise TemplateError(f"{text!r}: missing {ch!r}")
        pos += 1

    nodes = seq("")
    if pos != len(text):
        raise TemplateError(f"{text!r}: unexpected {text[pos]!r} at {pos}")
    return nodes


@dataclass
class _Builder:
    """Appends words and labelled spans with single spaces between words."""

    text: str = ""
    entities: list[dict] = field(default_factory=list)

    def add(self, piece: str, label: str | None = None) -> None:
        """Literal template text as written (runs of spaces collapsed), or a slot value
        (`label`) as a span set off by a space from what comes before it."""
        if label is None:
            for i, word in enumerate(piece.split(" ")):
                if i:
                    self._space()
                self.text += word
            return
        self._space()
        value = " ".join(piece.split())
        start = len(self.text)
        self.text += value
        self.entities.append({"label": label, "start": start, "end": len(self.text), "text": value})

    def _space(self) -> None:
        if self.text and not self.text.endswith(" "):
            self.text += " "


class PackRenderer:
    """Samples sentences from a pack's templates (one verb: `render`)."""

    def __init__(self, pack: DomainPack, rng: random.Random, alias_share: float = 0.3):
        self.pack = pack
        self.rng = rng
        self.alias_share = alias_share
        names = set(pack.labels.entities)
        self.parsed: dict[tuple[str, str, int], list[Node]] = {
            (lang, intent, i): parse_template(t, names)
            for lang, per in pack.templates.items()
            for intent, lines in per.items()
            for i, t in enumerate(lines)
        }
        for (_, _, _), nodes in self.parsed.items():
            for name in _slot_names(nodes):
                if not pack.slots.get(name) or not pack.slots[name].values:
                    raise TemplateError(f"slot {name!r} is used in a template but lists no values")

    def _value(self, slot: str) -> str:
        spec = self.pack.slots[slot]
        value = self.rng.choice(spec.values)
        aliases = spec.aliases.get(value, ())
        if aliases and self.rng.random() < self.alias_share:
            return self.rng.choice(aliases)
        return value

    def _emit(self, nodes: list[Node], out: _Builder) -> None:
        for node in nodes:
            if isinstance(node, str):
                out.add(node)
            elif node[0] == "slot":
                out.add(self._value(node[1]), node[1])
            elif node[0] == "alt":
                self._emit(self.rng.choice(node[1]), out)
            elif self.rng.random() < 0.5:  # "opt"
                self._emit(node[1], out)

    def render(self, key: tuple[str, str, int]) -> dict:
        """One row from template `key` = (language, intent, index), in a random style."""
        lang, intent, index = key
        out = _Builder()
        if self.rng.random() < 0.08:
            out.add(self.rng.choice(FILLERS.get(lang, FILLERS["en"])))
        self._emit(self.parsed[key], out)
        row = {
            "text": out.text.strip(),
            "language": lang,
            "intent": intent,
            "entities": out.entities,
            "template": f"{lang}.{intent}.{index}",
        }
        return _style(row, self.rng)


def _slot_names(nodes: list[Node]) -> set[str]:
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, str):
            continue
        if node[0] == "slot":
            names.add(node[1])
        elif node[0] == "alt":
            for alt in node[1]:
                names |= _slot_names(alt)
        else:
            names |= _slot_names(node[1])
    return names


def _style(row: dict, rng: random.Random) -> dict:
    """Half the rows as a first pass writes them: capital first letter, a final mark."""
    text = row["text"]
    if text and rng.random() < 0.5:
        mark = "?" if row["language"] == "en" and rng.random() < 0.3 else "."
        text = text[0].upper() + text[1:] + mark
        if row["language"] == "es" and mark == "?":
            text = "¿" + text  # shifts every span by one
            row["entities"] = [
                e | {"start": e["start"] + 1, "end": e["end"] + 1} for e in row["entities"]
            ]
    # a capitalized first word may be an entity: its text is what the row now says
    entities = [e | {"text": text[e["start"] : e["end"]]} for e in row["entities"]]
    return row | {"text": text, "entities": entities}


def split_templates(pack: DomainPack, rng: random.Random) -> dict[str, list[tuple]]:
    """Template keys per split: a tenth of each intent's templates held out for dev and for
    test when it has at least five; otherwise every split samples all of them."""
    out: dict[str, list[tuple]] = {s: [] for s in SPLITS}
    for lang, per in pack.templates.items():
        for intent, lines in per.items():
            keys = [(lang, intent, i) for i in range(len(lines))]
            if len(keys) < 5:
                for split in SPLITS:
                    out[split] += keys
                continue
            rng.shuffle(keys)
            k = max(1, len(keys) // 10)
            out["dev"] += keys[:k]
            out["test"] += keys[k : 2 * k]
            out["train"] += keys[2 * k :]
    return out


def build_corpus(pack: DomainPack, out_dir: str | Path, rows: int = 6000, seed: int = 13) -> dict:
    """Write train/dev/test.jsonl (rows, rows/10, rows/10) and labels.json; returns stats.

    Rows are spread over intents in proportion to their templates, unique texts where the
    grammar allows (a few tries per row)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    renderer = PackRenderer(pack, rng)
    keys = split_templates(pack, rng)
    stats: dict = {"pack": pack.name, "seed": seed, "splits": {}}
    for split in SPLITS:
        n = rows if split == "train" else max(rows // 10, 1)
        seen: set[str] = set()
        written = []
        for _ in range(n):
            for _attempt in range(5):
                row = renderer.render(rng.choice(keys[split]))
                if row["text"] not in seen:
                    break
            seen.add(row["text"])
            written.append(row)
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for row in written:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        by_intent: dict[str, int] = {}
        for row in written:
            by_intent[row["intent"]] = by_intent.get(row["intent"], 0) + 1
        stats["splits"][split] = {
            "rows": len(written),
            "unique_texts": len(seen),
            "templates": len(keys[split]),
            "by_intent": by_intent,
        }
    (out / "labels.json").write_text(json.dumps(pack.labels.to_json(), indent=1))
    (out / "stats.json").write_text(json.dumps(stats, indent=1))
    log.info("corpus %s: %s", out, stats["splits"])
    return stats
