"""`assistant transcribe`: the DESIGN.md JSON contract and clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.commands import transcribe
from assistant.errors import UserError

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "audio" / "es_09_lacteos.wav"


@pytest.fixture()
def shared_whisper(monkeypatch, whisper_transcriber):
    """Reuse the session's Whisper instead of loading another (the CLI builds its own)."""
    import asr.transcriber

    def build(config):
        assert config.nbest == 4 and config.language == "auto"
        return whisper_transcriber

    monkeypatch.setattr(asr.transcriber, "Transcriber", build)


def test_json_contract(shared_whisper, capsys):
    assert main(["transcribe", str(FIXTURE), "--nbest", "4", "--json", "--no-rescore"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert list(record) == ["file", "language", "text", "first_pass_text", "nbest"]
    assert record["file"] == str(FIXTURE) and record["language"] == "es"
    assert record["text"] == record["first_pass_text"] == record["nbest"][0]["text"]
    assert len(record["nbest"]) == 4
    scores = [h["score"] for h in record["nbest"]]
    assert scores == sorted(scores, reverse=True)
    for hyp in record["nbest"]:
        assert set(hyp) == {"text", "asr_score", "rescore_score", "score"}
        assert hyp["rescore_score"] is None and hyp["score"] == hyp["asr_score"]


def test_missing_file_is_a_clean_error(capsys):
    assert main(["transcribe", "no/such/file.wav", "--json"]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err


def test_undecodable_file_is_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"this is not audio at all\n" * 20)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert main(["transcribe", str(bad), str(empty)]) == 2
    err = capsys.readouterr().err
    assert "cannot decode" in err and "empty" in err and "Traceback" not in err


def test_unknown_language_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["transcribe", str(FIXTURE), "--language", "fr"])
    assert exit_info.value.code != 0
    assert "invalid choice" in capsys.readouterr().err


def test_missing_model_is_a_clean_error(tmp_path, capsys):
    assert main(["transcribe", str(FIXTURE), "--asr-model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a CTranslate2 Whisper model directory" in err


def test_phrases_file_reading(tmp_path):
    path = tmp_path / "terms.txt"
    path.write_text("# brands\nTide Pods\n\n  Huggies  \nTide Pods\n", encoding="utf-8")
    assert transcribe.read_phrases_file(path) == ("Tide Pods", "Huggies")
    path.write_text("x" * 81, encoding="utf-8")
    with pytest.raises(UserError, match="at most 80 characters"):
        transcribe.read_phrases_file(path)
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(UserError, match="not UTF-8"):
        transcribe.read_phrases_file(path)


def test_phrases_flags(shared_whisper, whisper_transcriber, monkeypatch, tmp_path, capsys):
    """--phrases with a short list prompts every clip with all of it; --no-phrases with
    nothing; by default the catalog's phrases, chosen per clip from a draft decode."""
    path = tmp_path / "menu.txt"
    path.write_text("Tide Pods\nHuggies\n", encoding="utf-8")
    seen = []
    decode = whisper_transcriber.nbest

    def spy(audio, language=None, nbest=None, phrases=None):
        seen.append(phrases)
        return decode(audio, language, nbest, phrases=phrases)

    monkeypatch.setattr(whisper_transcriber, "nbest", spy)
    for flags in (["--phrases", str(path)], ["--no-phrases"], []):
        args = ["transcribe", str(FIXTURE), "--nbest", "4", "--json", "--no-rescore", *flags]
        assert main(args) == 0
        record = json.loads(capsys.readouterr().out.splitlines()[0])
        assert list(record) == ["file", "language", "text", "first_pass_text", "nbest"]
    listed, unbiased, catalog = seen
    assert not listed.needs_draft and listed.select([], "es") == ("Tide Pods", "Huggies")
    assert unbiased is None
    assert catalog.needs_draft and "Huggies" in catalog.phrases["es"]
    with pytest.raises(SystemExit):
        main(["transcribe", str(FIXTURE), "--no-phrases", "--phrases", str(path)])
    assert "not allowed with" in capsys.readouterr().err


def test_adapter_not_assembled_is_a_clean_error(capsys):
    assert main(["transcribe", str(FIXTURE), "--adapter", "no-such-adapter"]) == 2
    err = capsys.readouterr().err
    assert "assistant models assemble" in err and "Traceback" not in err
