"""Shared fixtures. Keep small: loading Whisper costs ~1-2 s, so it is loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures"
REAL_SPEECH = REPO_ROOT.parent / "shared" / "real-speech"


@pytest.fixture(scope="session")
def whisper_transcriber():
    """One CPU Whisper base Transcriber (int8, nbest 5) for the whole test session.

    Skips when Whisper is not assembled (run `assistant models assemble`; scripts/test.sh does).
    """
    from asr.models import ModelError
    from asr.transcriber import Transcriber, TranscriberConfig

    try:
        return Transcriber(TranscriberConfig(device="cpu", nbest=5))
    except ModelError as error:
        pytest.skip(f"Whisper not available: {error}")
