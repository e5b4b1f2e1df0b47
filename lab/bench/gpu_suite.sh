#!/usr/bin/env bash
# One-shot GPU suite (issue 17) on a lent device; docs/gpu_benchmark.md, "One-shot suite".
#
#   here, once:    bash lab/bench/gpu_suite.sh prepare
#   there, call 1: bash lab/bench/gpu_suite.sh part && bash lab/bench/gpu_suite.sh smoke
#   there, 2..N-1: bash lab/bench/gpu_suite.sh part
#   there, call N: bash lab/bench/gpu_suite.sh run [more lab.bench.gpu_suite flags]
#
# Each device call carries one .gpu/suite/partK (call 1 also .whl); `part` checks its sha256
# and stashes it in /tmp/gpu_suite, which lasts while the machine stays warm (30 s between
# calls). `run` joins the parts (sha256 of the whole file checked), installs the wheels the
# image lacks and runs the suite into $OUT (gpu_suite.json, gpu_suite.log).
set -euo pipefail
STASH=/tmp/gpu_suite
WHEELS=(SQLAlchemy==2.1.9 rapidfuzz==3.14.6 jellyfish==1.3.0 num2words==0.5.14)

there() {  # the Python of the device image, the carried wheels, the inventory database
  PY=python3
  if [ -d .whl ] && ! [ -f "$STASH/wheels.done" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl
    touch "$STASH/wheels.done"
  fi
  [ -f "$STASH/wheels.done" ] || { echo "wheels not installed: carry .whl in call 1" >&2; exit 2; }
  export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
  if ! [ -f "$STASH/inventory.sqlite" ]; then
    gzip -dc "$STASH/parts/inventory.sqlite.gz" >"$STASH/inventory.sqlite"
  fi
  export RETAIL_ASSISTANT_DB="sqlite:///$STASH/inventory.sqlite"
}

case "${1:-}" in
prepare)
  PY=${PYTHON:-.venv/bin/python}
  MODEL=build/whisper-base-torch
  [ -f "$MODEL/model.safetensors" ] || "$PY" -m asr.torch_convert --out "$MODEL"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
  mkdir -p .gpu
  gzip -c "${RETAIL_ASSISTANT_HOME:-$HOME/.cache/retail-assistant}/inventory.sqlite" \
    >.gpu/inventory.sqlite.gz
  "$PY" -m lab.bench.gpu_parts split --src "$MODEL" --out .gpu/suite \
    --extra .gpu/inventory.sqlite.gz --with .whl
  ;;
part)
  mkdir -p "$STASH"
  python3 -m lab.bench.gpu_parts stash --src .gpu/suite --dst "$STASH/parts"
  ;;
smoke)  # the whole suite on a tiny random-weight Whisper, on the GPU: a minute at most
  there
  python3 -m lab.bench.gpu_suite --dry-run --device cuda --out "$OUT/smoke.json" 2>&1 |
    tee "$OUT/smoke.log" | tail -n 8
  ;;
run)
  shift
  if [ -d .gpu/suite ]; then
    python3 -m lab.bench.gpu_parts stash --src .gpu/suite --dst "$STASH/parts"
  fi
  python3 -m lab.bench.gpu_parts join --src "$STASH/parts" --dst "$STASH/model"
  there
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  python3 -m lab.bench.gpu_suite --device cuda --torch-model "$STASH/model" \
    --out "$OUT/gpu_suite.json" "$@" 2>&1 | tee "$OUT/gpu_suite.log"
  ;;
*)
  echo "usage: $0 prepare | part | smoke | run [suite flags]" >&2
  exit 2
  ;;
esac
