#!/usr/bin/env bash
# Rebuild the store-v1 Whisper decoder adapter from nothing but the repository and its pinned
# packages (about 1.5 h on 2 shared CPU cores), then measure it:
#   build/whisper_adapt/{catalog.jsonl,corpus/,data/}  asr/data/adapters/store-v1/  docs/whisper_adaptation.*
# Needs espeak-ng and libttspico-utils (Debian non-free) and the Kokoro packages (see
# lab/whisper_adapt/voices.py). Extra arguments go to the train step (e.g. --steps 600).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
mkdir -p build/whisper_adapt
assistant models assemble --adapter none
assistant db status >/dev/null 2>&1 || assistant db init
assistant catalog --json > build/whisper_adapt/catalog.jsonl
python -m lab.nlu.corpus build --catalog build/whisper_adapt/catalog.jsonl \
  --out build/whisper_adapt/corpus --seed 13 --n 20000 --no-progress
python -m lab.whisper_adapt data --n-train 3600 --n-dev 240
python -m lab.whisper_adapt train "$@"
python -m lab.whisper_adapt evaluate
