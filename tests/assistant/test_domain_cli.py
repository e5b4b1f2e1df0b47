"""`assistant ask`, `assistant catalog` and `assistant db` JSON contracts and errors (in-process)."""

from __future__ import annotations

import json

from inventory_db import sqlite_url  # noqa: F401

from assistant.cli import main


def test_ask_json_contract(sqlite_url, capsys):  # noqa: F811
    assert (
        main(["ask", "where can I find tied pods", "--json", "--db", sqlite_url, "--baseline"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"text", "intent", "entities", "answer"}
    assert set(out["answer"]) >= {"text", "language", "products"}
    product = out["answer"]["products"][0]
    assert set(product) >= {"sku", "brand", "name", "size", "aisle", "bay", "on_hand"}
    assert product["brand"] == "Tide" and product["aisle"]
    for e in out["entities"]:
        assert out["text"][e["start"] : e["end"]] == e["text"]


def test_ask_spanish(sqlite_url, capsys):  # noqa: F811
    assert (
        main(
            ["ask", "¿dónde están los pañales u diez?", "--json", "--db", sqlite_url, "--baseline"]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["answer"]["language"] == "es" and out["answer"]["products"][0]["brand"] == "Huggies"


def test_catalog_json_lines(sqlite_url, capsys):  # noqa: F811
    assert main(["catalog", "--store", "3", "--json", "--db", sqlite_url, "--limit", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    row = json.loads(lines[0])
    assert set(row) >= {
        "sku",
        "brand",
        "name_en",
        "name_es",
        "size",
        "department",
        "aisle",
        "bay",
        "on_hand",
    }
    assert set(row) >= {
        "product_en",
        "product_es",
        "color",
        "department_es",
        "brand_aliases",
        "aliases_en",
        "aliases_es",
        "line",
    }


def test_unknown_store_and_db_down_are_clean(sqlite_url, capsys, tmp_path):  # noqa: F811
    assert main(["catalog", "--store", "999", "--json", "--db", sqlite_url]) == 2
    assert "unknown store" in capsys.readouterr().err
    missing = f"sqlite:///{tmp_path / 'missing.sqlite'}"
    assert main(["ask", "where is tide", "--db", missing, "--baseline"]) == 3
    err = capsys.readouterr().err
    assert "assistant db init" in err and "Traceback" not in err
    assert (
        main(["ask", "where is tide", "--db", "postgresql://nobody@127.0.0.1:1/x", "--baseline"])
        == 3
    )
    assert "unreachable" in capsys.readouterr().err


def test_db_init_is_idempotent(sqlite_url, capsys):  # noqa: F811
    assert main(["db", "init", "--url", sqlite_url]) == 0
    assert "up to date" in capsys.readouterr().out
