"""Regressions of issue #19 in the command line: no traceback for a user's mistake (bytes that
are not UTF-8, a database URL that does not parse), long audio decoded whole, one missing file
not costing the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest


def test_unparseable_database_url_fails_serve_at_start():
    env = {**os.environ, "RETAIL_ASSISTANT_DB": "not a url"}
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "is not a database URL" in done.stderr and "Traceback" not in done.stderr


# -- 10: the CLI ----------------------------------------------------------------------------


def _cli(*args: str | bytes, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def test_cli_non_utf8_input_and_bad_db_url_are_messages_not_tracebacks():
    done = _cli(b"ask", b"where is tide \xff\xfe")
    assert done.returncode == 2 and b"not valid UTF-8" in done.stderr
    assert b"Traceback" not in done.stderr
    done = _cli("ask", "--db", "not a url", "where is tide")
    assert done.returncode == 3 and b"not a database URL" in done.stderr
    assert b"Traceback" not in done.stderr
    done = _cli("parse", "--json", stdin=b"where is tide\nbad \xff\xfe line\nwhere is milk\n")
    assert b"Traceback" not in done.stderr and b"line 2" in done.stderr
    assert done.returncode == 1
    texts = [json.loads(line)["text"] for line in done.stdout.decode().splitlines()]
    assert texts == ["where is tide", "where is milk"]


# -- 11, 12: transcribe ---------------------------------------------------------------------


class LengthTranscriber:
    """Says how long each piece of audio it was given is (seconds, one decimal)."""

    def __init__(self) -> None:
        self.lengths: list[float] = []

    def nbest(self, audio, language=None, nbest=5, phrases=None):
        from asr.nbest import Hypothesis, NBest

        seconds = round(len(audio) / 16000, 1)
        self.lengths.append(seconds)
        hyps = tuple(
            Hypothesis(f"{seconds} s reading {k}", asr_score=-k - 1.0, score=-k - 1.0)
            for k in range(2)
        )
        return NBest(hyps, "en", 1.0, len(audio) / 16000)


def _wav(path: Path, seconds: float, audio=None) -> Path:
    """A 16 kHz PCM16 WAV: `seconds` of silence, or `audio` (float32) when given."""
    from asr.audio import float32_to_pcm16

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(
            bytes(2 * int(seconds * 16000)) if audio is None else float32_to_pcm16(audio)
        )
    return path


def test_transcribe_decodes_long_files_whole_and_goes_on_past_missing_ones(
    tmp_path, monkeypatch, capsys
):
    import asr.backends
    from assistant.cli import main

    fake = LengthTranscriber()
    monkeypatch.setattr(asr.backends, "load_transcriber", lambda *a, **k: fake)
    long, short = _wav(tmp_path / "long.wav", 65.0), _wav(tmp_path / "short.wav", 2.0)
    code = main(
        ["transcribe", str(long), str(tmp_path / "missing.wav"), str(short), "--json",
         "--no-rescore", "--no-phrases", "--whole-file"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 2 and "missing.wav" in err
    records = [json.loads(line) for line in out.splitlines()]
    assert [Path(r["file"]).name for r in records] == ["long.wav", "short.wav"]
    assert fake.lengths[:3] == [21.7, 21.7, 21.7] and sum(fake.lengths[:3]) == pytest.approx(
        65.0, abs=0.2
    )
    joined = records[0]
    assert {"file", "language", "text", "first_pass_text", "nbest"} <= set(joined)
    assert joined["text"] == " ".join(["21.7 s reading 0"] * 3)
    assert [s["start_s"] for s in joined["segments"]] == pytest.approx([0, 21.67, 43.33], abs=0.01)
    assert joined["nbest"][0]["text"] == joined["text"] and len(joined["nbest"]) == 2
    assert "segments" not in records[1]


def test_transcribe_decodes_the_utterances_a_stream_would(tmp_path, monkeypatch, capsys):
    """By default a file is cut as a live session cuts it: two queries 1.5 s apart are two
    utterances (joined, with "segments"), exactly the samples asr.streaming.segment gives;
    a silent file has none (empty readings, a note on stderr, exit 0)."""
    import numpy as np

    import asr.backends
    from asr.audio import decode_audio
    from asr.streaming import StreamingConfig
    from assistant.cli import main
    from assistant.commands.transcribe import pieces

    audio = Path(__file__).resolve().parent.parent / "fixtures" / "audio"
    gap = np.zeros(24_000, np.float32)
    clips = [decode_audio(audio / "en_01_tide_pods.wav"), decode_audio(audio / "es_09_lacteos.wav")]
    two = _wav(tmp_path / "two.wav", 0, np.concatenate([gap, clips[0], gap, clips[1], gap]))
    quiet = _wav(tmp_path / "quiet.wav", 3.0)
    fake = LengthTranscriber()
    monkeypatch.setattr(asr.backends, "load_transcriber", lambda *a, **k: fake)
    args = ["transcribe", str(two), str(quiet), "--json", "--no-rescore", "--no-phrases"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    joined, silent = [json.loads(line) for line in out.splitlines()]
    expected = pieces(decode_audio(two), StreamingConfig())
    assert len(expected) == 2 and fake.lengths == [round(len(p[0]) / 16000, 1) for p in expected]
    assert [(s["start_s"], s["end_s"]) for s in joined["segments"]] == [p[1:] for p in expected]
    assert joined["segments"][0]["end_s"] < joined["segments"][1]["start_s"]
    assert {"file", "language", "text", "first_pass_text", "nbest"} <= set(joined)
    assert silent["text"] == "" and silent["nbest"] == [] and silent["segments"] == []
    assert silent["language"] is None and "no speech found" in err and "quiet.wav" in err
    # the old behaviour on request: the whole file, one piece
    assert (
        main(["transcribe", str(two), "--json", "--no-rescore", "--no-phrases", "--whole-file"])
        == 0
    )
    assert "segments" not in json.loads(capsys.readouterr().out)
    assert fake.lengths[-1] == round(len(decode_audio(two)) / 16000, 1)
