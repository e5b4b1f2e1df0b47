#!/usr/bin/env bash
# Prove the CI suite holds on a busy machine: clone the committed HEAD afresh, keep every core
# busy with another CPU-bound job, and run .ci/run on the clone RUNS times in a row (default 2).
# Exits non-zero at the first failing run. Logs: $WORK/run-N.log (printed at the end).
# Usage: scripts/ci_under_load.sh [RUNS]   (env: LOAD_WORKERS, default: number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-2}"
workers="${LOAD_WORKERS:-$(nproc)}"
repo="$(pwd)"
work="$(mktemp -d /tmp/ci-under-load.XXXXXX)"
git clone -q "$repo" "$work/main"
# CI lays shared/ beside the clone; the tests that need it skip cleanly without it.
[ -d "$repo/../shared" ] && ln -s "$(cd "$repo/../shared" && pwd)" "$work/shared"

if command -v stress-ng >/dev/null 2>&1; then
  stress-ng --cpu "$workers" --timeout 0 --quiet &
else
  # A plain CPU-bound job per core when stress-ng is not installed (apt-get install stress-ng).
  python3 -c "
import multiprocessing as mp
def spin():
    while True:
        pass
for _ in range($workers):
    mp.Process(target=spin, daemon=True).start()
mp.Event().wait()
" &
fi
load_pid=$!
trap 'pkill -P $load_pid 2>/dev/null || true; kill $load_pid 2>/dev/null || true' EXIT
echo "load: $workers CPU-bound workers (pid $load_pid); clone: $work/main"

for i in $(seq 1 "$runs"); do
  started=$(date +%s)
  if (cd "$work/main" && CI=true bash .ci/run) >"$work/run-$i.log" 2>&1; then
    echo "run $i/$runs: passed in $(( $(date +%s) - started )) s; $(grep -E '^=+ .*(passed|failed)' "$work/run-$i.log" | tail -1)"
  else
    echo "run $i/$runs: FAILED after $(( $(date +%s) - started )) s; log: $work/run-$i.log"
    tail -40 "$work/run-$i.log"
    exit 1
  fi
done
echo "all $runs runs passed under load; logs in $work"
