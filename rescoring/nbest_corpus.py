"""Build the n-best corpus: synthesize corpus queries, decode them with Whisper into n-best lists.

Input: the NLU corpus (`python -m nlu.corpus build` -> build/corpus/{train,dev,test}.jsonl with
"text", "language", "intent", "entities", "template", "line"); test already holds out templates
and product lines. Each query is spoken by a voice drawn for its split (held-out voices never in
train, see rescoring.synth), at a random rate, pitch and noise level, stored as OGG/Opus under
build/rescoring/audio/, and decoded with the first pass (asr.transcriber) into an n-best list.

Output, one JSON object per utterance, appended (the command resumes where it stopped):
build/rescoring/nbest/{split}.jsonl

    {"id", "split", "reference", "language", "voice", "rate", "pitch", "snr_db", "intent",
     "entities", "template", "line", "audio",
     "hypotheses": [{"text", "token_ids", "logprob_sum", "asr_score"}]}   # best asr_score first

Usage:
    python -m rescoring.nbest_corpus synth --split dev --limit 300     # audio only (fast)
    python -m rescoring.nbest_corpus decode --split dev                # n-best (about 1 s a clip
                                                                       # on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rescoring.synth import VOICES, synthesize, voices_for, write_opus

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
CORPUS_DIR = REPO / "build" / "corpus"
OUT_DIR = REPO / "build" / "rescoring"
SPLITS = ("train", "dev", "test")


def read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def sample_queries(
    split: str, limit: int, seed: int = 13, corpus_dir: Path = CORPUS_DIR
) -> list[dict]:
    """`limit` queries of the NLU corpus split, half English half Spanish, distinct texts."""
    path = corpus_dir / f"{split}.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `python -m nlu.corpus build` first")
    by_lang: dict[str, list[dict]] = {"en": [], "es": []}
    seen: set[str] = set()
    for row in read_jsonl(path):
        key = row["text"].strip().lower()
        # Spoken references are clean text: rows with simulated ASR noise are skipped.
        if row.get("noisy") or row.get("language") not in by_lang or key in seen:
            continue
        seen.add(key)
        by_lang[row["language"]].append(row)
    rng = random.Random(f"{seed}-{split}")
    out = []
    for rows in by_lang.values():
        rng.shuffle(rows)
        out += rows[: limit // 2]
    rng.shuffle(out)
    return out


def plan_utterance(row: dict, split: str, index: int, seed: int = 13) -> dict:
    """Voice, rate, pitch and noise of one utterance (deterministic in split and index)."""
    rng = random.Random(f"{seed}-{split}-{index}")
    voice = rng.choice(voices_for(row["language"], split))
    return {
        "id": f"{split}-{index:06d}",
        "split": split,
        "reference": row["text"],
        "language": row["language"],
        "voice": voice.name,
        "rate": round(rng.uniform(0.85, 1.2), 3),
        "pitch": rng.choice([-200, -100, 0, 0, 100, 200]),
        "snr_db": None if rng.random() < 0.3 else round(rng.uniform(5.0, 30.0), 1),
        "intent": row.get("intent"),
        "entities": row.get("entities", []),
        "template": row.get("template"),
        "line": row.get("line"),
    }


def cmd_synth(args: argparse.Namespace) -> None:
    queries = sample_queries(args.split, args.limit, corpus_dir=args.corpus_dir)
    audio_dir = OUT_DIR / "audio" / args.split
    plan_path = OUT_DIR / "plan" / f"{args.split}.jsonl"
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    done = {r["id"] for r in read_jsonl(plan_path)} if plan_path.exists() else set()
    with open(plan_path, "a", encoding="utf-8") as out:
        for i, row in enumerate(tqdm(queries, desc=f"synth {args.split}", unit="clip")):
            plan = plan_utterance(row, args.split, i)
            if plan["id"] in done:
                continue
            audio = synthesize(
                plan["reference"],
                VOICES[plan["voice"]],
                rate=plan["rate"],
                pitch_cents=plan["pitch"],
                snr_db=plan["snr_db"],
                seed=i,
            )
            rel = Path("audio") / args.split / f"{plan['id']}.ogg"
            write_opus(OUT_DIR / rel, audio)
            plan["audio"] = str(rel)
            out.write(json.dumps(plan, ensure_ascii=False) + "\n")
            out.flush()
    log.info("audio in %s", audio_dir)


def hypotheses_json(nbest) -> list[dict]:
    return [
        {
            "text": h.text,
            "token_ids": list(h.token_ids),
            "logprob_sum": round(h.logprob_sum, 5),
            "asr_score": round(h.asr_score, 5),
        }
        for h in nbest.hypotheses
    ]


def cmd_decode(args: argparse.Namespace) -> None:
    from asr.audio import decode_audio
    from asr.transcriber import Transcriber

    plan_path = OUT_DIR / "plan" / f"{args.split}.jsonl"
    out_path = OUT_DIR / "nbest" / f"{args.split}.jsonl"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done = {r["id"] for r in read_jsonl(out_path)} if out_path.exists() else set()
    todo = [r for r in read_jsonl(plan_path) if r["id"] not in done][: args.limit or None]
    # widen_beam off: a fixed cost per clip; beam = 2 * nbest keeps variants from crowding out.
    transcriber = Transcriber(nbest=args.nbest, widen_beam=False, cpu_threads=args.threads)
    with open(out_path, "a", encoding="utf-8") as out:
        for start in tqdm(
            range(0, len(todo), args.batch), desc=f"decode {args.split}", unit="batch"
        ):
            rows = todo[start : start + args.batch]
            audios = [decode_audio(str(OUT_DIR / r["audio"])) for r in rows]
            results = transcriber.nbest_batch(audios, [r["language"] for r in rows])
            for row, nbest in zip(rows, results, strict=True):
                row = dict(row, hypotheses=hypotheses_json(nbest))
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rescoring.nbest_corpus", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("synth", help="speak corpus queries into build/rescoring/audio")
    p.add_argument("--split", choices=SPLITS, required=True)
    p.add_argument("--limit", type=int, default=1000, help="queries (half EN, half ES)")
    p.add_argument("--corpus-dir", type=Path, default=CORPUS_DIR, help="NLU corpus JSONL folder")
    p.set_defaults(func=cmd_synth)
    p = sub.add_parser("decode", help="decode the synthesized clips into n-best lists")
    p.add_argument("--split", choices=SPLITS, required=True)
    p.add_argument("--limit", type=int, default=0, help="at most this many clips (0: all)")
    p.add_argument("--nbest", type=int, default=8)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_decode)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    np.seterr(all="ignore")
    args.func(args)


if __name__ == "__main__":
    main()
