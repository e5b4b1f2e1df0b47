#!/usr/bin/env bash
# Regenerate docs/screenshot.png: the Playwright browser test drives the demo page with a
# fixture WAV as its microphone (English then Spanish query) and saves the page.
# Needs chromium (/usr/bin/chromium) and the assembled models (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
RETAIL_ASSISTANT_SCREENSHOT="$PWD/docs/screenshot.png" \
  python -m pytest -q tests/e2e/test_browser.py -p no:cacheprovider "$@"
echo "wrote docs/screenshot.png"
