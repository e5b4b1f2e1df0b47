"""Build the n-best corpus: synthesize corpus queries, decode them with Whisper into n-best lists.

Input: the NLU corpus (`python -m lab.nlu.corpus build` -> build/corpus/{train,dev,test}.jsonl with
"text", "language", "intent", "entities", "template", "line"); test already holds out templates
and product lines. Each query is spoken by a voice drawn for its split (held-out voices never in
train, see lab.rescoring.synth), at a random rate, pitch and noise level, stored as OGG/Opus under
build/rescoring/audio/, and decoded with the first pass (asr.transcriber) into an n-best list.

Output, one JSON object per utterance, appended (the command resumes where it stopped):
build/rescoring/nbest/{split}.jsonl

    {"id", "split", "reference", "language", "voice", "rate", "pitch", "snr_db", "intent",
     "entities", "template", "line", "audio",
     "hypotheses": [{"text", "token_ids", "logprob_sum", "asr_score"}]}   # best asr_score first

Usage:
    python -m lab.rescoring.nbest_corpus probe --clips 12       # first-pass WER of every voice
    python -m lab.rescoring.nbest_corpus build --split test --limit 500   # synth + decode, resumable
    python -m lab.rescoring.nbest_corpus build --split train --limit 6000
    (older two-step form: `synth --split S` then `decode --split S`, e.g. on a GPU machine)

The decoder is the runtime first pass: CTranslate2 int8 Whisper base on the CPU, 8 readings
(beam 16 = 2 x readings, asr.transcriber), encoder window 10 s (same WER as 30 s on short
queries, ~3x faster: docs/asr_benchmark.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lab.rescoring.synth import HELD_OUT, VOICES, synthesize, voices_for, write_opus
from lab.wer import word_errors

log = logging.getLogger(__name__)

from lab import REPO  # noqa: E402

CORPUS_DIR = REPO / "build" / "corpus"
OUT_DIR = REPO / "build" / "rescoring"
SPLITS = ("train", "dev", "test")
WINDOW_S = 10.0  # encoder window of the corpus decoder (see the module docstring)


def corpus_transcriber(nbest: int = 8, threads: int = 2):
    """The first pass the corpus is decoded with (fixed cost per clip: no beam widening)."""
    from asr.transcriber import Transcriber

    return Transcriber(
        nbest=nbest, widen_beam=False, cpu_threads=threads, window_s=WINDOW_S, device="cpu"
    )


def read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def sample_queries(
    split: str, limit: int, seed: int = 13, corpus_dir: Path = CORPUS_DIR
) -> list[dict]:
    """`limit` queries of the NLU corpus split, half English half Spanish, distinct texts.

    Prefix-stable: the queries for a larger `limit` start with the same set as for a smaller
    one (each language's shuffled list is cut at limit // 2, and the two lists are interleaved
    by a per-pair coin that does not depend on `limit`), so `build --limit N` can grow a split.
    """
    path = corpus_dir / f"{split}.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `python -m lab.nlu.corpus build` first")
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
    for rows in by_lang.values():
        rng.shuffle(rows)
    en, es = by_lang["en"][: limit // 2], by_lang["es"][: limit // 2]
    out = []
    for j in range(max(len(en), len(es))):
        pair = en[j : j + 1] + es[j : j + 1]
        if random.Random(f"{seed}-{split}-pair-{j}").random() < 0.5:
            pair.reverse()
        out += pair
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


def _speak(plan: dict, index: int, keep_audio: bool) -> np.ndarray:
    audio = synthesize(
        plan["reference"],
        VOICES[plan["voice"]],
        rate=plan["rate"],
        pitch_cents=plan["pitch"],
        snr_db=plan["snr_db"],
        seed=index,
    )
    if keep_audio:
        rel = Path("audio") / plan["split"] / f"{plan['id']}.ogg"
        write_opus(OUT_DIR / rel, audio)
        plan["audio"] = str(rel)
    return audio


def cmd_build(args: argparse.Namespace) -> None:
    """Synthesize and decode in one resumable pass: speech for the next batch is made on a
    worker thread (TTS and sox are subprocesses) while Whisper decodes the current one."""
    queries = sample_queries(args.split, args.limit, corpus_dir=args.corpus_dir)
    out_path = OUT_DIR / "nbest" / f"{args.split}.jsonl"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    built = list(read_jsonl(out_path)) if out_path.exists() else []
    done = {r["id"] for r in built}
    # Text as well as id: lists built before sample_queries was prefix-stable hold the same
    # texts under other indices, and a split must not hold a text twice.
    done_texts = {r["reference"].strip().lower() for r in built}
    todo = [
        (i, plan_utterance(row, args.split, i))
        for i, row in enumerate(queries)
        if f"{args.split}-{i:06d}" not in done and row["text"].strip().lower() not in done_texts
    ]
    log.info("%s: %d done, %d to go", args.split, len(done), len(todo))
    transcriber = corpus_transcriber(args.nbest, args.threads)
    batches = [todo[k : k + args.batch] for k in range(0, len(todo), args.batch)]

    def speak(batch):
        return [_speak(plan, i, not args.no_audio) for i, plan in batch]

    with ThreadPoolExecutor(1) as pool, open(out_path, "a", encoding="utf-8") as out:
        pending = pool.submit(speak, batches[0]) if batches else None
        bar = tqdm(total=len(todo), desc=f"build {args.split}", unit="clip", mininterval=10)
        for k, batch in enumerate(batches):
            audios = pending.result()
            pending = pool.submit(speak, batches[k + 1]) if k + 1 < len(batches) else None
            started = time.perf_counter()
            results = transcriber.nbest_batch(audios, [p["language"] for _, p in batch])
            per_clip = (time.perf_counter() - started) / len(batch)
            for (_, plan), nbest in zip(batch, results, strict=True):
                row = dict(plan, decode_s=round(per_clip, 3), hypotheses=hypotheses_json(nbest))
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            bar.update(len(batch))
        bar.close()


def cmd_probe(args: argparse.Namespace) -> None:
    """First-pass and oracle WER of each voice on the same few dev queries (rate 1, clean):
    which voices give n-best lists worth training a rescorer on."""
    transcriber = corpus_transcriber(8, args.threads)
    names = args.voices.split(",") if args.voices else list(VOICES)
    queries = {
        lang: [r for r in sample_queries("dev", 2 * args.clips, seed=7) if r["language"] == lang]
        for lang in ("en", "es")
    }
    report = {}
    for name in tqdm(names, desc="probe voices", unit="voice"):
        voice = VOICES[name]
        rows = queries[voice.language][: args.clips]
        audios = [synthesize(r["text"], voice, seed=i) for i, r in enumerate(rows)]
        started = time.perf_counter()
        results = []
        for k in range(0, len(audios), 4):
            chunk = audios[k : k + 4]
            results += transcriber.nbest_batch(chunk, [voice.language] * len(chunk))
        seconds = time.perf_counter() - started
        first = oracle = words = loops = 0
        for r, nb in zip(rows, results, strict=True):
            errs = [
                word_errors(r["text"], h.text, voice.language, accents=False) for h in nb.hypotheses
            ]
            first += errs[0].errors
            oracle += min(e.errors for e in errs)
            words += errs[0].reference_length
            # A repetition loop: the best reading is more than twice as long as the query.
            loops += len(nb.hypotheses[0].text.split()) > 2 * len(r["text"].split()) + 2
        report[name] = {
            "language": voice.language,
            "clips": len(rows),
            "wer_first_pass": round(100 * first / max(1, words), 1),
            "wer_oracle": round(100 * oracle / max(1, words), 1),
            "looping_clips": int(loops),
            "decode_s_per_clip": round(seconds / max(1, len(rows)), 2),
        }
        log.info("%s: %s", name, report[name])
    path = REPO / "docs" / "rescoring_voices.json"
    if path.is_file():  # probing a few voices keeps the others' earlier results
        report = {**json.loads(path.read_text())["voices"], **report}
    payload = {
        "held_out_voices": sorted(HELD_OUT),
        "command": f"python -m lab.rescoring.nbest_corpus probe --clips {args.clips}",
        "machine": "2-core x86-64 CPU shared with other jobs (load average 4-8), "
        "CTranslate2 int8, window 10 s, 8 readings",
        "voices": report,
    }
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(report, indent=2))


def cmd_reuse(args: argparse.Namespace) -> None:
    """Add earlier n-best lists (another corpus build, another decoder) to training, keeping
    only those that cannot leak: template seen in our train split, product line not held out
    for dev/test, text not in dev/test, voice not held out, and no repetition loop in the
    first reading. Writes build/rescoring/nbest/train_reused.jsonl."""
    corpus = {s: list(read_jsonl(args.corpus_dir / f"{s}.jsonl")) for s in SPLITS}
    train_templates = {r.get("template") for r in corpus["train"]}
    train_lines = {r.get("line") for r in corpus["train"]}
    held_lines = {r.get("line") for s in ("dev", "test") for r in corpus[s]} - train_lines
    held_texts = {r["text"].strip().lower() for s in ("dev", "test") for r in corpus[s]}
    kept, seen = [], 0
    for path in sorted(args.source.glob("*.jsonl")):
        for row in read_jsonl(path):
            seen += 1
            if not row["hypotheses"]:
                continue
            best = max(row["hypotheses"], key=lambda h: h["asr_score"])["text"]
            if (
                row.get("template") in train_templates
                and row.get("line") not in held_lines
                and row["reference"].strip().lower() not in held_texts
                and row["voice"] not in HELD_OUT
                and len(best.split()) <= 2 * len(row["reference"].split()) + 2
            ):
                kept.append(dict(row, id=f"reused-{row['id']}", split="train", reused=str(path)))
    out_path = OUT_DIR / "nbest" / "train_reused.jsonl"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as out:
        for row in kept:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    log.info("reused %d of %d lists from %s -> %s", len(kept), seen, args.source, out_path)


def cmd_decode(args: argparse.Namespace) -> None:
    from asr.audio import decode_audio

    plan_path = OUT_DIR / "plan" / f"{args.split}.jsonl"
    out_path = OUT_DIR / "nbest" / f"{args.split}.jsonl"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done = {r["id"] for r in read_jsonl(out_path)} if out_path.exists() else set()
    todo = [r for r in read_jsonl(plan_path) if r["id"] not in done][: args.limit or None]
    transcriber = corpus_transcriber(args.nbest, args.threads)
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
    parser = argparse.ArgumentParser(
        prog="python -m lab.rescoring.nbest_corpus", description=__doc__
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("synth", help="speak corpus queries into build/rescoring/audio")
    p.add_argument("--split", choices=SPLITS, required=True)
    p.add_argument("--limit", type=int, default=1000, help="queries (half EN, half ES)")
    p.add_argument("--corpus-dir", type=Path, default=CORPUS_DIR, help="NLU corpus JSONL folder")
    p.set_defaults(func=cmd_synth)
    p = sub.add_parser("build", help="synthesize + decode into n-best lists (resumable)")
    p.add_argument("--split", choices=SPLITS, required=True)
    p.add_argument("--limit", type=int, default=1000, help="queries (half EN, half ES)")
    p.add_argument("--corpus-dir", type=Path, default=CORPUS_DIR, help="NLU corpus JSONL folder")
    p.add_argument("--nbest", type=int, default=8)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-audio", action="store_true", help="do not keep the Opus clips")
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("probe", help="first-pass WER per voice -> docs/rescoring_voices.json")
    p.add_argument("--clips", type=int, default=12, help="queries per voice")
    p.add_argument("--voices", default="", help="comma-separated names (default: all)")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_probe)
    p = sub.add_parser("reuse", help="earlier n-best lists that cannot leak -> train_reused")
    p.add_argument("--source", type=Path, required=True, help="folder of {split}.jsonl lists")
    p.add_argument("--corpus-dir", type=Path, default=CORPUS_DIR, help="NLU corpus JSONL folder")
    p.set_defaults(func=cmd_reuse)
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
