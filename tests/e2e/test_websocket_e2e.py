"""Protocol v1 end to end with the real models: fixture speech in, intent/entities/answers out."""

from __future__ import annotations

import asyncio

import numpy as np
from ws_harness import fixture_audio, fixture_rows

from assistant.commands.replay import file_frames, stream_session

SR = 16_000


def pcm16(audio: np.ndarray) -> bytes:
    from asr.audio import float32_to_pcm16

    return float32_to_pcm16(audio)


def replay(url: str, audio: np.ndarray, speed: float, language: str = "auto", store: str = "1"):
    frames = file_frames(pcm16(audio), SR, 100, speed)
    return asyncio.run(stream_session(url, frames, language=language, store=store, timeout_s=180))


def labels(event: dict) -> set[str]:
    return {e["label"] for e in event["entities"]}


def check_final(final: dict, stem: str) -> bool:
    """Asserts the final against the fixture; True when its answer located a product."""
    row = fixture_rows()[stem]
    assert final["language"] == row["language"]
    assert final["intent"]["name"] == row["intent"], final["text"]
    expected = {e["label"] for e in row["entities"]}
    assert labels(final) & expected, (final["text"], final["entities"])
    assert final["nbest"] and final["nbest"][0]["text"] == final["text"]
    assert {"asr", "nlu", "answer", "total"} <= set(final["timings_ms"])
    answer = final["answer"]
    if answer is None:  # the inventory is not built (no `assistant db init`)
        return False
    assert answer["text"] and answer["language"] == row["language"]
    return any(p["aisle"] and p["bay"] is not None for p in answer["products"])


def test_english_then_spanish_in_one_session(e2e_server):
    """Two fixtures with silence between, streamed fast: two finals in order, then end."""
    en, es = fixture_audio("en_01_tide_pods"), fixture_audio("es_02_leche_lala")
    gap = np.zeros(int(1.2 * SR), dtype=np.float32)
    log = replay(e2e_server.url, np.concatenate([gap[:4000], en, gap, es, gap]), speed=0)
    kinds = [e["type"] for e in log.events]
    assert kinds[0] == "ready" and kinds[-1] == "end" and "error" not in kinds, log.events
    finals = [e for e in log.events if e["type"] == "final"]
    assert [f["utterance"] for f in finals] == [0, 1]
    located = [
        check_final(finals[0], "en_01_tide_pods"),
        check_final(finals[1], "es_02_leche_lala"),
    ]
    if finals[0]["answer"] is not None:  # with an inventory, at least one aisle and bay
        assert any(located), [f["answer"]["text"] for f in finals]


def test_partials_grow_without_flicker(e2e_server, e2e_pipeline):
    """A long query streamed in real time (slower on a loaded machine, so that at least ~5
    partial decodes fit): partial text only ever extends, then the final."""
    import time

    audio = fixture_audio("en_06_samsung_tv")
    started = time.perf_counter()
    e2e_pipeline.partial(audio[:SR], "en")
    decode_s = time.perf_counter() - started
    speed = min(1.0, len(audio) / SR / (5 * decode_s))
    log = replay(
        e2e_server.url, np.concatenate([audio, np.zeros(SR, np.float32)]), speed, language="en"
    )
    partials = [e["text"] for e in log.events if e["type"] == "partial"]
    finals = [e for e in log.events if e["type"] == "final"]
    assert len(finals) == 1 and log.events[-1]["type"] == "end"
    assert partials, "no partial text while speaking"
    for earlier, later in zip(partials, partials[1:], strict=False):
        assert later.startswith(earlier)
    check_final(finals[0], "en_06_samsung_tv")
