"""Does streaming hear what a file transcription hears? Segmentation parity on held-out clips.

    python -m lab.bench.stream_parity --per-language 60 --out docs/stream_parity.json \
        --markdown docs/stream_parity.md

Each held-out clip of lab.bench.hear_the_store (voices and conditions kept out of training) becomes
a stream: 1 s before and after it of what that condition hears between words (the same brown
noise at the same level for `noise`, silence otherwise), at an input rate taken in turn from
8, 16, 44.1 and 48 kHz. Three readings of it, all with the same first pass and settings (the
server's: no beam widening, catalog phrases chosen per utterance from a draft):

  streamed    what a session runs: asr.audio.StreamResampler in 100 ms frames, Silero VAD,
              asr.streaming.StreamingPolicy (no partials), speculative finals and the
              TurnJudge verdict on them, which reaches the policy once the decode's wall time
              has passed in stream time; every final decoded, the readings joined
  offline     `assistant transcribe` of the file the client would have recorded at that rate:
              asr.audio.decode_audio, then the utterances a session cuts from it
              (assistant.commands.transcribe.pieces: asr.streaming.segment), readings joined
  whole_file  `assistant transcribe --whole-file`: the whole file decoded at once

Reported per language and condition, per input rate and over all clips: WER of each reading,
the share of clips whose streamed reading equals the offline one and the whole-file one (asr.nbest
reading_key), the share whose finals decoded exactly the offline utterances' samples, the
share with exactly one final, cut-offs, and utterances found wholly in the gaps (noise).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import time
import wave
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asr.audio import SAMPLE_RATE, StreamResampler, decode_audio, float32_to_pcm16, resample
from asr.nbest import reading_key
from asr.streaming import Endpoint, Speculation, StreamingConfig, StreamingPolicy
from lab.bench.hear_the_store import REPO, brown_noise, build_clips
from lab.report import describe_machine, machine_info, write_report
from lab.wer import wer
from textnorm import normalize

log = logging.getLogger(__name__)
RATES = (8000, 16000, 44100, 48000)
FRAME_S = 0.1
GAP_S = 1.0


def make_stream(clip, audio: np.ndarray, seed: int) -> np.ndarray:
    """The clip with GAP_S before and after it of what the condition hears between words."""
    gap = int(GAP_S * SAMPLE_RATE)
    padded = np.concatenate([np.zeros(gap, np.float32), audio, np.zeros(gap, np.float32)])
    if clip.condition == "noise":  # the noise goes on between words, at the clip's level
        rng = np.random.default_rng(seed)
        speech_power = float(np.mean(audio**2)) or 1e-10
        noise = brown_noise(gap, rng) * np.sqrt(speech_power / 10 ** (clip.snr_db / 10))
        padded[:gap] += noise
        padded[-gap:] += brown_noise(gap, rng) * np.sqrt(speech_power / 10 ** (clip.snr_db / 10))
    return np.clip(padded, -1, 1).astype(np.float32)


# The streaming settings before issue 14 (200 ms pad either side, a fixed 500 ms endpoint, no
# speculation), measured in the same run as the current defaults.
BEFORE = {
    "pre_roll_ms": 200, "speech_pad_ms": 200, "speculate_ms": 0,
    "endpoint_complete_ms": 500, "endpoint_incomplete_ms": 500,
}  # fmt: skip


def wav_bytes(pcm: bytes, rate: int) -> bytes:
    """A mono PCM16 WAV file of `pcm` at `rate`: what a client at that rate records."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


def client_pcm(audio16: np.ndarray, rate: int) -> bytes:
    return float32_to_pcm16(
        resample(audio16, SAMPLE_RATE, rate) if rate != SAMPLE_RATE else audio16
    )


def stream_finals(
    pcm: bytes, rate: int, config: StreamingConfig, decode, judge, instant: bool = False
) -> dict:
    """What a session does with a client's PCM at `rate`: resample in 100 ms frames, VAD,
    speculative finals, adaptive endpoints. `decode(audio) -> (text, language, nlu)`; a
    speculation's verdict (judge.of_result) reaches the policy once the decode's wall time has
    passed in stream time, as it would live (instant: at once, as from a decoder much faster
    than this CPU). -> {"endpoints", "texts", "speculated", "dropped"}."""
    from asr.vad import SileroVad

    resampler = StreamResampler(rate)
    policy = StreamingPolicy(config, vad=SileroVad())
    step = int(FRAME_S * rate) * 2
    spec = None  # (Speculation, decoded, stream time its verdict arrives)
    out = {"endpoints": [], "texts": [], "speculated": 0, "dropped": 0}

    def handle(events):
        nonlocal spec
        for e in events:
            if isinstance(e, Speculation):
                out["dropped"] += spec is not None
                started = time.perf_counter()
                decoded = decode(e.audio)
                took_s = 0.0 if instant else time.perf_counter() - started
                spec = (e, decoded, policy.stream_time_s + took_s)
            elif isinstance(e, Endpoint):
                if spec is not None and (spec[0].utterance, spec[0].cut) == (e.utterance, e.cut):
                    text = spec[1][0]
                    out["speculated"] += 1
                else:
                    out["dropped"] += spec is not None
                    text = decode(e.audio)[0]
                spec = None
                out["endpoints"].append(e)
                out["texts"].append(text)

    chunks = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    for chunk in chunks:
        policy.push(resampler.push(chunk))
        handle(policy.take_events())
        if spec is not None and judge is not None and policy.stream_time_s >= spec[2]:
            (event, (text, language, nlu), _) = spec
            policy.settle(event.utterance, event.cut, judge.of_result(text, language, nlu))
            spec = (event, spec[1], float("inf"))  # judged once
            handle(policy.take_events())
    policy.push(resampler.flush())
    handle(policy.finish())
    return out


def offline_reading(audio: np.ndarray, config: StreamingConfig | None, decode) -> tuple:
    """`assistant transcribe` of a file's 16 kHz audio: (joined text, pieces decoded);
    config None: --whole-file."""
    from asr.vad import SileroVad
    from assistant.commands.transcribe import pieces

    cut = pieces(audio, config, SileroVad()) if config is not None else pieces(audio)
    return " ".join(t for t in (decode(p[0])[0].strip() for p in cut) if t), cut


def run(clips, decode, judge, variants: dict[str, tuple[StreamingConfig, bool]]) -> list[dict]:
    """One record per clip and variant: name -> (settings, instant verdicts)."""
    records = []
    for k, clip in enumerate(tqdm(clips, desc="streams")):
        row, lang = clip.row, clip.row["language"]
        stream = make_stream(clip, decode_audio(clip.path), seed=k)
        rate = RATES[k % len(RATES)]
        pcm = client_pcm(stream, rate)
        # The file a client at `rate` would have recorded, read as `assistant transcribe` reads it.
        audio = decode_audio(wav_bytes(pcm, rate))
        whole_file = offline_reading(audio, None, decode)[0]
        # An utterance wholly before or after the clip's speech came from the gap's noise.
        speech = (GAP_S, len(stream) / SAMPLE_RATE - GAP_S)
        offlines = {}  # the offline reading depends on the settings only
        for name, (config, instant) in variants.items():
            if config not in offlines:
                offlines[config] = offline_reading(audio, config, decode)
            offline, cut = offlines[config]
            got = stream_finals(pcm, rate, config, decode, judge, instant)
            ends = got["endpoints"]
            fragments = sum(1 for e in ends if e.end_s < speech[0] or e.start_s > speech[1])
            streamed = " ".join(t.strip() for t in got["texts"] if t.strip())
            same_audio = len(ends) == len(cut) and all(
                np.array_equal(e.audio, c[0]) for e, c in zip(ends, cut, strict=False)
            )
            records.append(
                {
                    "settings": name, "language": lang, "condition": clip.condition,
                    "voice": clip.voice, "rate": rate, "reference": row["text"],
                    "streamed": streamed, "offline": offline, "whole_file": whole_file,
                    "finals": len(ends), "offline_utterances": len(cut),
                    "fragments": fragments,
                    # more than one utterance in the clip's speech: one ended before its last word
                    "cut_off": len(ends) - fragments > 1,
                    "silence_ms": [e.silence_ms for e in ends],
                    "complete": [e.complete for e in ends],
                    "speculated": got["speculated"], "dropped": got["dropped"],
                    "same_audio": same_audio,
                    "same": reading_key(streamed, lang) == reading_key(offline, lang),
                    "same_whole_file": reading_key(streamed, lang) == reading_key(whole_file, lang),
                }
            )  # fmt: skip
    return records


READINGS = ("streamed", "offline", "whole_file")


def summarize(records: list[dict], keys: tuple[str, ...]) -> list[dict]:
    groups = defaultdict(list)
    for r in records:
        groups[tuple(r[k] for k in keys)].append(r)
    out = []
    for group, rs in sorted(groups.items()):
        share = lambda key, rs=rs: round(sum(bool(r[key]) for r in rs) / len(rs), 4)  # noqa: E731
        silences = [ms for r in rs for ms in r["silence_ms"] if ms]
        out.append(
            {
                **dict(zip(keys, group, strict=True)),
                "clips": len(rs),
                **{f"{name}_wer": _pooled(rs, name) for name in READINGS},
                "same_reading": share("same"),
                "same_audio": share("same_audio"),
                "same_as_whole_file": share("same_whole_file"),
                "one_final": round(sum(r["finals"] == 1 for r in rs) / len(rs), 4),
                "noise_fragments": sum(r["fragments"] for r in rs),
                "cut_offs": share("cut_off"),
                "endpoint_silence_ms": round(float(np.mean(silences)), 1) if silences else None,
                "speculated": sum(r["speculated"] for r in rs),
                "dropped": sum(r["dropped"] for r in rs),
            }
        )
    return out


def _pooled(records: list[dict], column: str) -> float:
    """WER of `column` over the records, pooled over their languages (errors / words)."""
    errors = words = 0
    for lang in sorted({r["language"] for r in records}):
        rs = [r for r in records if r["language"] == lang]
        refs = [r["reference"] for r in rs]
        n = sum(len(normalize(x, lang).split()) for x in refs)
        errors += wer(refs, [r[column] for r in rs], lang) * n
        words += n
    return round(errors / words, 4) if words else 0.0


def markdown(report: dict) -> str:
    cols = (
        "clips", "streamed_wer", "offline_wer", "whole_file_wer", "same_reading", "same_audio",
        "same_as_whole_file", "one_final", "cut_offs", "noise_fragments", "endpoint_silence_ms",
        "speculated", "dropped",
    )  # fmt: skip
    m = report["machine"]
    lines = [
        "# Streaming vs file transcription: segmentation parity",
        "",
        f"Command: `{report['command']}`. Machine: {describe_machine(m)}, "
        f"{report.get('load_avg_end', '?')} at the end (other jobs shared the cores: the "
        "TurnJudge verdicts reach the policy after a decode's wall time, so the load can move "
        f"an endpoint; nothing else here depends on it). {report['clips']} held-out clips "
        "(lab.bench.hear_the_store's), streamed at 8/16/44.1/48 kHz in turn, each with 1 s "
        "before and after it of what its condition hears between words.",
        "",
        f"Decoding, the same on all three readings: {report['decoding']}. streamed: the "
        "session's path (StreamResampler in 100 ms frames, Silero VAD, StreamingPolicy, "
        "speculative finals and the TurnJudge verdict on them, which reaches the policy after "
        "the decode's wall time in stream time). offline: `assistant transcribe` of the "
        "client's PCM16 file at its rate (asr.audio.decode_audio, then the utterances a session "
        "cuts from it: asr.streaming.segment). whole_file: `assistant transcribe --whole-file` "
        "(the whole file, 1 s of gap either side included).",
        "",
        "Settings: " + _settings(report["settings"]) + ".",
        "",
        "Columns: WER of each reading (streamed: the finals joined); same_reading: share of "
        "clips whose streamed reading equals the offline one (asr.nbest.reading_key); "
        "same_audio: share whose finals decoded exactly the offline utterances' samples; "
        "same_as_whole_file: streamed reading equal to the whole-file one; one_final: share "
        "with exactly one final; cut_offs: share of queries ended before their last word (more "
        "than one utterance inside the clip's speech); noise_fragments: utterances wholly in "
        "the gaps; endpoint_silence_ms: mean silence that ended an utterance; speculated / "
        "dropped: finals taken from a speculative decode / speculative decodes thrown away "
        "(speech came after them).",
        "",
        f"Decoder sensitivity (why whole_file differs): {report['sensitivity']}",
        "",
    ]
    for title, key, by in (
        ("Per condition", "by_condition_pooled", ("settings", "condition")),
        ("Per language and condition", "by_condition", ("settings", "language", "condition")),
        ("Per input rate", "by_rate", ("settings", "rate")),
        ("All clips", "overall", ("settings",)),
    ):
        lines += [f"## {title}", "", "| " + " | ".join(by + cols) + " |",
                  "|" + " --- |" * (len(by) + len(cols))]  # fmt: skip
        lines += ["| " + " | ".join(str(r[c]) for c in by + cols) + " |" for r in report[key]]
        lines.append("")
    return "\n".join(lines)


def _settings(settings: dict[str, dict]) -> str:
    """`defaults` in full, every other variant as its differences from it."""
    base = settings.get("defaults", {})
    parts = [f"`defaults` = `{base}`"] if base else []
    for name, values in settings.items():
        if name != "defaults":
            diff = {k: v for k, v in values.items() if base.get(k) != v}
            parts.append(f"`{name}` = the defaults with `{diff}`")
    return "; ".join(parts)


def sensitivity(clips, decode, n: int = 24) -> str:
    """How often the offline reading changes when the same file starts 20 ms (one encoder
    frame) or 32 ms (one VAD window, off the frame grid) later: what no segmentation fixes."""
    same = {320: 0, 512: 0}
    picked = clips[:: max(1, len(clips) // n)][:n]
    for k, clip in enumerate(picked):
        lang = clip.row["language"]
        stream = make_stream(clip, decode_audio(clip.path), seed=k)
        base = reading_key(decode(stream)[0], lang)
        for shift in same:
            shifted = np.concatenate([np.zeros(shift, np.float32), stream])
            same[shift] += reading_key(decode(shifted)[0], lang) == base
    return (
        f"on {len(picked)} clips, 20 ms more leading silence keeps the reading on "
        f"{same[320] / len(picked):.0%}, 32 ms on {same[512] / len(picked):.0%}."
    )


def main(argv: list[str] | None = None) -> int:
    import dataclasses

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-language", type=int, default=60)
    parser.add_argument("--every", type=int, default=1, help="every Nth clip (a quick subset)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--dev", action="store_true", help="the tuning clips (training voices)")
    parser.add_argument("--clips-dir", type=Path, default=REPO / "build" / "hear_the_store")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="FIELD=VALUE", help="StreamingConfig overrides"
    )
    parser.add_argument("--no-phrases", action="store_true", help="decode without the catalog")
    parser.add_argument(
        "--before", action="store_true", help="also the settings before issue 14 (BEFORE)"
    )
    parser.add_argument(
        "--instant-judge",
        action="store_true",
        help="also the defaults with every verdict at once (a decoder much faster than the CPU)",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from assistant.inventory import Inventory
    from assistant.phrases import catalog_phrases
    from assistant.pipeline import PipelineConfig, load_first_pass, load_parser
    from assistant.turn import TurnJudge

    overrides = {}
    for item in args.set:
        name, value = item.split("=", 1)
        overrides[name] = type(getattr(StreamingConfig(), name))(value)
    after = dataclasses.replace(StreamingConfig(), **overrides, partials=False)
    variants = {"defaults": (after, False)}
    if args.before:
        variants["before"] = (dataclasses.replace(after, **BEFORE), False)
    if args.instant_judge:
        variants["instant_judge"] = (after, True)
    server = PipelineConfig()
    transcriber = load_first_pass(server)  # the server's first pass and decoding settings
    inventory = Inventory()
    phrases = None if args.no_phrases else catalog_phrases(inventory)
    nlu = load_parser(inventory)
    judge = TurnJudge(nlu, after.complete_confidence)

    def decode(audio):
        nbest = transcriber.nbest(audio, phrases=phrases)
        return nbest.text, nbest.language, nlu.parse(nbest.text, nbest.language)

    started = machine_info()
    clips = build_clips(args.per_language, args.seed + 1000 * args.dev, args.clips_dir, args.dev)
    clips = clips[:: args.every]
    records = run(clips, decode, judge, variants)
    sensitive = sensitivity(clips, decode)
    report = {
        "command": " ".join(["python -m lab.bench.stream_parity", *(sys.argv[1:] if argv is None else argv)]),
        "machine": started,
        "clips": len(clips),
        "load_avg_end": round(os.getloadavg()[0], 2),
        "decoding": f"first pass {type(transcriber).__name__} (adapter {server.adapter}), "
                    f"window {server.window_s:g} s, {server.nbest} readings, "
                    f"beam widening {server.widen_beam}, "
                    f"catalog phrases {'off' if args.no_phrases else 'on'}, no rescoring",
        "settings": {
            name: {**dataclasses.asdict(config), "instant_verdicts": instant}
            for name, (config, instant) in variants.items()
        },
        "sensitivity": sensitive,
        "by_condition_pooled": summarize(records, ("settings", "condition")),
        "by_condition": summarize(records, ("settings", "language", "condition")),
        "by_rate": summarize(records, ("settings", "rate")),
        "overall": summarize(records, ("settings",)),
        "records": records,
    }  # fmt: skip
    print(write_report(report, markdown, args.out, args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
