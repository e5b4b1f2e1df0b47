#!/usr/bin/env bash
# Install everything, assemble models and the database, then start the server and demo page.
# Usage: scripts/start.sh [serve options], e.g. scripts/start.sh --port 8765
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh runtime
. .venv/bin/activate
exec assistant serve "$@"
