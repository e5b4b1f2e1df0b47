"""The "ASR transcripts" evaluation set: audio fixtures transcribed by Whisper, with the gold
entities of the reference text located in the transcript.

A gold entity whose words the ASR changed ("Huggies" heard as "hug is") cannot be found in
the transcript; it is dropped from the span gold and counted in `lost`, so that the span F1
on transcripts measures the parser, and `lost` what the ASR took away before it. The intent
gold is unchanged.

    python -m lab.nlu.asr_eval --transcripts build/nlu/asr_raw.jsonl --out build/nlu/asr_fixtures.jsonl
(transcripts: `assistant transcribe tests/fixtures/audio/*.wav --json` lines.)
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from textnorm import fold_chars


def locate(transcript: str, phrase: str, taken: list[tuple[int, int]]) -> tuple[int, int] | None:
    """First free whole-word occurrence of `phrase` in `transcript`, case/accent-insensitive."""
    pattern = r"(?<!\w)" + re.escape(fold_chars(phrase)) + r"(?!\w)"
    for m in re.finditer(pattern, fold_chars(transcript)):
        if all(m.end() <= s or e <= m.start() for s, e in taken):
            return m.start(), m.end()
    return None


def build_rows(fixtures: list[dict], transcripts: dict[str, str]) -> tuple[list[dict], dict]:
    """fixtures rows (text, language, intent, entities, file) + file -> transcript."""
    rows, lost, total = [], 0, 0
    for fx in fixtures:
        hyp = transcripts.get(fx["file"])
        if hyp is None:
            continue
        taken: list[tuple[int, int]] = []
        ents = []
        for ent in fx["entities"]:
            total += 1
            span = locate(hyp, ent["text"], taken)
            if span is None:
                lost += 1
                continue
            taken.append(span)
            ents.append(
                {
                    "label": ent["label"],
                    "start": span[0],
                    "end": span[1],
                    "text": hyp[span[0] : span[1]],
                }
            )
        rows.append(
            {
                "text": hyp,
                "language": fx["language"],
                "intent": fx["intent"],
                "entities": ents,
                "reference": fx["text"],
            }
        )
    return rows, {"queries": len(rows), "gold_entities": total, "lost_by_asr": lost}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lab.nlu.asr_eval", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--fixtures", default="tests/fixtures/fixtures.jsonl")
    ap.add_argument("--transcripts", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    with open(args.fixtures, encoding="utf-8") as f:
        fixtures = [json.loads(line) for line in f if line.strip()]
    with open(args.transcripts, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    transcripts = {}
    for line in lines:
        if line.strip():
            r = json.loads(line)
            key = (
                str(Path(r["file"]).relative_to(Path(args.fixtures).parent))
                if "fixtures" in r["file"]
                else r["file"]
            )
            transcripts[key] = r["text"]
    rows, stats = build_rows(fixtures, transcripts)
    with open(args.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    Path(args.out).with_suffix(".stats.json").write_text(json.dumps(stats))
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
