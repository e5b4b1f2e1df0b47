#!/usr/bin/env bash
# Rebuild the labelled EN/ES corpus from the inventory catalog:
#   build/catalog.jsonl, build/corpus/{train,dev,test}.jsonl, unlabelled.txt, stats.json, docs/corpus.md
# Extra arguments go to `python -m lab.nlu.corpus build` (e.g. --n 20000). SEED and N may be set.
set -euo pipefail
cd "$(dirname "$0")/.."
SEED="${SEED:-13}"
N="${N:-200000}"
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
mkdir -p build
# The database is created by scripts/setup.sh; create it here too when it is missing (idempotent).
assistant db status >/dev/null 2>&1 || assistant db init
assistant catalog --json > build/catalog.jsonl
python -m lab.nlu.corpus build --catalog build/catalog.jsonl --out build/corpus \
  --seed "$SEED" --n "$N" --doc docs/corpus.md "$@"
# A small committed sample of the held-out test split (< 1 MB) for CI tests that need real rows.
mkdir -p data/corpus_sample
head -n 1000 build/corpus/test.jsonl > data/corpus_sample/test_sample.jsonl
