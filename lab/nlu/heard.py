"""Training text as heard (issue 16): corpus labels projected onto first-pass hypotheses.

    python -m lab.nlu.heard --nbest NBEST.json --out build/nlu/heard.jsonl

NBEST.json: lab.eval.heldout_nbest's cache format ({"clips": {path: {"row", "nbest"}}}) built
from synthetic *train* speech only (`--dev` clips or a decode of corpus train rows with
training voices; held-out voices and conditions never). Each hypothesis gets the reference's
intent, and each reference span is carried onto the hypothesis words it aligns to
(difflib word alignment on folded words): an equal or replaced block inherits the label of the
reference words it replaces, so "collugs frosted flakes" becomes [collugs]BRAND [frosted
flakes]PRODUCT. Rows whose spans cannot be placed (a deleted entity) are dropped. The rows have
the corpus line shape and `"noisy": true`, ready to append to train.jsonl before
`scripts/train_nlu.sh prepare`.
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nbest", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--per-clip", type=int, default=3, help="hypotheses kept per clip")
    args = ap.parse_args(argv)
    cache = json.loads(args.nbest.read_text())
    rows = []
    for clip in cache["clips"].values():
        for h in clip["nbest"]["hypotheses"][: args.per_clip]:
            out = project(clip["row"], h["text"])
            if out is not None and out["text"] != clip["row"]["text"]:
                rows.append(out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
