"""First-pass n-best lists of the held-out clips, decoded once and cached as JSON.

    python -m lab.eval.heldout_nbest --per-language 60 --out build/understanding/heldout_nbest.json

The clips are lab.bench.hear_the_store's held-out set (corpus *test* split queries spoken by
voices and in conditions no training set has; rendered with TTS into build/hear_the_store/
when absent). Each clip is decoded as `serve` decodes a final: the deployed first pass
(PipelineConfig defaults: Whisper base + the served adapter, catalog phrases chosen per
utterance, beam 8, 5 readings, language detected). Rescoring and everything after it are
left to the evaluation (lab.eval.understanding), so one decode serves every variant there.
`--dev` decodes hear_the_store's tuning clips instead (training voices, another seed's
queries): settings such as the n-best temperature are chosen there, never on held-out clips.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from tqdm import tqdm

from lab import REPO

log = logging.getLogger(__name__)
DEFAULT_OUT = REPO / "build" / "understanding" / "heldout_nbest.json"


def nbest_to_dict(nbest) -> dict:
    return {
        "language": nbest.language,
        "language_prob": nbest.language_prob,
        "hypotheses": [
            {
                "text": h.text,
                "token_ids": list(h.token_ids),
                "logprob_sum": h.logprob_sum,
                "asr_score": h.asr_score,
                "score": h.score,
            }
            for h in nbest.hypotheses
        ],
    }


def nbest_from_dict(d: dict):
    from asr.nbest import Hypothesis, NBest

    hyps = tuple(
        Hypothesis(
            h["text"],
            tuple(h.get("token_ids", ())),
            h.get("logprob_sum", 0.0),
            h.get("asr_score", 0.0),
            None,
            h.get("score", h.get("asr_score", 0.0)),
        )
        for h in d["hypotheses"]
    )
    return NBest(hyps, d["language"], d.get("language_prob", 1.0))


def decode_heldout(per_language: int, seed: int, out: Path, dev: bool = False) -> dict:
    from lab.bench.hear_the_store import build_clips

    clips = build_clips(per_language, seed + 1000 * dev, REPO / "build" / "hear_the_store", dev)
    return decode_clips(clips, out)


def decode_clips(clips: list, out: Path) -> dict:
    """The first pass's n-best of every clip (hear_the_store.Clip: path, row, voice,
    condition) not yet in the cache at `out`; returns the cache (written back)."""
    from asr.audio import decode_audio
    from assistant.pipeline import FinalRequest, PipelineConfig, load_pipeline

    cache = json.loads(out.read_text()) if out.is_file() else {"clips": {}}
    todo = [c for c in clips if c.path not in cache["clips"]]
    if todo:
        pipeline = load_pipeline(PipelineConfig(rescore=False))
        t = time.perf_counter()
        for clip in tqdm(todo, desc="decoding clips"):
            audio = decode_audio(clip.path)
            request = FinalRequest(audio, None, "1")
            nbest = pipeline.transcriber.nbest(
                audio, None, nbest=pipeline.config.nbest, phrases=pipeline._phrases_for(request)
            )
            cache["clips"][clip.path] = {
                "row": clip.row,
                "voice": clip.voice,
                "condition": clip.condition,
                "nbest": nbest_to_dict(nbest),
            }
        cache["decode_seconds"] = round(time.perf_counter() - t, 1)
        cache["first_pass"] = "PipelineConfig defaults (adapter, catalog phrases), no rescoring"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(cache, ensure_ascii=False, indent=1))
    return cache


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-language", type=int, default=60)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument(
        "--dev",
        action="store_true",
        help="the tuning clips (training voices, another seed): for choosing settings only",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cache = decode_heldout(args.per_language, args.seed, args.out, args.dev)
    print(f"{len(cache['clips'])} clips in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
