"""First-pass settings for live finals: accuracy on held-out clips next to the decode's speed.

    python -m lab.bench.first_pass_knobs --every 3 \
        --variants base win1:window_s=1 beam6:beam_size=6,nbest=3 pad128:speech_pad_ms=128 \
        --out build/first_pass_knobs.json

Each held-out clip of lab.bench.hear_the_store (voices and conditions no training set has)
becomes the stream a client would send (lab.bench.stream_parity.make_stream: 1 s before and
after it of what its condition hears between words), cut into the utterances a live session
cuts (asr.streaming.segment with the variant's StreamingConfig), and each utterance is decoded
as the server decodes a final (catalog phrases chosen from a greedy draft, no beam widening),
then rescored, parsed and answered by the deployed later stages. A variant is `NAME` or
`NAME:FIELD=VALUE,...` over TranscriberConfig fields (window_s, beam_size, nbest, ...) and
StreamingConfig fields (speech_pad_ms, pre_roll_ms, ...); `base` is the server's settings and
is always run. Variants are decoded clip by clip in turn (interleaved, each clip starting
with the next variant: the first decode of a clip runs a few per cent slower or faster than
the others), so that their speed ratios share the machine's load.

Per variant (and language): WER of the finals' text, entity words heard in the top-1 and in the
n-best, answers right (lab.bench.hear_the_store's scoring), and against `base` clip by clip:
clips whose text changed, entity words gained / lost, answers gained / lost, the sign test's
two-sided p of those changes, and the first pass's time (median ms per clip, and the median of
the per-clip ratios to base).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import math
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

from lab import REPO
from lab.report import machine_info, render_table

log = logging.getLogger(__name__)


def parse_variant(text: str, transcriber_fields: set, streaming_fields: set) -> tuple:
    """ "name:a=1,b=x" -> (name, {transcriber field: value}, {streaming field: value})."""
    from asr.streaming import StreamingConfig
    from asr.transcriber import TranscriberConfig

    name, _, body = text.partition(":")
    decoding, streaming = {}, {}
    for item in filter(None, body.split(",")):
        key, value = item.split("=", 1)
        if key in transcriber_fields:
            target, default = decoding, getattr(TranscriberConfig(), key)
        elif key in streaming_fields:
            target, default = streaming, getattr(StreamingConfig(), key)
        else:
            raise SystemExit(f"{key}: neither a TranscriberConfig nor a StreamingConfig field")
        if isinstance(default, bool):
            target[key] = value.lower() in ("1", "true", "yes")
        else:
            target[key] = type(default)(value)
    return name, decoding, streaming


def sign_test(gained: int, lost: int) -> float:
    """Two-sided p of `gained` vs `lost` changes under no difference (binomial, p = 1/2)."""
    n, k = gained + lost, min(gained, lost)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return round(min(1.0, 2 * tail), 4)


def last_partial(endpoint, config, pipeline, partial_ms: float) -> str | None:
    """What a live session's last partial decode of `endpoint`'s utterance had heard by its
    speculation, when it missed at most `config.partial_draft_ms` of the speech (else None).

    The session's schedule, replayed in VAD windows (32 ms): a partial is taken when the
    utterance has grown by `partial_interval_s` since the last one, none is running and speech
    goes on (client frames of 100 ms; the first at onset, with the pre-roll), and is back
    `partial_ms` later; the speculation (speculate_ms after the last speech) takes the newest
    one back by then. Its reading is a greedy decode of the utterance's audio up to it."""
    from asr.streaming import WINDOW_MS

    cut = endpoint.cut
    if cut is None or config.partial_draft_ms < 0:
        return None
    frame, took_ms = 100 / WINDOW_MS, partial_ms / WINDOW_MS
    interval = config.partial_interval_s * 1000 / WINDOW_MS
    onset = (config.pre_roll_ms + config.min_speech_ms) / WINDOW_MS
    speculate_at = cut + config.speculate_ms / WINDOW_MS
    now, taken, busy_until = min(onset, cut), None, -1.0
    heard_at = None  # windows seen by the newest partial back before the speculation
    while now <= cut:
        if now >= busy_until and (taken is None or now - taken >= interval):
            taken, busy_until = now, now + took_ms
            if busy_until <= speculate_at:
                heard_at = taken
        now += frame
    if heard_at is None or (cut - heard_at) * WINDOW_MS > config.partial_draft_ms:
        return None
    decoded = pipeline.partial(endpoint.audio[: int(heard_at * WINDOW_MS * 16)], None)
    return decoded[0] if decoded and decoded[0].strip() else None


def run(clips, variants: dict, pipeline, inventory, catalog, partial_ms: float) -> list[dict]:
    """One record per clip and variant; variants decoded in turn on each clip."""
    from asr.audio import decode_audio
    from asr.streaming import segment
    from asr.vad import SileroVad
    from assistant.phrases import HeardDraft
    from lab.bench.hear_the_store import ENTITY_LABELS, answer_right, words_heard
    from lab.bench.stream_parity import make_stream

    vad = SileroVad()
    records = []
    for k, clip in enumerate(tqdm(clips, desc="clips")):
        row, lang = clip.row, clip.row["language"]
        stream = make_stream(clip, decode_audio(clip.path), seed=k)
        cuts: dict = {}
        names = list(variants)
        turn = names[k % len(names) :] + names[: k % len(names)]  # each variant first in turn
        for name in turn:
            transcriber, streaming = variants[name]
            if streaming not in cuts:
                ends = segment(stream, streaming, vad)
                heard = [last_partial(e, streaming, pipeline, partial_ms) for e in ends]
                cuts[streaming] = ([e.audio for e in ends], heard)
            utterances, heard = cuts[streaming]
            selectors = [HeardDraft(catalog, (h,)) if h else catalog for h in heard]
            started = time.perf_counter()
            nbests = [
                transcriber.nbest(a, None, phrases=p)
                for a, p in zip(utterances, selectors, strict=True)
            ]
            asr_ms = 1000 * (time.perf_counter() - started)
            results = [pipeline.understand(nb, "1", asr_ms) for nb in nbests]
            text = " ".join(r.nbest.text for r in results if r.nbest.text.strip())
            texts = [h.text for r in results for h in r.nbest.hypotheses]
            longest = max(range(len(utterances)), key=lambda i: len(utterances[i]), default=None)
            entities = {
                e["label"]: (
                    words_heard(e["text"], text, lang),
                    any(words_heard(e["text"], t, lang) for t in texts),
                )
                for e in row["entities"]
                if e["label"] in ENTITY_LABELS
            }
            records.append(
                {
                    "variant": name,
                    "clip": clip.path,
                    "language": lang,
                    "condition": clip.condition,
                    "reference": row["text"],
                    "text": text,
                    "utterances": len(utterances),
                    "drafts_reused": sum(h is not None for h in heard),
                    "seconds": round(sum(len(a) for a in utterances) / 16_000, 3),
                    "asr_ms": round(asr_ms, 1),
                    "entities": entities,
                    "answer_right": longest is not None
                    and answer_right(row, results[longest], inventory),
                }
            )
    return records


def summarize(records: list[dict], keys: tuple[str, ...]) -> list[dict]:
    from lab.bench.hear_the_store import _share, _wer

    base = {(r["clip"]): r for r in records if r["variant"] == "base"}
    groups = defaultdict(list)
    for r in records:
        groups[tuple(r[k] for k in keys)].append(r)
    out = []
    for group, rs in groups.items():
        pairs = [(r, base[r["clip"]]) for r in rs]
        gained = lost = answers_gained = answers_lost = changed = 0
        for r, b in pairs:
            changed += r["text"] != b["text"]
            for label, (top1, _nbest) in r["entities"].items():
                was = b["entities"][label][0]
                gained += top1 and not was
                lost += was and not top1
            answers_gained += r["answer_right"] and not b["answer_right"]
            answers_lost += b["answer_right"] and not r["answer_right"]
        ents = [v for r in rs for v in r["entities"].values()]
        ratios = [r["asr_ms"] / b["asr_ms"] for r, b in pairs if b["asr_ms"] > 0]
        out.append(
            {
                **dict(zip(keys, group, strict=True)),
                "clips": len(rs),
                "wer": _wer(rs, [r["language"] for r in rs]),
                "entity_top1": _share(t for t, _ in ents),
                "entity_nbest": _share(n for _, n in ents),
                "answers": _share(r["answer_right"] for r in rs),
                "text_changed": changed,
                "entities_gained": gained,
                "entities_lost": lost,
                "entity_p": sign_test(gained, lost),
                "answers_gained": answers_gained,
                "answers_lost": answers_lost,
                "answer_p": sign_test(answers_gained, answers_lost),
                "utterances": sum(r["utterances"] for r in rs),
                "drafts_reused": sum(r.get("drafts_reused", 0) for r in rs),
                "asr_ms_p50": round(statistics.median(r["asr_ms"] for r in rs), 1),
                "ratio_to_base": round(statistics.median(ratios), 3) if ratios else None,
            }
        )
    return out


COLUMNS = (
    "clips", "wer", "entity_top1", "entity_nbest", "answers", "text_changed",
    "entities_gained", "entities_lost", "entity_p", "answers_gained", "answers_lost",
    "answer_p", "utterances", "drafts_reused", "asr_ms_p50", "ratio_to_base",
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-language", type=int, default=60)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--every", type=int, default=1, help="every Nth clip (a screening subset)")
    ap.add_argument("--dev", action="store_true", help="the tuning clips (training voices)")
    ap.add_argument("--clips-dir", type=Path, default=REPO / "build" / "hear_the_store")
    ap.add_argument("--variants", nargs="+", default=["base"])
    ap.add_argument(
        "--partial-ms",
        type=float,
        default=230.0,
        help="how long a live partial decode takes (replays the partial schedule, for "
        "variants with partial_draft_ms >= 0)",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from asr.streaming import StreamingConfig
    from asr.transcriber import TranscriberConfig
    from assistant.phrases import catalog_phrases
    from assistant.pipeline import PipelineConfig, load_first_pass, load_pipeline
    from lab.bench.hear_the_store import build_clips

    server = PipelineConfig()
    base = load_first_pass(server)  # the server's first pass and decoding settings
    pipeline = load_pipeline(dataclasses.replace(server, phrases=False), transcriber=base)
    catalog = catalog_phrases(pipeline.inventory)
    transcriber_fields = set(TranscriberConfig.__dataclass_fields__)
    streaming_fields = set(StreamingConfig.__dataclass_fields__)
    specs = [parse_variant(v, transcriber_fields, streaming_fields) for v in args.variants]
    if "base" not in [name for name, _, _ in specs]:
        specs.insert(0, ("base", {}, {}))
    variants = {}
    for name, decoding, streaming in specs:
        view = base
        if decoding:  # the same loaded weights with other decoding settings
            view = copy.copy(base)
            view.config = dataclasses.replace(base.config, **decoding)
        variants[name] = (view, dataclasses.replace(StreamingConfig(), **streaming))
    clips = build_clips(args.per_language, args.seed + 1000 * args.dev, args.clips_dir, args.dev)
    clips = clips[:: args.every]
    started = machine_info()
    records = run(clips, variants, pipeline, pipeline.inventory, catalog, args.partial_ms)
    report = {
        "command": " ".join(
            ["python -m lab.bench.first_pass_knobs", *(sys.argv[1:] if argv is None else argv)]
        ),
        "machine": started,
        "machine_after": machine_info(),
        "clips": len(clips),
        "variants": {name: {**d, **s} for name, d, s in specs},
        "base": {
            "transcriber": {
                k: getattr(base.config, k) for k in ("window_s", "beam_size", "nbest", "widen_beam")
            },
            "streaming": dataclasses.asdict(StreamingConfig()),
        },
        "overall": summarize(records, ("variant",)),
        "by_language": summarize(records, ("variant", "language")),
        "records": records,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    for key, by in (("overall", ("variant",)), ("by_language", ("variant", "language"))):
        rows = [[r[c] for c in by + COLUMNS] for r in report[key]]
        print(render_table(by + COLUMNS, rows), "\n")
    print(f"load {started.get('load_avg_1m')} -> {report['machine_after'].get('load_avg_1m')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
