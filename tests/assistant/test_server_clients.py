"""The replay and mic clients against the fake-pipeline server."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import soundfile as sf
from ws_harness import silence_pcm, tone_pcm

from assistant.cli import main


def wav_file(path, seconds_of_speech: float = 1.2):
    pcm = silence_pcm(0.3) + tone_pcm(seconds_of_speech) + silence_pcm(0.8)
    sf.write(path, np.frombuffer(pcm, dtype="<i2"), 16000, subtype="PCM_16")
    return str(path)


def test_replay_prints_json_events_and_exits_zero(fake, tmp_path, capsys):
    wav = wav_file(tmp_path / "a.wav")
    code = main(
        ["replay", wav, wav, "--url", fake.url, "--speed", "0", "--json", "--language", "es"]
    )
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [e["type"] for e in events if e["type"] != "partial"] == ["ready", "final", "end"] * 2
    assert all(e["language"] == "es" for e in events if e["type"] == "final")


def test_replay_exits_nonzero_on_server_error(fake, tmp_path, capsys):
    wav = wav_file(tmp_path / "a.wav")
    assert main(["replay", wav, "--url", fake.url, "--speed", "0", "--store", "x" * 40]) == 1
    assert "bad_message" in capsys.readouterr().out


def test_replay_user_errors(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "missing.wav")]) == 2
    wav = wav_file(tmp_path / "a.wav")
    assert main(["replay", wav, "--url", "ws://127.0.0.1:9/ws"]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "is `assistant serve` running?" in err
    assert "Traceback" not in err


def test_mic_without_portaudio_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails
    assert main(["mic"]) == 2
    assert "pip install" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag",
    [
        ["--max-sessions", "0"],
        ["--port", "70000"],
        ["--endpoint-silence-ms", "0"],
        ["--send-timeout-s", "0"],
        ["--answer-timeout-s", "-1"],
    ],
)
def test_serve_rejects_bad_limits(flag, capsys):
    assert main(["serve", *flag]) == 2
    assert "error" in capsys.readouterr().err


def test_replayed_frames_leave_when_a_microphone_would_send_them(monkeypatch):
    """Each frame goes out once its last sample has been spoken (not at its first), so a
    latency measured from the end of speech counts the client's framing."""
    import asyncio

    from assistant.commands import replay

    waits: list[float] = []

    async def sleep(seconds):
        waits.append(round(seconds, 6))

    monkeypatch.setattr(replay.time, "perf_counter", lambda: 0.0)
    monkeypatch.setattr(replay.asyncio, "sleep", sleep)

    async def frames():
        return [f async for f in replay.file_frames(b"\0\0" * 4000, 16_000, 100, 1.0)]

    got = asyncio.run(frames())
    assert [len(f) for f in got] == [3200, 3200, 1600]  # 100, 100 and 50 ms
    assert waits == [0.1, 0.2, 0.25]
