"""Domain packs at run time: loading and checking pack.yaml, canonical slot values, answers
from templates, and the retail pack's shape (the labels the shipped student predicts)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assistant.domain import DomainError, available_domains, load_domain
from assistant.slots import SlotFiller, slot_values
from assistant.template_answer import TemplateAnswerer, fill_template
from nlu.schema import RETAIL, Entity, NluResult

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "domains" / "tiny"


def test_installed_packs_load_with_their_labels():
    assert {"retail", "coffee"} <= set(available_domains())
    retail = load_domain("retail")
    assert retail.labels == RETAIL and retail.is_retail and retail.student is None
    assert set(retail.templates) == {"en", "es"}  # the corpus templates live in the pack
    coffee = load_domain("coffee")
    assert coffee.labels.intents == ("orderDrink", "out_of_scope")
    assert coffee.labels.entities[:2] == ("coffeeDrink", "size")
    assert len(coffee.templates["en"]["orderDrink"]) > 80  # the grammar, then our phrasings
    assert "iced mocha" in coffee.slots["coffeeDrink"].values


def test_canonical_values_from_aliases_digits_and_near_misses():
    coffee = load_domain("coffee")
    assert coffee.canonical("size", "8 oz") == "eight ounce"
    assert coffee.canonical("size", "12 ounce") == "twelve ounce"  # digits spelled out
    assert coffee.canonical("size", "Twelve ounces") == "twelve ounce"  # close enough
    assert coffee.canonical("coffeeDrink", "Cappucino") == "cappuccino"
    assert coffee.canonical("coffeeDrink", "hot chocolate") is None
    assert coffee.canonical("nonexistent", "latte") is None


def test_pack_errors_name_the_problem(tmp_path):
    with pytest.raises(DomainError, match="no domain pack 'nope'.*installed: .*coffee"):
        load_domain("nope")
    pack = tmp_path / "bad"
    shutil.copytree(TINY, pack)
    text = (pack / "pack.yaml").read_text()
    (pack / "pack.yaml").write_text(text.replace("slots: [room, color]", "slots: [room, hue]"))
    load_domain.cache_clear()
    with pytest.raises(DomainError, match="slot 'hue'"):
        load_domain(pack)
    (pack / "pack.yaml").write_text(
        text.replace("  es:\n    lights_on:", "  fr:\n    lights_on:", 1)
    )
    load_domain.cache_clear()
    with pytest.raises(DomainError, match="language 'fr'"):
        load_domain(pack)
    (pack / "pack.yaml").write_text("name: x\n")
    load_domain.cache_clear()
    with pytest.raises(DomainError, match="missing 'languages'"):
        load_domain(pack)
    (pack / "pack.yaml").write_text("name: x\nlanguages: [en]\nintents: {a: [slot]}\n")
    load_domain.cache_clear()
    with pytest.raises(DomainError, match="intents.a: expected a mapping"):
        load_domain(pack)
    (pack / "pack.yaml").write_text("name: [unclosed\n")
    load_domain.cache_clear()
    with pytest.raises(DomainError, match="not valid YAML"):
        load_domain(pack)


def test_fill_template_drops_chunks_of_missing_slots():
    t = "One[ {size}] {coffeeDrink}[ with {milkAmount}][ and {sugarAmount}], coming up."
    assert fill_template(t, {"coffeeDrink": "latte", "milkAmount": "soy milk"}) == (
        "One latte with soy milk, coming up."
    )
    assert fill_template(t, {"coffeeDrink": "mocha", "size": "large", "sugarAmount": "sugar"}) == (
        "One large mocha and sugar, coming up."
    )


class _Fixed:
    """A parser that returns one prepared result (what a student would say)."""

    def __init__(self, result: NluResult):
        self.result = result

    def parse(self, text, language=None):
        return self.result

    def parse_batch(self, texts, languages=None):
        return [self.result for _ in texts]


def test_slot_filler_and_template_answers_in_both_languages():
    pack = load_domain(TINY)
    heard = NluResult(
        "set the hall lamp to blue",
        "en",
        "set_color",
        0.9,
        (Entity("room", "hall", 8, 12), Entity("color", "blue", 21, 25)),
    )
    filled = SlotFiller(_Fixed(heard), pack).parse("set the hall lamp to blue")
    assert [e.value for e in filled.entities] == ["hallway", "blue"]
    assert filled.to_dict()["entities"][0]["value"] == "hallway"
    assert slot_values(pack, filled) == {"room": "hallway", "color": "blue"}
    answer = TemplateAnswerer(pack).answer(filled)
    assert answer.text == "The hallway lights are now blue." and answer.kind == "template"
    assert answer.to_dict()["slots"] == {"room": "hallway", "color": "blue"}
    es = NluResult(
        "luz roja en la cocina", "es", "lights_on", 0.8, (Entity("room", "cocina", 15, 21),)
    )
    assert TemplateAnswerer(pack).answer(es).text == "Luces encendidas en la cocina."


def test_retail_pack_answers_an_added_intent_from_its_template_and_the_rest_from_the_plugin():
    pack = load_domain(TINY)

    class Plugin:
        def answer(self, nlu, store="1", **context):
            return f"plugin:{nlu.intent}"

    answerer = TemplateAnswerer(pack, fallback=Plugin())
    assert answerer.answer(NluResult("x", "en", "find_product", 0.9)) == "plugin:find_product"
    assert answerer.answer(NluResult("x", "en", "lights_on", 0.9)).kind == "template"


def test_a_closed_slot_span_that_names_no_value_is_dropped():
    coffee = load_domain("coffee")
    heard = NluResult(
        "broo coffee with a little bit of",
        "en",
        "orderDrink",
        0.9,
        (
            Entity("roast", "broo", 0, 4),
            Entity("coffeeDrink", "coffee", 5, 11),
            Entity("milkAmount", "a little bit of", 17, 32),  # no milk named: not a value
        ),
    )
    filled = SlotFiller(_Fixed(heard), coffee).parse(heard.text)
    assert [(e.label, e.value) for e in filled.entities] == [("coffeeDrink", "coffee")]
    assert coffee.is_closed("roast") and not load_domain("retail").is_closed("BRAND")


def test_rank_by_slots_prefers_the_reading_that_fills_the_packs_slots():
    from asr.nbest import Hypothesis, NBest
    from assistant.slots import rank_by_slots

    nbest = NBest(
        (
            Hypothesis("I", score=-4.8),
            Hypothesis("I want a small iced mocha", score=-5.8),
            Hypothesis("I want a small eyes mocha", score=-5.9),
        ),
        "en",
    )
    nlus = [
        NluResult("I", "en", "orderDrink", 0.6),
        NluResult(
            "I want a small iced mocha",
            "en",
            "orderDrink",
            0.9,
            (
                Entity("size", "small", 9, 14, value="small"),
                Entity("coffeeDrink", "iced mocha", 15, 25, value="iced mocha"),
            ),
        ),
        NluResult(
            "I want a small eyes mocha",
            "en",
            "orderDrink",
            0.9,
            (Entity("size", "small", 9, 14, value="small"),),
        ),
    ]
    ranked, parses = rank_by_slots(nbest, nlus)
    assert ranked.text == "I want a small iced mocha" and parses[0] is nlus[1]
    assert ranked.hypotheses[0].score == pytest.approx(-3.8)  # two slots, one nat each
    assert [p.text for p in parses] == [h.text for h in ranked.hypotheses]
    same, _ = rank_by_slots(nbest, nlus, bonus=0.0)  # no bonus: the first-pass order
    assert same.text == "I"


def test_a_pack_without_its_student_is_refused_before_anything_loads(tmp_path):
    from assistant.pipeline import PipelineConfig

    with pytest.raises(ValueError, match="has no student yet; build it with `python -m lab"):
        PipelineConfig(domain=str(TINY))  # the fixture pack is never built in place
    with pytest.raises(ValueError, match="no domain pack"):
        PipelineConfig(domain=str(tmp_path))
    pack = tmp_path / "p"
    shutil.copytree(TINY, pack)
    (pack / "pack.yaml").write_text(
        "name: p\nlanguages: [en]\nintents: {a: {}}\ninclude: [gone.yaml]\n"
    )
    load_domain.cache_clear()
    with pytest.raises(ValueError, match="gone.yaml: cannot read it"):
        PipelineConfig(domain=str(pack))


def test_every_command_reports_an_unknown_pack_without_a_traceback(capsys):
    from assistant import cli

    audio = str(Path(__file__).resolve().parents[1] / "fixtures" / "audio" / "en_01_tide_pods.wav")
    for argv in (["transcribe", "--domain", "nope", audio], ["parse", "--domain", "nope", "x"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "no domain pack 'nope'" in err and "Traceback" not in err
