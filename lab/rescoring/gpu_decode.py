"""Decode the synthesized corpus into n-best lists on a GPU with the PyTorch Whisper backend.

Why this exists: Whisper base costs 1-4 s a clip on the 2-core dev machine, so the 5,000+
training utterances are decoded on a lent GPU machine (no network, a 64 MiB limit on what
travels per call). The converted PyTorch weights (145 MB float16) do not fit in one call, so
`pack` stores them as int8 rows with float16 scales in two halves (the CPU first pass runs
int8 too) that travel in two calls; `unpack` rebuilds a float16 model folder there.

    python -m lab.rescoring.gpu_decode pack --out .gpu_resc                 # here
    python -m lab.rescoring.gpu_decode unpack --src .gpu_resc --dst DIR     # there
    python -m lab.rescoring.gpu_decode decode --model DIR --plan P.jsonl --audio-root R --out O.jsonl

`decode` writes the same JSONL as lab.rescoring.nbest_corpus (hypotheses best first).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)

SIDE_FILES = ("config.json", "ct2_config.json", "generation_config.json", "tokenizer.json")


def pack(src: Path, out: Path, parts: int = 2) -> list[Path]:
    """Split model.safetensors into `parts` files of int8 rows (2-D weights) + float16 rest."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(src / "model.safetensors"))
    out.mkdir(parents=True, exist_ok=True)
    packed: list[dict[str, np.ndarray]] = [{} for _ in range(parts)]
    sizes = [0] * parts
    for name in sorted(tensors, key=lambda n: -tensors[n].size):
        w = tensors[name].astype(np.float32)
        k = int(np.argmin(sizes))  # greedy balance of the halves
        if w.ndim == 2 and w.size >= 4096:
            scale = np.maximum(np.abs(w).max(axis=1, keepdims=True), 1e-8) / 127.0
            packed[k][name + ".q8"] = np.round(w / scale).astype(np.int8)
            packed[k][name + ".scale"] = scale.astype(np.float16)
            sizes[k] += w.size
        else:
            packed[k][name] = w.astype(np.float16)
            sizes[k] += 2 * w.size
    paths = []
    for k, part in enumerate(packed):
        path = out / f"weights{k}" / f"part{k}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(part, str(path))
        paths.append(path)
    side = out / "weights0"
    for name in SIDE_FILES:
        shutil.copy(src / name, side / name)
    return paths


def unpack(src: Path, dst: Path) -> None:
    """Rebuild a float16 model folder (model.safetensors + side files) from the packed parts."""
    from safetensors.numpy import load_file, save_file

    tensors: dict[str, np.ndarray] = {}
    for part in sorted(src.glob("weights*/part*.safetensors")):
        raw = load_file(str(part))
        for name, value in raw.items():
            if name.endswith(".q8"):
                base = name[: -len(".q8")]
                scale = raw[base + ".scale"].astype(np.float32)
                tensors[base] = (value.astype(np.float32) * scale).astype(np.float16)
            elif not name.endswith(".scale"):
                tensors[name] = value
    dst.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dst / "model.safetensors"))
    for name in SIDE_FILES:
        if (src / "weights0" / name).exists():
            shutil.copy(src / "weights0" / name, dst / name)
    log.info("unpacked %d tensors into %s", len(tensors), dst)


def decode(
    model_dir: Path,
    plan: Path,
    audio_root: Path,
    out: Path,
    batch: int,
    nbest: int,
    beam: int,
    device: str = "auto",
) -> None:
    """n-best lists of every clip in `plan` (rows of lab.rescoring.nbest_corpus), appended to out."""
    import soundfile as sf

    from asr.torch_backend import TorchTranscriber, TorchTranscriberConfig

    transcriber = TorchTranscriber(
        TorchTranscriberConfig(
            model_dir=model_dir, device=device, beam_size=beam, nbest=nbest, batch_size=batch
        )
    )
    with open(plan, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    started = time.perf_counter()
    with open(out, "a", encoding="utf-8") as f:
        for start in tqdm(range(0, len(rows), batch), desc="decode", unit="batch"):
            chunk = rows[start : start + batch]
            audios = [sf.read(audio_root / r["audio"], dtype="float32")[0] for r in chunk]
            results = transcriber.nbest_batch(audios, [r["language"] for r in chunk])
            for row, result in zip(chunk, results, strict=True):
                row = dict(row, decoder="torch-" + str(transcriber.device))
                row["hypotheses"] = [
                    {
                        "text": h.text,
                        "token_ids": list(h.token_ids),
                        "logprob_sum": round(h.logprob_sum, 5),
                        "asr_score": round(h.asr_score, 5),
                    }
                    for h in result.hypotheses
                ]
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    log.info("%d clips in %.1f s", len(rows), time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.rescoring.gpu_decode", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--src", type=Path, default=None, help="converted folder (asr.torch_convert)")
    p.add_argument("--out", type=Path, default=Path(".gpu_resc"))
    p = sub.add_parser("unpack")
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--dst", type=Path, required=True)
    p = sub.add_parser("decode")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--plan", type=Path, required=True)
    p.add_argument("--audio-root", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--nbest", type=int, default=8)
    p.add_argument("--beam", type=int, default=16)
    p.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.cmd == "pack":
        from asr.torch_convert import default_torch_dir

        for path in pack(args.src or default_torch_dir(), args.out):
            print(path, path.stat().st_size)
    elif args.cmd == "unpack":
        unpack(args.src, args.dst)
    else:
        decode(
            args.model,
            args.plan,
            args.audio_root,
            args.out,
            args.batch,
            args.nbest,
            args.beam,
            args.device,
        )


if __name__ == "__main__":
    main()
