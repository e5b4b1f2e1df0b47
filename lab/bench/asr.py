"""First-pass benchmark on the committed fixtures: latency, real-time factor, WER per language
and per voice, n-best oracle WER, language identification, with and without domain biasing.

    python -m lab.bench.asr --out docs/asr_benchmark.json --markdown docs/asr_benchmark.md

Conditions (each decodes every clip once, interleaved clip by clip, after one warm-up decode
that is not counted):
  auto        language detected among {en, es}, no biasing (what `assistant transcribe` does)
  auto+bias   the same with the domain terms of --bias-file as the decoder prompt
  given       language given (the fixture's), no biasing
  auto+window10  as auto with a 10 s encoder window instead of Whisper's 30 s
Latency is wall-clock seconds of Transcriber.nbest (features, encoder, detection, beam search,
the wider-beam retry when merging left < N readings); RTF = latency / audio duration.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from asr.audio import decode_audio
from asr.transcriber import Transcriber, TranscriberConfig
from lab.wer import cer, oracle_wer, wer

log = logging.getLogger(__name__)
from lab import REPO  # noqa: E402
from lab.report import describe_machine, machine_info  # noqa: E402

DEFAULT_FIXTURES = REPO / "tests" / "fixtures" / "fixtures.jsonl"
DEFAULT_BIAS = REPO / "asr" / "data" / "bias_terms.txt"


def read_terms(path: Path) -> tuple[str, ...]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#"))


def summarize(rows: list[dict]) -> dict:
    """WER (accents kept / stripped), CER, oracle WER, LID accuracy and speed of some clips."""
    refs = [r["reference"] for r in rows]
    hyps = [r["text"] for r in rows]
    langs = [r["language"] for r in rows]
    lat = [r["latency_s"] for r in rows]
    return {
        "clips": len(rows),
        "wer": round(wer(refs, hyps, langs), 4),
        "wer_no_accents": round(wer(refs, hyps, langs, accents=False), 4),
        "cer": round(cer(refs, hyps, langs), 4),
        "oracle_wer": round(oracle_wer(refs, [r["nbest"] for r in rows], langs), 4),
        "oracle_wer_no_accents": round(
            oracle_wer(refs, [r["nbest"] for r in rows], langs, accents=False), 4
        ),
        "language_id_accuracy": round(
            sum(r["detected"] == r["language"] for r in rows) / len(rows), 4
        ),
        "mean_nbest_size": round(statistics.mean(len(r["nbest"]) for r in rows), 2),
        "latency_mean_s": round(statistics.mean(lat), 3),
        "latency_p50_s": round(statistics.median(lat), 3),
        "latency_max_s": round(max(lat), 3),
        "rtf_mean": round(statistics.mean(r["latency_s"] / r["duration_s"] for r in rows), 3),
    }


# name -> (which transcriber, biased, language given)
CONDITIONS = {
    "auto": ("30s", False, False),
    "auto+bias": ("30s", True, False),
    "given": ("30s", False, True),
    "auto+window10": ("10s", False, False),
}


def decode(transcriber: Transcriber, clip: dict, bias: tuple[str, ...], given: bool) -> dict:
    started = time.perf_counter()
    nb = transcriber.nbest(
        clip["audio"], language=clip["language"] if given else "auto", bias_terms=bias
    )
    latency = time.perf_counter() - started
    return {
        "file": clip["file"],
        "language": clip["language"],
        "voice": clip["voice"],
        "reference": clip["text"],
        "duration_s": round(nb.duration_s, 3),
        "detected": nb.language,
        "latency_s": round(latency, 4),
        "text": nb.text,
        "nbest": [h.text for h in nb.hypotheses],
    }


def run_conditions(
    transcribers: dict[str, Transcriber], clips: list[dict], terms: tuple[str, ...]
) -> dict:
    """Every condition on every clip, conditions interleaved clip by clip so that load from
    other jobs on a shared machine falls on all conditions alike."""
    rows: dict[str, list[dict]] = {name: [] for name in CONDITIONS}
    for clip in tqdm(clips, desc="decoding"):
        for name, (which, biased, given) in CONDITIONS.items():
            rows[name].append(decode(transcribers[which], clip, terms if biased else (), given))
    return rows


def report(rows: list[dict]) -> dict:
    by_lang, by_voice = defaultdict(list), defaultdict(list)
    for row in rows:
        by_lang[row["language"]].append(row)
        by_voice[row["voice"]].append(row)
    return {
        "all": summarize(rows),
        "by_language": {k: summarize(v) for k, v in sorted(by_lang.items())},
        "by_voice": {k: summarize(v) for k, v in sorted(by_voice.items())},
    }


def markdown(result: dict) -> str:
    cfg = result["config"]
    out = [
        "# First-pass (Whisper base) benchmark on the committed fixtures",
        "",
        f"Machine: {describe_machine(result['machine'])}. Device: {cfg['device']} ({cfg['compute_type']}), "
        f"{cfg['cpu_threads']} threads, beam {cfg['beam_size']} (widened to {2 * cfg['nbest']} "
        f"and up when merging leaves fewer than {cfg['nbest']} readings), n-best {cfg['nbest']}. "
        f"Model load {result['load_s']:.2f} s. 1-minute load average before / after the run: "
        f"{result['loadavg_before_after'][0]} / {result['loadavg_before_after'][1]} (a shared "
        "machine: latencies include contention from other jobs). "
        f"{result['clips']} clips "
        "(tests/fixtures/fixtures.jsonl, synthetic voices).",
        "",
        f"Command: `{result['command']}`",
        "",
        "WER is corpus-level after normalization (case, punctuation, digits spelled out); "
        "`no acc.` strips accents too. Oracle WER: the best hypothesis of the n-best list. "
        f"Bias: {result['bias_terms']} domain terms from `{result['bias_file']}` as decoder prompt.",
        "",
        "## Per condition and language",
        "",
        "| condition | lang | clips | WER | WER no acc. | CER | oracle WER | LID acc. | latency mean / p50 / max (s) | RTF |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, rep in result["conditions"].items():
        for lang, s in [("all", rep["all"]), *rep["by_language"].items()]:
            out.append(
                f"| {name} | {lang} | {s['clips']} | {s['wer']:.1%} | {s['wer_no_accents']:.1%} | "
                f"{s['cer']:.1%} | {s['oracle_wer']:.1%} | {s['language_id_accuracy']:.0%} | "
                f"{s['latency_mean_s']:.2f} / {s['latency_p50_s']:.2f} / {s['latency_max_s']:.2f} | "
                f"{s['rtf_mean']:.2f} |"
            )
    out += [
        "",
        "## Per voice",
        "",
        "| condition | voice | clips | WER | oracle WER |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, rep in result["conditions"].items():
        for voice, s in rep["by_voice"].items():
            out.append(
                f"| {name} | {voice} | {s['clips']} | {s['wer']:.1%} | {s['oracle_wer']:.1%} |"
            )
    out += ["", "## Best hypothesis per clip", ""]
    out += [
        "| file | voice | reference | auto | auto+bias | auto+window10 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    by_cond = {name: {r["file"]: r for r in rows} for name, rows in result["rows"].items()}
    for file, row in by_cond["auto"].items():
        texts = [
            by_cond.get(c, {}).get(file, {}).get("text", "")
            for c in ("auto", "auto+bias", "auto+window10")
        ]
        out.append(
            f"| {Path(file).name} | {row['voice']} | {row['reference']} | "
            + " | ".join(texts)
            + " |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the Whisper first pass on fixtures.")
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("--bias-file", type=Path, default=DEFAULT_BIAS)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "asr_benchmark.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "asr_benchmark.md")
    parser.add_argument("--asr-model", type=Path, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--nbest", type=int, default=5)
    parser.add_argument("--beam-size", type=int, default=8)
    parser.add_argument("--cpu-threads", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="first N clips only (smoke runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    records = [json.loads(x) for x in args.fixtures.read_text(encoding="utf-8").splitlines() if x]
    if args.limit:
        records = records[: args.limit]
    clips = [{**r, "audio": decode_audio(args.fixtures.parent / r["file"])} for r in records]
    terms = read_terms(args.bias_file)
    config = TranscriberConfig(
        model_dir=args.asr_model,
        device=args.device,
        nbest=args.nbest,
        beam_size=args.beam_size,
        cpu_threads=args.cpu_threads,
    )
    started = time.perf_counter()
    transcriber = Transcriber(config)
    load_s = time.perf_counter() - started
    # Same weights, encoder window of 10 s (grown to fit longer clips) instead of 30 s.
    short = Transcriber(replace(config, window_s=10.0))
    for t in (transcriber, short):
        t.nbest(clips[0]["audio"])  # warm-up: first call allocates buffers

    load_before = os.getloadavg()
    rows = run_conditions({"30s": transcriber, "10s": short}, clips, terms)
    import ctranslate2

    result = {
        "machine": machine_info(),
        "command": "python -m lab.bench.asr "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "ctranslate2": ctranslate2.__version__,
        "model_dir": str(transcriber.model_dir),
        "config": {
            "device": transcriber.device,
            "compute_type": transcriber.compute_type,
            "cpu_threads": args.cpu_threads or min(4, os.cpu_count() or 1),
            "beam_size": args.beam_size,
            "nbest": args.nbest,
        },
        "load_s": round(load_s, 3),
        # The dev machine is shared: CPU load (1-min average) before/after says how loaded.
        "loadavg_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "clips": len(clips),
        "bias_file": str(args.bias_file.resolve().relative_to(REPO))
        if args.bias_file.resolve().is_relative_to(REPO)
        else str(args.bias_file),
        "bias_terms": len(terms),
        "conditions": {name: report(r) for name, r in rows.items()},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    args.markdown.write_text(markdown(result), encoding="utf-8")
    for name, rep in result["conditions"].items():
        for lang, s in rep["by_language"].items():
            print(
                f"{name:10} {lang}: WER {s['wer']:.1%} oracle {s['oracle_wer']:.1%} "
                f"LID {s['language_id_accuracy']:.0%} latency {s['latency_mean_s']:.2f} s RTF {s['rtf_mean']:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
