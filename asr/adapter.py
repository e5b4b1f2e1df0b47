"""Low-rank adapters for Whisper's decoder, merged into a CTranslate2 model.bin with numpy only.

An adapter is a directory (committed under asr/data/adapters/NAME/):

    adapter.json   {"format": 1, "targets": [{"variable", "rows": [start, stop], "a", "b"}], ...}
    adapter.npz    for each target: "a" (rank, in_features), "b" (rows, rank), float16 or 32,
                   the LoRA scale (alpha / rank) already folded into b
    card.json      data, voices, steps, figures and the command that rebuilds it

Merging adds `b @ a` to rows [start, stop) of the CTranslate2 variable (CTranslate2 fuses the
q/k/v projections of self-attention and k/v of cross-attention along the output axis, so a
q_proj update is a row block of `self_attention/linear_0/weight`). The merged model is a second
directory beside the base one; the base stays untouched and is the default.

The CTranslate2 file layout (binary version 6) is in asr/torch_convert.py's docstring; the
reader and writer here keep the variables' order, dtypes, spec revision and aliases so that a
file read and written back unchanged is byte-identical.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asr.models import ModelError, cache_home, sha256_file

log = logging.getLogger(__name__)

ADAPTERS_DIR = Path(__file__).resolve().parent / "data" / "adapters"
DEFAULT_ADAPTER = "store-v1"
# sha256 of each committed adapter's files: a changed or truncated file is refused.
ADAPTER_SHA256: dict[str, dict[str, str]] = {
    "store-v1": {
        "adapter.json": "1ef99f2cf03883a836f991be97ddf4b26822665ad86f27636a13c2ecac4f20c3",
        "adapter.npz": "abb7014e196ed8494759d80b2c5ee37c26f5eb50f2cbbba55a7d8b02562586ff",
    },
}
ADAPTED_MARKER = ".adapted"
CT2_BINARY_VERSION = 6
CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json")


class AdapterError(ModelError):
    """The adapter is missing, corrupt or does not fit the model; the message says what to do."""


# ---- CTranslate2 model.bin: read and write ---------------------------------------------


@dataclass
class Ct2Model:
    """A parsed model.bin: variables in file order (numpy arrays in their stored dtype; bfloat16
    kept as raw uint16 with its name in `bf16`), and the aliases (alias -> target name)."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: list[tuple[str, str]] = field(default_factory=list)
    bf16: set[str] = field(default_factory=set)


def read_ct2_model(model_bin: str | Path) -> Ct2Model:
    """Parse a CTranslate2 model.bin (binary version 6) without resolving aliases."""
    data = Path(model_bin).read_bytes()
    offset = 0

    def take(fmt: str):
        nonlocal offset
        (value,) = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return value

    def take_string() -> str:
        nonlocal offset
        length = take("H")
        text = data[offset : offset + length - 1].decode("utf-8")
        offset += length
        return text

    version = take("I")
    if version != CT2_BINARY_VERSION:
        raise ModelError(f"{model_bin}: CTranslate2 binary version {version}, expected 6")
    spec = take_string()
    revision = take("I")
    variables: dict[str, np.ndarray] = {}
    bf16: set[str] = set()
    for _ in range(take("I")):
        name = take_string()
        shape = tuple(take("I") for _ in range(take("B")))
        dtype = CT2_DTYPES[take("B")]
        nbytes = take("I")
        raw = data[offset : offset + nbytes]
        offset += nbytes
        if dtype == "bfloat16":
            bf16.add(name)
            dtype = "uint16"
        variables[name] = np.frombuffer(raw, dtype).reshape(shape)
    aliases = [(take_string(), take_string()) for _ in range(take("I"))]
    return Ct2Model(spec, revision, variables, aliases, bf16)


def _string(text: str) -> bytes:
    raw = text.encode("utf-8") + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2_model(path: str | Path, model: Ct2Model) -> None:
    """Write `model` as a CTranslate2 model.bin (binary version 6), the layout read_ct2_model
    and asr.torch_convert.read_ct2_variables parse."""
    with open(path, "wb") as out:
        out.write(struct.pack("<I", CT2_BINARY_VERSION))
        out.write(_string(model.spec))
        out.write(struct.pack("<II", model.revision, len(model.variables)))
        for name, array in model.variables.items():
            array = np.asarray(array)  # not ascontiguousarray: it makes scalars 1-d
            dtype = "bfloat16" if name in model.bf16 else array.dtype.name
            if dtype not in CT2_DTYPES:
                raise ValueError(f"{name}: dtype {dtype} has no CTranslate2 code")
            out.write(_string(name))
            out.write(struct.pack("<B", array.ndim))
            out.write(struct.pack(f"<{array.ndim}I", *array.shape))
            out.write(struct.pack("<BI", CT2_DTYPES.index(dtype), array.nbytes))
            out.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes(order="C"))
        out.write(struct.pack("<I", len(model.aliases)))
        for alias, target in model.aliases:
            out.write(_string(alias) + _string(target))


# ---- adapters -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One low-rank update: rows [start, stop) of `variable` += b @ a."""

    variable: str
    start: int
    stop: int
    a: np.ndarray  # (rank, in_features), float32
    b: np.ndarray  # (stop - start, rank), float32, scale folded in


@dataclass(frozen=True)
class Adapter:
    name: str
    config: dict
    targets: tuple[Target, ...]


def ct2_target(module: str, d_model: int) -> tuple[str, int, int]:
    """transformers' module name of a decoder linear -> (CTranslate2 variable, row start, stop).

    "model.decoder.layers.3.self_attn.k_proj" -> ("decoder/layer_3/self_attention/linear_0/weight",
    d_model, 2 * d_model). fc1's rows are d_ffn; callers give the stop from the weight's shape
    where it is not d_model (stop -1 here means "all rows").
    """
    match = re.fullmatch(r"(?:model\.)?decoder\.layers\.(\d+)\.(\w+)(?:\.(\w+))?", module)
    if not match:
        raise ValueError(f"not a decoder linear: {module}")
    layer, block, proj = match.groups()
    base = f"decoder/layer_{layer}"
    table = {
        ("self_attn", "q_proj"): ("self_attention/linear_0", 0),
        ("self_attn", "k_proj"): ("self_attention/linear_0", 1),
        ("self_attn", "v_proj"): ("self_attention/linear_0", 2),
        ("self_attn", "out_proj"): ("self_attention/linear_1", 0),
        ("encoder_attn", "q_proj"): ("attention/linear_0", 0),
        ("encoder_attn", "k_proj"): ("attention/linear_1", 0),
        ("encoder_attn", "v_proj"): ("attention/linear_1", 1),
        ("encoder_attn", "out_proj"): ("attention/linear_2", 0),
        ("fc1", None): ("ffn/linear_0", -1),
        ("fc2", None): ("ffn/linear_1", -1),
    }
    if (block, proj) not in table:
        raise ValueError(f"no CTranslate2 variable for {module}")
    name, block_index = table[(block, proj)]
    if block_index < 0:
        return f"{base}/{name}/weight", 0, -1
    return f"{base}/{name}/weight", block_index * d_model, (block_index + 1) * d_model


def adapter_dir(name: str = DEFAULT_ADAPTER) -> Path:
    return ADAPTERS_DIR / name


def verify_adapter(folder: Path, expected: dict[str, str] | None) -> None:
    """sha256 of adapter.json and adapter.npz against `expected` (None: not recorded, skip)."""
    for filename in ("adapter.json", "adapter.npz"):
        path = folder / filename
        if not path.is_file():
            raise AdapterError(
                f"{path} is missing; restore it from git (git checkout -- {path}) or rebuild the "
                "adapter (see its card.json)"
            )
        if expected is None:
            continue
        digest = sha256_file(path)
        if digest != expected.get(filename):
            raise AdapterError(
                f"{path} does not match its recorded sha256 (got {digest[:12]}..., expected "
                f"{str(expected.get(filename))[:12]}...): the file is corrupt or was changed "
                "without updating asr.adapter.ADAPTER_SHA256; restore it: git checkout -- "
                f"{folder}"
            )


def load_adapter(
    name_or_dir: str | Path = DEFAULT_ADAPTER, expected: dict[str, str] | None = None
) -> Adapter:
    """Load a committed adapter by name (sha256-checked against ADAPTER_SHA256) or any adapter
    folder (checked against `expected` when given)."""
    if isinstance(name_or_dir, str) and name_or_dir in ADAPTER_SHA256:
        folder, expected = adapter_dir(name_or_dir), expected or ADAPTER_SHA256[name_or_dir]
    else:
        folder = Path(name_or_dir)
        if not folder.is_dir():
            raise AdapterError(
                f"unknown adapter {name_or_dir!r}: use one of {', '.join(ADAPTER_SHA256)} or a "
                "folder holding adapter.json and adapter.npz"
            )
    verify_adapter(folder, expected)
    config = json.loads((folder / "adapter.json").read_text())
    if config.get("format") != 1:
        raise AdapterError(f"{folder}/adapter.json: unknown format {config.get('format')}")
    try:
        with np.load(folder / "adapter.npz", allow_pickle=False) as arrays:
            targets = tuple(
                Target(
                    t["variable"],
                    int(t["rows"][0]),
                    int(t["rows"][1]),
                    np.asarray(arrays[t["a"]], np.float32),
                    np.asarray(arrays[t["b"]], np.float32),
                )
                for t in config["targets"]
            )
    except (KeyError, ValueError, OSError) as error:
        raise AdapterError(f"{folder}/adapter.npz is unreadable or incomplete: {error}") from error
    return Adapter(config.get("name", folder.name), config, targets)


def save_adapter(
    folder: Path, name: str, targets: list[Target], extra: dict, dtype: str = "float16"
) -> dict[str, str]:
    """Write adapter.json + adapter.npz (deterministic bytes); returns their sha256.

    float16 halves the file; the merge computes in float32 and the base weights are float16."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays, listed = {}, []
    for i, target in enumerate(targets):
        arrays[f"t{i}_a"] = np.asarray(target.a, dtype)
        arrays[f"t{i}_b"] = np.asarray(target.b, dtype)
        listed.append(
            {"variable": target.variable, "rows": [target.start, target.stop],
             "a": f"t{i}_a", "b": f"t{i}_b"}
        )  # fmt: skip
    config = {"format": 1, "name": name, **extra, "targets": listed}
    (folder / "adapter.json").write_text(json.dumps(config, indent=1, ensure_ascii=False) + "\n")
    _write_npz(folder / "adapter.npz", arrays)
    return {f: sha256_file(folder / f) for f in ("adapter.json", "adapter.npz")}


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez with a fixed zip timestamp, so that the same arrays give the same bytes."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def merge(model: Ct2Model, adapter: Adapter) -> Ct2Model:
    """A copy of `model` with every target's rows += b @ a (computed in float32, stored back in
    the variable's dtype). Raises AdapterError when a target does not fit the model."""
    variables = dict(model.variables)
    for target in adapter.targets:
        if target.variable not in variables or target.variable in model.bf16:
            raise AdapterError(f"adapter {adapter.name}: the model has no {target.variable}")
        weight = variables[target.variable]
        stop = weight.shape[0] if target.stop < 0 else target.stop
        delta = target.b @ target.a
        fits = weight.ndim == 2 and 0 <= target.start < stop <= weight.shape[0]
        if not fits or delta.shape != (stop - target.start, weight.shape[1]):
            raise AdapterError(
                f"adapter {adapter.name}: update of shape {delta.shape} does not fit "
                f"{target.variable} {weight.shape} rows {target.start}:{stop}"
            )
        merged = np.array(weight, copy=True)
        block = merged[target.start : stop].astype(np.float32) + delta
        merged[target.start : stop] = block.astype(weight.dtype)
        variables[target.variable] = merged
    return Ct2Model(model.spec, model.revision, variables, list(model.aliases), set(model.bf16))


# ---- the adapted model directory ---------------------------------------------------------


def adapted_model_dir(adapter: str = DEFAULT_ADAPTER) -> Path:
    """Where `assistant models assemble` writes base + adapter: <cache home>/whisper-base-NAME."""
    return cache_home() / f"whisper-base-{adapter}"


def _marker_text(base_dir: Path, adapter_sha: dict[str, str], model_bin: Path) -> str:
    stat = model_bin.stat()
    return json.dumps(
        {
            "base_model_bin": str(base_dir / "model.bin"),
            "adapter": adapter_sha,
            "model_bin_size": stat.st_size,
            "model_bin_mtime_ns": stat.st_mtime_ns,
        },
        sort_keys=True,
    )


def is_adapted(out_dir: Path, adapter: str = DEFAULT_ADAPTER) -> bool:
    """True when `out_dir` holds a merged model of this adapter's recorded files (cheap check)."""
    marker, model_bin = out_dir / ADAPTED_MARKER, out_dir / "model.bin"
    if not marker.is_file() or not model_bin.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    stat = model_bin.stat()
    return (
        recorded.get("adapter") == ADAPTER_SHA256.get(adapter)
        and recorded.get("model_bin_size") == stat.st_size
        and recorded.get("model_bin_mtime_ns") == stat.st_mtime_ns
    )


def assemble_adapted(
    base_dir: Path,
    out_dir: Path | None = None,
    adapter: str | Path = DEFAULT_ADAPTER,
    force: bool = False,
    check_load: bool = True,
) -> Path:
    """Write `out_dir` = the CTranslate2 model in `base_dir` with `adapter` merged into it, plus
    its tokenizer and config files; idempotent. `check_load` loads the result with
    ctranslate2.models.Whisper before it replaces anything."""
    name = Path(adapter).name
    out_dir = Path(out_dir or adapted_model_dir(name))
    if not force and isinstance(adapter, str) and is_adapted(out_dir, adapter):
        log.info("adapted Whisper (%s) already assembled in %s", name, out_dir)
        return out_dir
    loaded = load_adapter(adapter)
    base = read_ct2_model(base_dir / "model.bin")
    merged = merge(base, loaded)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".assemble-") as tmp:
        tmp_dir = Path(tmp)
        write_ct2_model(tmp_dir / "model.bin", merged)
        for side in _SIDE_FILES:
            if (base_dir / side).is_file():
                shutil.copyfile(base_dir / side, tmp_dir / side)
        if check_load:
            _check_loads(tmp_dir)
        for item in tmp_dir.iterdir():
            os.replace(item, out_dir / item.name)
    sha = (
        ADAPTER_SHA256.get(adapter)
        if isinstance(adapter, str) and adapter in ADAPTER_SHA256
        else {f: sha256_file(Path(adapter) / f) for f in ("adapter.json", "adapter.npz")}
    )
    (out_dir / ADAPTED_MARKER).write_text(_marker_text(base_dir, sha, out_dir / "model.bin"))
    log.info("merged adapter %s into %s -> %s", name, base_dir, out_dir)
    return out_dir


def _check_loads(model_dir: Path) -> None:
    try:
        import ctranslate2

        ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="int8")
    except Exception as error:  # noqa: BLE001 - any load failure means a bad merge
        raise AdapterError(f"the merged model in {model_dir} does not load: {error}") from error


def model_sha256(model_dir: Path) -> str:
    return sha256_file(Path(model_dir) / "model.bin")
