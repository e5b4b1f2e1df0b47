#!/usr/bin/env bash
# Install what the tests need (Python deps, Whisper, database, Chromium, PostgreSQL, TTS) and run
# the test suite that CI runs: everything except tests marked slow or gpu.
# Usage: scripts/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need_apt+=(postgresql)
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
command -v pico2wave >/dev/null 2>&1 || need_apt+=(libttspico-utils)  # SVOX Pico: Debian non-free
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    # Pico lives in non-free, which a fresh Debian does not enable: add the components to the
    # existing deb822 source entries.
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      sed -i -E 's/^Components: main$/Components: main contrib non-free/' /etc/apt/sources.list.d/debian.sources
    fi
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >/dev/null
  else
    echo "test.sh: missing ${need_apt[*]}; the tests that need them will skip" >&2
  fi
fi

scripts/setup.sh dev
. .venv/bin/activate
# --durations=15: the slowest tests in every CI log, so the 15-minute budget stays visible.
exec python -m pytest -m "not slow and not gpu" --durations=15 "$@"
