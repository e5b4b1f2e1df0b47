"""Does streaming hear what a file transcription hears? Segmentation parity on held-out clips.

    python -m lab.bench.stream_parity --per-language 60 --out docs/stream_parity.json \
        --markdown docs/stream_parity.md

Each held-out clip of lab.bench.hear_the_store (voices and conditions kept out of training) becomes
a stream: 1 s before and after it of what that condition hears between words (the same brown
noise at the same level for `noise`, silence otherwise), at an input rate taken in turn from
8, 16, 44.1 and 48 kHz. The stream goes through what a session runs (asr.audio.StreamResampler
in 100 ms frames, asr.streaming.StreamingPolicy with Silero VAD, no partials), and every
Endpoint is decoded with the same first pass and settings as the offline path, which decodes
the whole stream once as a file at that rate (`assistant transcribe` with the server's
settings, no phrases): both paths get the same audio, only segmentation differs.

Reported per language and condition: WER of the streamed finals (joined) and of the offline
reading, the share of clips whose streamed reading equals the offline one (asr.nbest
reading_key), the share with exactly one final, and utterances found wholly in the gaps
(fragments of noise).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asr.audio import SAMPLE_RATE, StreamResampler, decode_audio, float32_to_pcm16, resample
from asr.nbest import reading_key
from asr.streaming import Endpoint, StreamingConfig, StreamingPolicy
from lab.bench.hear_the_store import REPO, brown_noise, build_clips
from lab.report import machine_info, write_report
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


def stream_endpoints(audio16: np.ndarray, rate: int, config: StreamingConfig) -> list[Endpoint]:
    """What a session does with a client's PCM at `rate`: resample, VAD, endpoints."""
    from asr.vad import SileroVad

    pcm = float32_to_pcm16(resample(audio16, SAMPLE_RATE, rate) if rate != SAMPLE_RATE else audio16)
    resampler = StreamResampler(rate)
    policy = StreamingPolicy(config, vad=SileroVad())
    step = int(FRAME_S * rate) * 2
    events = []
    for offset in range(0, len(pcm), step):
        policy.push(resampler.push(pcm[offset : offset + step]))
        events += policy.take_events()
    policy.push(resampler.flush())
    events += policy.finish()
    return [e for e in events if isinstance(e, Endpoint)]


def run(clips, transcriber, config: StreamingConfig) -> list[dict]:
    records = []
    for k, clip in enumerate(tqdm(clips, desc="streams")):
        row, lang = clip.row, clip.row["language"]
        stream = make_stream(clip, decode_audio(clip.path), seed=k)
        rate = RATES[k % len(RATES)]
        # The file a client at `rate` would have sent, as `assistant transcribe` decodes it.
        offline = transcriber.nbest(resample(resample(stream, SAMPLE_RATE, rate), rate)).text
        endpoints = stream_endpoints(stream, rate, config)
        finals = [transcriber.nbest(e.audio).text for e in endpoints]
        # An utterance wholly before or after the clip's speech came from the gap's noise.
        speech = (GAP_S, len(stream) / SAMPLE_RATE - GAP_S)
        fragments = sum(1 for e in endpoints if e.end_s < speech[0] or e.start_s > speech[1])
        streamed = " ".join(finals)
        records.append(
            {
                "language": lang, "condition": clip.condition, "voice": clip.voice, "rate": rate,
                "reference": row["text"], "offline": offline, "streamed": streamed,
                "finals": len(finals), "fragments": fragments,
                "same": reading_key(streamed, lang) == reading_key(offline, lang),
            }
        )  # fmt: skip
    return records


def summarize(records: list[dict], keys: tuple[str, ...]) -> list[dict]:
    groups = defaultdict(list)
    for r in records:
        groups[tuple(r[k] for k in keys)].append(r)
    out = []
    for group, rs in sorted(groups.items()):
        refs = defaultdict(lambda: ([], [], []))
        for r in rs:
            refs[r["language"]][0].append(r["reference"])
            refs[r["language"]][1].append(r["streamed"])
            refs[r["language"]][2].append(r["offline"])
        out.append(
            {
                **dict(zip(keys, group, strict=True)),
                "clips": len(rs),
                "streamed_wer": _pooled(refs, 1),
                "offline_wer": _pooled(refs, 2),
                "same_reading": round(sum(r["same"] for r in rs) / len(rs), 4),
                "one_final": round(sum(r["finals"] == 1 for r in rs) / len(rs), 4),
                "noise_fragments": sum(r["fragments"] for r in rs),
            }
        )
    return out


def _pooled(refs, column: int) -> float:
    errors = words = 0
    for lang, cols in refs.items():
        n = sum(len(normalize(x, lang).split()) for x in cols[0])
        errors += wer(cols[0], cols[column], lang) * n
        words += n
    return round(errors / words, 4) if words else 0.0


def markdown(report: dict) -> str:
    cols = ("clips", "streamed_wer", "offline_wer", "same_reading", "one_final", "noise_fragments")
    lines = [
        "# Streaming vs file transcription: segmentation parity",
        "",
        f"Command: `{report['command']}`. Machine: {report['machine']['cores']}-core "
        f"{report['machine']['cpu']}, load average {report['machine']['load_avg_1m']}. "
        f"{report['clips']} held-out clips (lab.bench.hear_the_store's), streamed at 8/16/44.1/48 kHz "
        f"in turn. Streaming settings: `{report['streaming']}`.",
        "",
    ]
    for title, key, by in (
        ("Per language and condition", "by_condition", ("language", "condition")),
        ("Per input rate", "by_rate", ("rate",)),
    ):
        lines += [f"## {title}", "", "| " + " | ".join(by + cols) + " |",
                  "|" + " --- |" * (len(by) + len(cols))]  # fmt: skip
        lines += ["| " + " | ".join(str(r[c]) for c in by + cols) + " |" for r in report[key]]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import dataclasses

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-language", type=int, default=60)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--dev", action="store_true", help="the tuning clips (training voices)")
    parser.add_argument("--clips-dir", type=Path, default=REPO / "build" / "hear_the_store")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="FIELD=VALUE", help="StreamingConfig overrides"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from asr.transcriber import Transcriber, TranscriberConfig
    from assistant.pipeline import PipelineConfig

    overrides = {}
    for item in args.set:
        name, value = item.split("=", 1)
        overrides[name] = type(getattr(StreamingConfig(), name))(value)
    config = dataclasses.replace(StreamingConfig(), **overrides, partials=False)
    server = PipelineConfig()
    transcriber = Transcriber(
        TranscriberConfig(nbest=server.nbest, widen_beam=False, window_s=server.window_s)
    )
    started = machine_info()
    clips = build_clips(args.per_language, args.seed + 1000 * args.dev, args.clips_dir, args.dev)
    records = run(clips, transcriber, config)
    report = {
        "command": " ".join(["python -m lab.bench.stream_parity", *(sys.argv[1:] if argv is None else argv)]),
        "machine": started,
        "clips": len(clips),
        "streaming": dataclasses.asdict(config),
        "by_condition": summarize(records, ("language", "condition")),
        "by_rate": summarize(records, ("rate",)),
        "records": records,
    }  # fmt: skip
    print(write_report(report, markdown, args.out, args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
