"""Training text as heard (issue 16): corpus labels projected onto first-pass hypotheses.

    python -m lab.nlu.heard decode --corpus build/corpus --per-language 400 \
        --out build/nlu/heard_nbest.json                  # TTS + first pass, resumable
    python -m lab.nlu.heard project --nbest build/nlu/heard_nbest.json --out build/nlu/heard.jsonl

`decode` speaks rows of the corpus *train* split (never dev/test) with the training voices
(lab.bench.hear_the_store.DEV_VOICES; the held-out voices never) in training conditions only:
clean, white noise at 8-25 dB, or a small room (RT60 0.2-0.5 s) plus white noise; the held-out
set's brown noise, 0.8 s reverberation and telephone band are never used. Each clip is decoded
as `serve` decodes a final (lab.eval.heldout_nbest.decode_clips), into that module's cache
format ({"clips": {path: {"row", "nbest"}}}).

`project` gives each hypothesis the reference's intent and carries each reference span onto
the hypothesis words it aligns to (difflib word alignment on folded words): an equal or
replaced block inherits the label of the reference words it replaces, so "collugs frosted
flakes" becomes [collugs]BRAND [frosted flakes]PRODUCT. Rows whose spans cannot be placed (a
deleted entity) are dropped. The rows have the corpus line shape and `"noisy": true`, for
`lab.nlu.train run --extra-rows` (or to append to train.jsonl).
"""

from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path

from textnorm import fold


def _words(text: str) -> list[tuple[str, int, int]]:
    out, i = [], 0
    for w in text.split():
        start = text.index(w, i)
        out.append((w, start, start + len(w)))
        i = start + len(w)
    return out


def project(row: dict, heard: str) -> dict | None:
    """The reference row's labels on `heard`, or None when a span has no aligned words."""
    ref, hyp = _words(row["text"]), _words(heard)
    tags = ["O"] * len(ref)
    for k, e in enumerate(row["entities"]):
        for j, (_w, s, t) in enumerate(ref):
            if s < e["end"] and t > e["start"]:
                tags[j] = f"{e['label']}#{k}"
    strip = lambda w: fold(w).strip("¿?¡!.,;:")  # noqa: E731
    sm = difflib.SequenceMatcher(a=[strip(w) for w, *_ in ref], b=[strip(w) for w, *_ in hyp])
    htags = ["O"] * len(hyp)
    for op, a0, a1, b0, b1 in sm.get_opcodes():
        if op in ("equal", "replace"):
            for j in range(b0, b1):
                # a replaced block: hypothesis word j takes the label of its share of a0..a1
                src = (
                    a0 + (j - b0) * max(a1 - a0, 1) // max(b1 - b0, 1)
                    if op == "replace"
                    else a0 + j - b0
                )
                htags[j] = tags[min(src, a1 - 1)] if a1 > a0 else "O"
    entities = []
    j = 0
    while j < len(hyp):
        if htags[j] == "O":
            j += 1
            continue
        k = j
        while k + 1 < len(hyp) and htags[k + 1] == htags[j]:
            k += 1
        start, end = hyp[j][1], hyp[k][2]
        text = heard[start:end].rstrip("¿?¡!.,;:")
        end = start + len(text)
        entities.append({"label": htags[j].split("#")[0], "start": start, "end": end, "text": text})
        j = k + 1
    if len({e["label"] for e in entities}) < len({e["label"] for e in row["entities"]}):
        return None
    return {**row, "text": heard, "entities": entities, "noisy": True, "heard": True}


def training_clips(corpus: Path, per_language: int, seed: int, folder: Path) -> list:
    """Synthesize (once) `per_language` train-split queries per language, intents in turn."""
    import random

    from tqdm import tqdm

    from lab.bench.hear_the_store import DEV_VOICES, Clip, rows_by_intent
    from lab.tts.synth import available_voices, synthesize, write_wav

    manifest = folder / f"manifest_{per_language}_{seed}.jsonl"
    if manifest.is_file():
        return [Clip(**json.loads(line)) for line in manifest.read_text().splitlines()]
    lines = (corpus / "train.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [r for r in map(json.loads, lines) if not r.get("noisy")]
    rng = random.Random(seed)
    have = {v.name for v in available_voices()}
    clips = []
    folder.mkdir(parents=True, exist_ok=True)
    for language in ("en", "es"):
        voices = [v for v in DEV_VOICES[language] if v in have]
        if not voices:
            raise SystemExit(f"no training {language} voice installed (apt: espeak-ng)")
        by_intent = rows_by_intent(rows, language)
        intents = sorted(by_intent)
        for k in tqdm(range(per_language), desc=f"synthesizing {language}"):
            pool = by_intent[intents[k % len(intents)]]
            row = pool.pop(rng.randrange(len(pool)))
            condition = ("clean", "white_noise", "room")[k % 3]
            snr = round(rng.uniform(8, 25), 1) if condition != "clean" else None
            rt60 = round(rng.uniform(0.2, 0.5), 2) if condition == "room" else None
            audio = synthesize(
                row["text"], voices[k % len(voices)], rate=rng.uniform(0.85, 1.15),
                snr_db=snr, reverb_rt60_s=rt60, seed=k,
            )  # fmt: skip
            path = folder / f"{manifest.stem.removeprefix('manifest_')}_{language}_{k:04d}.wav"
            write_wav(path, audio)
            clips.append(Clip(str(path), row, voices[k % len(voices)], condition, snr))
    manifest.write_text("\n".join(json.dumps(c.__dict__, ensure_ascii=False) for c in clips))
    return clips


def project_cache(cache: dict, per_clip: int, max_wer: float = 0.5) -> list[dict]:
    """Projected rows of the first `per_clip` hypotheses of every clip. Left out: exact
    copies of the reference (train.jsonl has them) and hypotheses with a word error rate
    above `max_wer` against it, whose word alignment places labels on unrelated words
    ("existencias neplomas [reine]PRODUCT [que]BRAND ..."); out-of-scope rows carry no
    spans, so any reading of them keeps its label."""
    from lab.wer import wer

    rows = []
    for clip in cache["clips"].values():
        ref = clip["row"]
        for h in clip["nbest"]["hypotheses"][:per_clip]:
            out = project(ref, h["text"])
            if out is None or out["text"] == ref["text"]:
                continue
            if ref["entities"] and wer([ref["text"]], [h["text"]], ref["language"]) > max_wer:
                continue
            rows.append(out)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("decode", help="speak train-split rows and decode them (resumable)")
    d.add_argument("--corpus", type=Path, default=Path("build/corpus"))
    d.add_argument("--per-language", type=int, default=400)
    d.add_argument("--seed", type=int, default=29)
    d.add_argument("--audio", type=Path, default=Path("build/nlu/heard_audio"))
    d.add_argument("--out", type=Path, default=Path("build/nlu/heard_nbest.json"))
    p = sub.add_parser("project", help="n-best cache -> labelled rows as heard")
    p.add_argument("--nbest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per-clip", type=int, default=3, help="hypotheses kept per clip")
    p.add_argument("--max-wer", type=float, default=0.5, help="drop readings further off")
    args = ap.parse_args(argv)
    if args.command == "decode":
        from lab.eval.heldout_nbest import decode_clips

        clips = training_clips(args.corpus, args.per_language, args.seed, args.audio)
        cache = decode_clips(clips, args.out)
        print(f"{len(cache['clips'])} clips in {args.out}")
        return 0
    rows = project_cache(json.loads(args.nbest.read_text()), args.per_clip, args.max_wer)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
