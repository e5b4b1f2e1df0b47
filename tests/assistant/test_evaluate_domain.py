"""Domain evaluation code on a few committed corpus rows and fixtures (no Whisper, SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inventory_db import sqlite_url  # noqa: F401

from asr.nbest import Hypothesis, NBest
from assistant.inventory import Inventory
from assistant.linker import Linker
from lab.eval.asr_linking import (
    decode_fixtures,
    evaluate_asr_linking,
    gold_lines,
    load_fixtures,
)
from lab.eval.domain import load_parsers, run_evaluation

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "corpus_sample" / "test_sample.jsonl"
FIXTURES = REPO / "tests" / "fixtures" / "fixtures.jsonl"


@pytest.fixture(scope="module")
def inventory(sqlite_url):  # noqa: F811
    return Inventory(sqlite_url)


def test_corpus_evaluation_shape_and_gold_spans(inventory):
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:24]]
    report = run_evaluation(rows, inventory, fixtures=None, nbest_cache=None, learned=False)
    results = report["corpus_results"]
    assert report["parsers"] == ["baseline"]
    assert {"baseline/en", "baseline/es", "gold_spans/en", "gold_spans/es"} <= set(results)
    assert results["_gold_skus_in_catalog"] == 1.0
    for key in ("gold_spans/en", "gold_spans/es"):
        r = results[key]
        assert r["intent_accuracy"] == 1.0  # gold intents
        assert 0 < r["product_queries"] <= r["queries"]
        for metric in ("answer_accuracy_sku", "product_link_accuracy_line"):
            assert 0.0 <= r[metric] <= 1.0
    gold = [results[k] for k in ("gold_spans/en", "gold_spans/es")]
    n = sum(r["product_queries"] for r in gold)
    ok = sum(r["product_link_accuracy_sku"] * r["product_queries"] for r in gold)
    assert ok / n > 0.5
    assert sum(results[k]["queries"] for k in ("baseline/en", "baseline/es")) == len(rows)


def test_gold_lines_from_catalog_names(inventory):
    def ents(**spans):
        return [{"label": k, "text": v} for k, v in spans.items()]

    assert gold_lines(ents(BRAND="Tide", PRODUCT="Pods"), inventory) == {"pods:tide:pods"}
    assert gold_lines(ents(PRODUCT="pañales", BRAND="Huggies"), inventory) == {"diapers:huggies"}
    coke = gold_lines(ents(BRAND="Coca-Cola"), inventory)
    assert "soda:coca-cola" in coke and len(coke) > 1
    assert gold_lines(ents(BRAND="Nonexistent Brandname"), inventory) == set()


class _EchoTranscriber:
    """Stands in for Whisper: "hears" the reference text, with one misspelt reading."""

    def __init__(self, rows):
        self.texts = iter(r["text"] for r in rows)
        self.calls = 0

    def nbest(self, audio):
        self.calls += 1
        text = next(self.texts)
        hyps = (
            Hypothesis(text, (1, 2), -0.2, -0.1, None, -0.1),
            Hypothesis(text.replace("Tide", "Tied"), (1, 3), -0.4, -0.2, None, -0.2),
        )
        return NBest(hyps, "en", 0.9, len(audio) / 16000)


def test_asr_linking_with_cache_roundtrip(tmp_path, inventory):
    rows = load_fixtures(FIXTURES)[:2]  # Tide Pods, Huggies diapers
    cache = tmp_path / "nbest.json"
    fake = _EchoTranscriber(rows)
    nbests, info = decode_fixtures(rows, cache, transcriber=fake)
    assert info == {"clips": 2, "decoded": 2, "from_cache": 0} and fake.calls == 2
    again, info = decode_fixtures(rows, cache)  # no transcriber needed: all cached
    assert info["decoded"] == 0 and again == nbests
    linker = Linker(inventory)
    summary, details = evaluate_asr_linking(rows, nbests, linker, load_parsers(inventory, False))
    assert set(summary) == {"gold_spans/en", "baseline/first_pass/en", "baseline/nbest/en"}
    assert all(r["fixtures"] == 2 for r in summary.values())
    assert summary["gold_spans/en"]["line_accuracy"] == 1.0
    assert details[0]["gold_lines"] == ["pods:tide:pods"]
