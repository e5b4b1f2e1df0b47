"""Pack -> corpus -> build -> a working `assistant parse --domain`, on the tiny pack (two
intents, two slots) with a small random teacher: the same steps as a real build, in seconds."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import yaml
from inventory_db import sqlite_url  # noqa: F401

from assistant.domain import load_domain
from lab.domains.corpus import PackRenderer, TemplateError, build_corpus, parse_template
from lab.domains.rhino import convert_context, convert_expression

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "domains" / "tiny"


def test_template_marks_parse_and_render_with_exact_spans():
    nodes = parse_template("(turn|switch) on [the ]{room} lights", {"room"})
    assert nodes[0] == ("alt", [["turn"], ["switch"]]) and ("slot", "room") in nodes
    with pytest.raises(TemplateError, match="unknown slot"):
        parse_template("on {hue}", {"room"})
    with pytest.raises(TemplateError, match="missing"):
        parse_template("(a|b", {"room"})
    pack = load_domain(TINY)
    renderer = PackRenderer(pack, random.Random(0))
    for key in renderer.parsed:
        for _ in range(20):
            row = renderer.render(key)
            assert "  " not in row["text"] and row["text"] == row["text"].strip()
            for e in row["entities"]:
                assert row["text"][e["start"] : e["end"]] == e["text"]
                assert pack.canonical(e["label"], e["text"], row["language"]) is not None


def test_corpus_holds_out_whole_templates_and_is_reproducible(tmp_path):
    coffee = load_domain("coffee")
    a = build_corpus(coffee, tmp_path / "a", rows=300, seed=5)
    build_corpus(coffee, tmp_path / "b", rows=300, seed=5)
    for name in ("train.jsonl", "test.jsonl", "labels.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    rows = {
        s: [json.loads(line) for line in (tmp_path / "a" / f"{s}.jsonl").open()]
        for s in ("train", "test")
    }
    assert not {r["template"] for r in rows["test"]} & {r["template"] for r in rows["train"]}
    assert a["splits"]["train"]["rows"] == 300
    labels = json.loads((tmp_path / "a" / "labels.json").read_text())
    assert labels["intents"] == ["orderDrink", "out_of_scope"]


def test_rhino_expressions_become_pack_templates():
    assert convert_expression("[Get me, give me] (please) a $size:size $coffeeDrink:drink") == (
        "(get me|give me) [please] a {size} {drink}"
    )
    templates, slots = convert_context(
        {
            "expressions": {"order": ["@greet a $size:size"]},
            "macros": {"greet": ["hi", "hello"]},
            "slots": {"size": ["small", " large"]},
        }
    )
    assert templates == {"order": ["(hi|hello) a {size}"]} and slots == {"size": ["small", "large"]}


@pytest.fixture(scope="module")
def built_tiny(tmp_path_factory) -> Path:
    """The tiny pack, copied and built once (--tiny: a small random teacher), for every test
    that needs its student."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from lab.domains.__main__ import main as domains_main

    root = tmp_path_factory.mktemp("tiny")
    pack_dir = root / "tiny"
    shutil.copytree(TINY, pack_dir)
    load_domain.cache_clear()
    assert domains_main(["build", str(pack_dir), "--out", str(root / "work"), "--tiny"]) == 0
    return pack_dir


def test_tiny_pack_builds_to_a_working_parse(built_tiny, capsys):
    from assistant import cli
    from lab.domains.__main__ import main as domains_main

    pack_dir, work = built_tiny, built_tiny.parent / "work"
    student = pack_dir / "student"
    card = json.loads((student / "card.json").read_text())
    assert card["labels"]["intents"] == ["lights_on", "set_color"]
    scores = card["metrics"]["student"]["test"]["all"]
    # The corpus is trivially separable by its verbs: even a one-layer student learns it.
    assert scores["intent_accuracy"] >= 0.9, scores
    assert scores["exact"]["micro"]["f1"] >= 0.8, scores
    # resumable: a second run finds every step done and changes nothing
    before = (student / "model.int8.onnx").read_bytes()
    assert domains_main(["build", str(pack_dir), "--out", str(work), "--tiny"]) == 0
    assert (student / "model.int8.onnx").read_bytes() == before
    capsys.readouterr()
    code = cli.main(
        [
            "parse",
            "--domain",
            str(pack_dir),
            "--json",
            "make the office lights green",
            "enciende las luces de la cocina",
        ]
    )
    assert code == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(results) == 2
    for r in results:  # the pack's labels in the usual contract
        assert r["intent"]["name"] in ("lights_on", "set_color")
        assert {e["label"] for e in r["entities"]} <= {"room", "color"}
    code = cli.main(["ask", "--domain", str(pack_dir), "--json", "make the office lights green"])
    assert code == 0
    asked = json.loads(capsys.readouterr().out)
    assert asked["answer"]["kind"] in ("template", "out_of_scope")


def _add_store_hours(pack_dir: Path) -> None:
    """The README's example: a new retail intent, by editing the pack's two YAML files."""
    text = (pack_dir / "pack.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "  out_of_scope:\n    slots: []\n",
        "  out_of_scope:\n    slots: []\n  store_hours:\n    slots: [STORE, DATE]\n",
        1,
    )
    text = text.replace(
        "answers: {}",
        'answers:\n  en: {store_hours: "Store[ {STORE}] is open 7 am to 10 pm."}\n'
        '  es: {store_hours: "La tienda[ {STORE}] abre de 7 a 22 h."}',
    )
    text = text.replace(
        "    out_of_scope: 0.14\n", "    out_of_scope: 0.14\n    store_hours: 0.1\n"
    )
    (pack_dir / "pack.yaml").write_text(text, encoding="utf-8")
    data = yaml.safe_load((pack_dir / "templates.yaml").read_text(encoding="utf-8"))
    data["en"]["store_hours"] = [
        "what time does {STORE} close {DATE>}?",
        "(when|what time) (do you|does the store) (open|close)[ {DATE>}]?",
        "{pre}store hours[ for {STORE}]",
    ]
    data["es"]["store_hours"] = [
        "¿a qué hora cierra {STORE} {DATE>}?",
        "¿(cuándo|a qué hora) (abre|cierra) la tienda[ {DATE>}]?",
        "horario de la tienda[ {STORE}]",
    ]
    (pack_dir / "templates.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")


def test_a_new_retail_intent_needs_only_the_pack_and_the_build(
    tmp_path,
    capsys,
    monkeypatch,
    sqlite_url,  # noqa: F811
):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from assistant import cli
    from lab.domains.__main__ import main as domains_main

    monkeypatch.setenv("RETAIL_ASSISTANT_DB", sqlite_url)
    pack_dir = tmp_path / "retail"
    shutil.copytree(load_domain("retail").root, pack_dir)
    _add_store_hours(pack_dir)
    load_domain.cache_clear()
    args = ["build", str(pack_dir), "--out", str(tmp_path / "work"), "--tiny", "--rows", "1500"]
    assert domains_main(args) == 0
    pack = load_domain(pack_dir)
    assert pack.student == pack_dir / "student"  # the build installed it where the pack looks
    card = json.loads((pack.student / "card.json").read_text())
    assert card["labels"]["intents"][-1] == "store_hours"
    capsys.readouterr()
    assert (
        cli.main(["parse", "--domain", str(pack_dir), "--json", "what time does the store close"])
        == 0
    )
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["intent"]["name"] in pack.labels.intents
    question = "what time does store 1 close today"
    assert cli.main(["ask", "--domain", str(pack_dir), "--db", sqlite_url, "--json", question]) == 0
    asked = json.loads(capsys.readouterr().out)
    assert asked["intent"]["name"] in pack.labels.intents and asked["answer"]["text"]
    if asked["intent"]["name"] == "store_hours":  # answered from the pack's template
        assert asked["answer"]["kind"] == "template"


def test_tiny_pack_serves_through_the_pipeline(built_tiny):
    """`serve --domain DIR`'s wiring without Whisper: the pack's phrase list reaches the first
    pass, its student parses, its values fill the slots, its template answers."""
    import numpy as np

    from asr.nbest import Hypothesis, NBest
    from assistant import events
    from assistant.pipeline import FinalRequest, PipelineConfig, load_pipeline

    pack_dir = built_tiny

    class Stub:
        """Two readings per utterance; records the phrases the pipeline biased it with."""

        def __init__(self):
            self.phrases = []

        def nbest_batch(self, audios, languages, nbest=None, phrases=None):
            self.phrases.append(phrases)
            texts = ("make the hall lights blue", "make the hall lights blew")
            hyps = tuple(Hypothesis(t, score=-0.1 * (i + 1)) for i, t in enumerate(texts))
            return [NBest(hyps, lang or "en") for lang in languages]

    stub = Stub()
    pipeline = load_pipeline(PipelineConfig(domain=str(pack_dir)), transcriber=stub)
    assert pipeline.describe()["nlu"] == "SlotFiller"
    assert pipeline.describe()["answer"] == "TemplateAnswerer"
    result = pipeline.finals([FinalRequest(np.zeros(16000, np.float32), "en", "1")])[0]
    selector = stub.phrases[0][0]
    assert "hallway" in selector.select([], "en")  # the pack's list, whole (it is short)
    event = events.final_fields(result)
    assert event["intent"]["name"] in ("lights_on", "set_color")
    for entity in event["entities"]:  # closed slots: only values the pack lists survive
        assert entity["value"] in {"hallway", "blue", "kitchen", "bedroom", "office", "garage"}
    assert event["answer"] is None or event["answer"]["kind"] in ("template", "out_of_scope")
