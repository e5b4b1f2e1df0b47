"""Greedy CTranslate2 decoding of a tiny Whisper in a fresh process (tests of asr.adapter)."""

from __future__ import annotations

import json
from pathlib import Path

GREEDY_SCRIPT = """
import json, sys
import ctranslate2, numpy as np
feats = np.random.default_rng(0).standard_normal((2, 16, 3000)).astype(np.float32)
prompt = [int(t) for t in sys.argv[1].split(",")]
out = []
for model_dir in sys.argv[2:]:
    model = ctranslate2.models.Whisper(model_dir, device="cpu", compute_type="float32", intra_threads=1)
    results = model.generate(ctranslate2.StorageView.from_array(feats), [prompt, prompt], beam_size=1,
                             max_length=len(prompt) + 8, suppress_blank=False, suppress_tokens=[])
    out.append([r.sequences_ids[0] for r in results])
print(json.dumps(out))
"""
# tiny_whisper: <|startoftranscript|><|en|><|transcribe|><|notimestamps|> (no timestamp rules)
TINY_PROMPT = (31, 32, 34, 35)


def greedy_ids(*model_dirs: Path, prompt: tuple[int, ...] = TINY_PROMPT) -> list:
    """Greedy tokens of each CTranslate2 model on fixed random features, in a fresh process:
    CTranslate2 next to torch's OpenMP runtime in one process was seen to crash or flip tokens."""
    import subprocess
    import sys

    args = [sys.executable, "-c", GREEDY_SCRIPT, ",".join(map(str, prompt)), *map(str, model_dirs)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])
