"""End-to-end fixtures: one real server (Whisper + rescorer + parser + answers) per test session.

Whisper decodes cost 1-2 s each on a 2-core CPU, so the tests share one server and use few,
short fixture clips.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.serving import ServerThread  # noqa: E402


@pytest.fixture(scope="session")
def e2e_pipeline(whisper_transcriber):
    from assistant.pipeline import PipelineConfig, load_pipeline

    config = PipelineConfig()
    # The shared model with the server's settings (no beam widening), no second load.
    transcriber = copy.copy(whisper_transcriber)
    transcriber.config = dataclasses.replace(transcriber.config, widen_beam=config.widen_beam)
    return load_pipeline(config, transcriber=transcriber)  # the later stages as the server


@pytest.fixture(scope="session")
def e2e_server(e2e_pipeline):
    from assistant.server import AssistantServer, ServerConfig

    with ServerThread(AssistantServer(ServerConfig(port=0), pipeline=e2e_pipeline)) as st:
        yield st
