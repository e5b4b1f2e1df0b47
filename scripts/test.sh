#!/usr/bin/env bash
# Install what the tests need (Python deps, Whisper, database, Chromium, PostgreSQL) and run
# the test suite that CI runs: everything except tests marked slow or gpu.
# Usage: scripts/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >/dev/null
  else
    echo "test.sh: missing ${need_apt[*]}; the browser and PostgreSQL tests will skip" >&2
  fi
fi

scripts/setup.sh dev
. .venv/bin/activate
exec python -m pytest -m "not slow and not gpu" "$@"
