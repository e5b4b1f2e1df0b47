"""Domain packs: a domain's intents, slots, phrasings, answers and phrase list, as data.

A pack is one directory holding `pack.yaml` (docs/domain_packs.md is the reference). The runtime
reads what serving needs from it: the label set, the slot values (to put what was heard on a
slot's canonical value), the first pass's phrase list, the answer templates or the plug-in
answerer, and the student's model directory. The build command (`python -m lab.domains
build`) reads the rest: phrasing templates and corpus settings.

    pack = load_domain("coffee")          # a name under assistant/domains/, or a directory
    pack.labels.intents                   # ("orderDrink", "out_of_scope")
    pack.canonical("size", "8 ounce")     # "eight ounce"
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from assistant.errors import UserError
from nlu.schema import LabelSet
from textnorm import normalize

PACKS_DIR = Path(__file__).parent / "domains"
DEFAULT_DOMAIN = "retail"
DOMAIN_HELP = (
    "domain pack: a name under assistant/domains (retail, coffee) or a pack directory "
    "(docs/domain_packs.md)"
)
PLUGIN_ANSWERERS = ("retail", "templates")  # retail: assistant.answer.Answerer over the inventory


class DomainError(UserError, ValueError):
    """A pack that cannot be found or does not follow the format (message says where). A
    UserError, so every command prints it; a ValueError, so a config's check reports it."""


@dataclass(frozen=True)
class Slot:
    """A slot (entity label) and, where the pack lists them, its canonical values.

    values: the label texts answers and evaluations use ("eight ounce").
    aliases: canonical value -> other ways it is said or written ("8 oz").
    """

    name: str
    values: tuple[str, ...] = ()
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def surface_forms(self, language: str) -> dict[str, str]:
        """Every normalized way of saying a value -> its canonical value."""
        out: dict[str, str] = {}
        for value in self.values:
            for form in (value, *self.aliases.get(value, ())):
                out.setdefault(normalize(form, language), value)
        return out


@dataclass(frozen=True, eq=False)  # compared and hashed by identity (loaded once, cached)
class DomainPack:
    """A loaded pack. templates / answers: language -> intent -> strings (see the reference)."""

    name: str
    root: Path
    languages: tuple[str, ...]
    labels: LabelSet
    intent_slots: dict[str, tuple[str, ...]]
    slots: dict[str, Slot]
    templates: dict[str, dict[str, tuple[str, ...]]]
    answers: dict[str, dict[str, str]]
    answerer: str  # one of PLUGIN_ANSWERERS
    phrases: tuple[str, ...]  # first-pass bias list; () with the retail catalog's own phrases
    student: Path | None  # None: the student installed with nlu (nlu.runtime)
    # Whether the shipped RescoreBERT (trained on retail n-best lists) reranks this domain's
    # readings; a pack turns it off where it was measured to hurt (docs/coffee_benchmark.md).
    second_pass: bool = True
    corpus: dict = field(default_factory=dict)  # corpus settings for the build command
    build: dict = field(default_factory=dict)  # training settings for the build command

    def require_student(self) -> Path | None:
        """The student directory; DomainError saying how to build it when the pack's own
        student is not there (None: the student installed with nlu)."""
        if self.student is not None and not (self.student / "labels.json").is_file():
            raise DomainError(
                f"domain {self.name!r} has no student yet; build it with "
                f"`python -m lab.domains build {self.name}`"
            )
        if self.student is None and not self.is_retail:
            raise DomainError(f"domain {self.name!r}: pack.yaml names no `student:` directory")
        return self.student

    @property
    def is_retail(self) -> bool:
        """The retail pack's catalog and answers come from the inventory database."""
        return self.answerer == "retail"

    def is_closed(self, slot: str) -> bool:
        """True when the pack lists the slot's values (nothing else is one of them)."""
        spec = self.slots.get(slot)
        return bool(spec and spec.values)

    def canonical(self, slot: str, text: str, language: str | None = None) -> str | None:
        """The canonical value of `slot` that `text` names (after textnorm.normalize), or the
        closest one within a small edit distance (rapidfuzz ratio >= 88); None when the slot
        lists no values or nothing is close."""
        language = language if language in self.languages else self.languages[0]
        forms = _forms(self, slot, language)
        if not forms:
            return None
        key = normalize(text, language)
        if key in forms:
            return forms[key]
        from rapidfuzz import fuzz, process  # noqa: PLC0415

        # 88: "late" -> "latte", "cappucino" -> "cappuccino"; not "a little bit of" -> "a
        # little bit of milk" (86), which would name a milk nobody said
        best = process.extractOne(key, list(forms), scorer=fuzz.ratio, score_cutoff=88)
        return forms[best[0]] if best else None


@functools.lru_cache(maxsize=256)
def _forms(pack: DomainPack, slot: str, language: str) -> dict[str, str]:
    spec = pack.slots.get(slot)
    return spec.surface_forms(language) if spec else {}


def pack_dir(name_or_dir: str | Path) -> Path:
    """A pack's directory: a path that holds pack.yaml, or a name under assistant/domains/."""
    path = Path(name_or_dir)
    if (path / "pack.yaml").exists():
        return path
    if "/" not in str(name_or_dir) and (PACKS_DIR / str(name_or_dir) / "pack.yaml").exists():
        return PACKS_DIR / str(name_or_dir)
    known = ", ".join(available_domains())
    raise DomainError(f"no domain pack {str(name_or_dir)!r} (installed: {known})")


def available_domains() -> list[str]:
    return sorted(p.parent.name for p in PACKS_DIR.glob("*/pack.yaml"))


def _read_yaml(path: Path) -> dict:
    import yaml  # noqa: PLC0415

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DomainError(f"{path.name}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError:
        raise DomainError(f"{path.name}: not UTF-8 text") from None
    except yaml.YAMLError as error:
        raise DomainError(f"{path.name}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise DomainError(f"{path.name}: expected a mapping at the top")
    return data


def _strings(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DomainError(f"{where}: expected a string or a list of strings")
    return tuple(value)


def _templates(root: Path, value, languages: tuple[str, ...], intents) -> dict:
    """`templates:` inline (language -> intent -> list), the name of a YAML file in the pack
    holding that mapping, or a list of those (merged in order: an imported grammar, then
    the pack's own phrasings)."""
    parts = value if isinstance(value, list) else [value]
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for part in parts:
        if isinstance(part, str):
            part = _read_yaml(root / part)
        for lang, per_intent in (part or {}).items():
            if lang not in languages:
                raise DomainError(f"templates: language {lang!r} is not in languages {languages}")
            for intent, lines in (per_intent or {}).items():
                if intent not in intents:
                    raise DomainError(f"templates.{lang}: intent {intent!r} is not declared")
                have = out.setdefault(lang, {}).get(intent, ())
                out[lang][intent] = have + _strings(lines, f"templates.{lang}.{intent}")
    return out


def _slots(value: dict) -> dict[str, Slot]:
    out = {}
    for name, spec in (value or {}).items():
        values = tuple(v.strip() for v in _strings(spec.get("values", []), f"slots.{name}"))
        aliases = {
            k.strip(): _strings(v, f"slots.{name}.aliases.{k}")
            for k, v in (spec.get("aliases") or {}).items()
        }
        unknown = set(aliases) - set(values)
        if unknown:
            raise DomainError(f"slots.{name}.aliases: {sorted(unknown)} are not values")
        out[name] = Slot(name, values, aliases)
    return out


def _phrases(value, slots: dict[str, Slot]) -> tuple[str, ...]:
    """`phrases:` a list, or "slot-values" (every listed value and alias, in order)."""
    if value in (None, "slot-values"):
        forms = [v for s in slots.values() for v in s.values]
        forms += [a for s in slots.values() for al in s.aliases.values() for a in al]
        return tuple(dict.fromkeys(forms))
    if value == "catalog":
        return ()
    return _strings(value, "phrases")


@functools.lru_cache(maxsize=16)
def load_domain(name_or_dir: str | Path = DEFAULT_DOMAIN) -> DomainPack:
    """Read and check a pack. Raises DomainError with the file and field that is wrong."""
    root = pack_dir(name_or_dir).resolve()
    data = _read_yaml(root / "pack.yaml")
    try:
        name = str(data["name"])
        languages = _strings(data["languages"], "languages")
        intents_spec = data["intents"]
    except KeyError as missing:
        raise DomainError(f"pack.yaml: missing {missing.args[0]!r}") from None
    if not isinstance(intents_spec, dict) or not intents_spec:
        raise DomainError("pack.yaml: intents must map each intent to its slots")
    for intent, spec in intents_spec.items():
        if spec is not None and not isinstance(spec, dict):
            raise DomainError(f"intents.{intent}: expected a mapping like {{slots: [...]}}")
    intent_slots = {
        intent: _strings((spec or {}).get("slots", []), f"intents.{intent}.slots")
        for intent, spec in intents_spec.items()
    }
    # `include:` fragments (an imported grammar): their templates come first, their slot
    # values are kept, and pack.yaml's own slot entries add aliases or replace values.
    fragments = [_read_yaml(root / name) for name in _strings(data.get("include", []), "include")]
    raw_slots: dict = {}
    for part in [*(f.get("slots") or {} for f in fragments), data.get("slots") or {}]:
        for slot, spec in part.items():
            if spec is not None and not isinstance(spec, list | dict):
                raise DomainError(f"slots.{slot}: expected a list of values or a mapping")
            spec = {"values": spec} if isinstance(spec, list) else dict(spec or {})
            raw_slots[slot] = raw_slots.get(slot, {}) | spec
    templates = [f["templates"] for f in fragments if f.get("templates")]
    own = data.get("templates")
    templates += own if isinstance(own, list) else [own] if own else []
    slots = _slots(raw_slots)
    # the tag order the student predicts: `entities:`, else the slots in declaration order
    entities = tuple(data.get("entities") or slots)
    for intent, names in intent_slots.items():
        for slot in names:
            if slot not in entities:
                raise DomainError(f"intents.{intent}: slot {slot!r} is not an entity label")
    answerer = data.get("answerer", "templates")
    if answerer not in PLUGIN_ANSWERERS:
        raise DomainError(f"answerer must be one of {PLUGIN_ANSWERERS}, not {answerer!r}")
    answers = {
        lang: {i: str(t) for i, t in (per or {}).items()}
        for lang, per in (data.get("answers") or {}).items()
    }
    # `student:` a directory in the pack; omitted: the pack's student/ once a build installed
    # one there, else the student installed with nlu (retail)
    student = data.get("student") or ("student" if (root / "student").is_dir() else None)
    return DomainPack(
        name=name,
        root=root,
        languages=languages,
        labels=LabelSet(tuple(intent_slots), entities),
        intent_slots=intent_slots,
        slots=slots,
        templates=_templates(root, templates, languages, intent_slots),
        answers=answers,
        answerer=answerer,
        phrases=_phrases(data.get("phrases"), slots),
        student=(root / student) if student else None,
        second_pass=bool(data.get("second_pass", True)),
        corpus=dict(data.get("corpus") or {}),
        build=dict(data.get("build") or {}),
    )
