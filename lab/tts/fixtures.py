#!/usr/bin/env python
"""Synthesize the committed audio fixtures and their labels.

Writes tests/fixtures/audio/<id>.wav (16 kHz mono PCM16) and tests/fixtures/fixtures.jsonl,
one object per clip: {"file", "language", "voice", "rate", "snr_db", "reverb_rt60_s", "text",
"intent", "entities": [{"label", "start", "end", "text"}]} with spans per ANNOTATION.md.

Queries are written with inline marks, "where can I find [Tide|BRAND] [Pods|PRODUCT]", and
the character offsets are computed (and checked) by code. Re-running gives the same files
(same voices, rates and seeds).

Usage: python -m lab.tts.fixtures [--out tests/fixtures]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from tqdm import tqdm

from lab import REPO
from lab.tts.synth import synthesize, write_wav

MARK = re.compile(r"\[([^\[\]|]+)\|([A-Z]+)\]")
LABELS = {"BRAND", "PRODUCT", "SIZE", "COLOR", "DEPARTMENT", "DATE", "PERSON", "STORE"}
INTENTS = {"find_product", "check_stock", "top_sellers", "associate_schedule", "out_of_scope"}

# (id, intent, marked text, voice, rate, snr_db, reverb_rt60_s)
QUERIES: list[tuple[str, str, str, str, float, float | None, float | None]] = [
    (
        "en_01_tide_pods",
        "find_product",
        "Where can I find [Tide|BRAND] [Pods|PRODUCT]?",
        "pico-en-US",
        1.0,
        None,
        None,
    ),
    (
        "en_02_huggies_size",
        "check_stock",
        "How many [Huggies|BRAND] [diapers|PRODUCT] [size four|SIZE] do we have?",
        "pico-en-GB",
        1.0,
        None,
        None,
    ),
    (
        "en_03_colgate",
        "find_product",
        "Which aisle has the [Colgate|BRAND] [toothpaste|PRODUCT]?",
        "espeak-en-us",
        1.0,
        None,
        None,
    ),
    (
        "en_04_frosted_flakes",
        "check_stock",
        "Do we have [Kellogg's|BRAND] [Frosted Flakes|PRODUCT] in stock?",
        "pico-en-US",
        1.15,
        None,
        None,
    ),
    (
        "en_05_great_value_milk",
        "find_product",
        "Where is the [Great Value|BRAND] [whole milk|PRODUCT]?",
        "pico-en-GB",
        0.9,
        None,
        None,
    ),
    (
        "en_06_samsung_tv",
        "check_stock",
        "Is the [Samsung|BRAND] [fifty five inch|SIZE] [TV|PRODUCT] in stock at [store twelve|STORE]?",
        "pico-en-US",
        1.0,
        None,
        None,
    ),
    (
        "en_07_nike_shoes",
        "check_stock",
        "Do we have [Nike|BRAND] [running shoes|PRODUCT] in [size ten|SIZE]?",
        "espeak-en-us-f3",
        0.95,
        None,
        None,
    ),
    (
        "en_08_top_electronics",
        "top_sellers",
        "What were the top sellers in [electronics|DEPARTMENT] [this week|DATE]?",
        "pico-en-US",
        1.0,
        20.0,
        None,
    ),
    (
        "en_09_maria_schedule",
        "associate_schedule",
        "When does [Maria|PERSON] work [tomorrow|DATE]?",
        "pico-en-GB",
        1.0,
        None,
        None,
    ),
    (
        "en_10_garden_center",
        "associate_schedule",
        "Who is working in [garden center|DEPARTMENT] [today|DATE]?",
        "espeak-en-gb",
        0.9,
        None,
        None,
    ),
    ("en_11_joke", "out_of_scope", "Can you tell me a joke?", "pico-en-US", 1.1, None, None),
    (
        "en_12_pampers_wipes",
        "find_product",
        "Where are the [Pampers|BRAND] [baby wipes|PRODUCT]?",
        "pico-en-US",
        1.0,
        None,
        0.3,
    ),
    (
        "en_13_levis_jeans",
        "check_stock",
        "How many [blue|COLOR] [Levi's|BRAND] [jeans|PRODUCT] do we have?",
        "pico-en-GB",
        1.1,
        None,
        None,
    ),
    (
        "en_14_coca_cola",
        "find_product",
        "Where can I find the [Coca-Cola|BRAND] [twelve pack|SIZE]?",
        "pico-en-US",
        0.9,
        25.0,
        None,
    ),
    (
        "es_01_huggies",
        "find_product",
        "¿Dónde están los [pañales|PRODUCT] [Huggies|BRAND]?",
        "pico-es-ES",
        1.0,
        None,
        None,
    ),
    (
        "es_02_leche_lala",
        "find_product",
        "¿En qué pasillo está la [leche|PRODUCT] [Lala|BRAND]?",
        "pico-es-ES",
        1.0,
        None,
        None,
    ),
    (
        "es_03_kelloggs",
        "check_stock",
        "¿Cuántas cajas de [cereal|PRODUCT] [Kellogg's|BRAND] tenemos?",
        "pico-es-ES",
        0.9,
        None,
        None,
    ),
    (
        "es_04_tide_bodega",
        "check_stock",
        "¿Hay [detergente|PRODUCT] [Tide|BRAND] en bodega?",
        "espeak-es-419",
        0.9,
        None,
        None,
    ),
    (
        "es_05_bimbo",
        "find_product",
        "Busco el [pan blanco|PRODUCT] [Bimbo|BRAND].",
        "pico-es-ES",
        1.1,
        None,
        None,
    ),
    (
        "es_06_jumex",
        "check_stock",
        "¿Tenemos [jugo|PRODUCT] [Jumex|BRAND] de [un litro|SIZE]?",
        "pico-es-ES",
        1.0,
        20.0,
        None,
    ),
    (
        "es_07_colgate",
        "find_product",
        "¿Dónde encuentro la [pasta de dientes|PRODUCT] [Colgate|BRAND]?",
        "pico-es-ES",
        1.0,
        None,
        None,
    ),
    (
        "es_08_pampers_talla",
        "check_stock",
        "¿Cuántos [pañales|PRODUCT] [Pampers|BRAND] [talla cuatro|SIZE] quedan?",
        "pico-es-ES",
        1.0,
        None,
        0.3,
    ),
    (
        "es_09_lacteos",
        "top_sellers",
        "¿Qué es lo más vendido en [lácteos|DEPARTMENT] [hoy|DATE]?",
        "pico-es-ES",
        1.0,
        None,
        None,
    ),
    (
        "es_10_electronica",
        "top_sellers",
        "¿Cuáles son los productos más vendidos en [electrónica|DEPARTMENT] [esta semana|DATE]?",
        "espeak-es",
        0.9,
        None,
        None,
    ),
    (
        "es_11_juan_viernes",
        "associate_schedule",
        "¿A qué hora entra [Juan|PERSON] [el viernes|DATE]?",
        "pico-es-ES",
        1.0,
        None,
        None,
    ),
    (
        "es_12_jardineria",
        "associate_schedule",
        "¿Quién trabaja en [jardinería|DEPARTMENT] [hoy|DATE]?",
        "pico-es-ES",
        1.1,
        None,
        None,
    ),
    ("es_13_chiste", "out_of_scope", "Cuéntame un chiste.", "pico-es-ES", 1.0, None, None),
    (
        "es_14_coca_cola",
        "find_product",
        "¿Dónde está la [Coca-Cola|BRAND] de [dos litros|SIZE]?",
        "espeak-es-419-f2",
        0.9,
        None,
        None,
    ),
]


def parse_marked(marked: str) -> tuple[str, list[dict]]:
    """ "find [Tide|BRAND] pods" -> ("find Tide pods", [{"label", "start", "end", "text"}])."""
    text, entities, pos = "", [], 0
    for match in MARK.finditer(marked):
        text += marked[pos : match.start()]
        span, label = match.group(1), match.group(2)
        if label not in LABELS:
            raise ValueError(f"unknown label {label} in {marked!r}")
        entities.append(
            {"label": label, "start": len(text), "end": len(text) + len(span), "text": span}
        )
        text += span
        pos = match.end()
    text += marked[pos:]
    if "[" in text or "]" in text or "|" in text:
        raise ValueError(f"unbalanced marks in {marked!r}")
    for entity in entities:  # the offsets must select exactly the span text
        assert text[entity["start"] : entity["end"]] == entity["text"], (marked, entity)
    return text, entities


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures")
    args = parser.parse_args(argv)
    audio_dir = args.out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for seed, (clip_id, intent, marked, voice, rate, snr_db, rt60) in enumerate(
        tqdm(QUERIES, desc="synthesizing")
    ):
        if intent not in INTENTS:
            raise ValueError(f"unknown intent {intent}")
        text, entities = parse_marked(marked)
        audio = synthesize(
            text, voice, rate=rate, snr_db=snr_db, reverb_rt60_s=rt60, seed=seed, pad_s=0.2
        )
        write_wav(audio_dir / f"{clip_id}.wav", audio)
        records.append(
            {
                "file": f"audio/{clip_id}.wav",
                "language": clip_id[:2],
                "voice": voice,
                "rate": rate,
                "snr_db": snr_db,
                "reverb_rt60_s": rt60,
                "text": text,
                "intent": intent,
                "entities": entities,
            }
        )
    with open(args.out / "fixtures.jsonl", "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    total = sum((args.out / r["file"]).stat().st_size for r in records)
    print(
        f"wrote {len(records)} clips ({total / 1e6:.2f} MB) and {args.out / 'fixtures.jsonl'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
