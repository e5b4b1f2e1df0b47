"""Fixtures for the server tests (helpers live in tests/ws_harness.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ws_harness import fake_server  # noqa: E402


@pytest.fixture
def fake():
    with fake_server() as st:
        yield st
