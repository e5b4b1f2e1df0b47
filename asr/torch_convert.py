"""Convert the CTranslate2 Whisper file (model.bin) into transformers' WhisperForConditionalGeneration.

Why: the PyPI CTranslate2 wheels are CUDA 12 builds and cannot run on a CUDA 13 machine, so
the GPU first pass runs the *same weights* in PyTorch. Nothing is downloaded: the weights are
read from the assembled Whisper base (asr.models) and written as safetensors.

CTranslate2 binary layout (ctranslate2/specs/model_spec.py `_serialize`, binary version 6),
all little-endian:

    uint32 binary_version | string spec_name | uint32 revision | uint32 n_variables
    n_variables x (string name | uint8 rank | uint32 dims[rank] | uint8 dtype | uint32 nbytes | data)
    uint32 n_aliases | n_aliases x (string alias | string target)

where `string` is uint16 length (including a trailing NUL) + UTF-8 bytes + NUL, and dtype is
an index into ("float32", "int8", "int16", "int32", "float16", "bfloat16").

Usage: python -m asr.torch_convert [--ct2-dir DIR] [--out DIR] [--dtype float16|float32]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np

from asr.models import cache_home, default_model_dir

log = logging.getLogger(__name__)

# Files copied beside the converted weights so the folder is self-contained (no faster-whisper
# or CTranslate2 needed where it runs).
_SIDE_FILES = ("tokenizer.json", "config.json")
CT2_CONFIG_NAME = "ct2_config.json"


def default_torch_dir() -> Path:
    """Where the converted model lives: <cache home>/whisper-base-torch."""
    return cache_home() / "whisper-base-torch"


def read_ct2_variables(model_bin: Path) -> tuple[str, dict[str, np.ndarray]]:
    """Parse a CTranslate2 model.bin: (spec name, {variable name: array}), aliases resolved.

    Arrays are views over one in-memory copy of the file (float16 for the Whisper base
    package); bfloat16 variables are widened to float32 since numpy has no bfloat16. The
    parsing itself is asr.adapter's reader (the one that also writes model.bin back).
    """
    from asr.adapter import read_ct2_model

    model = read_ct2_model(model_bin)
    variables = {
        name: (array.astype(np.uint32) << 16).view(np.float32) if name in model.bf16 else array
        for name, array in model.variables.items()
    }
    for alias, target in model.aliases:
        variables[alias] = variables[target]
    return model.spec, variables


def _count_layers(variables: dict[str, np.ndarray], prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    return len({match.group(1) for name in variables if (match := pattern.match(name))})


def hf_config_dict(variables: dict[str, np.ndarray], ct2_config: dict) -> dict:
    """A WhisperConfig dict read off the tensor shapes (so any Whisper size converts)."""
    vocab, d_model = variables["decoder/embeddings/weight"].shape
    ffn = variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]
    suppress = [int(i) for i in ct2_config.get("suppress_ids", [])]
    begin = [int(i) for i in ct2_config.get("suppress_ids_begin", [220, 50257])]
    return {
        "vocab_size": int(vocab),
        "num_mel_bins": int(variables["encoder/conv1/weight"].shape[1]),
        "d_model": int(d_model),
        "encoder_layers": _count_layers(variables, "encoder"),
        "decoder_layers": _count_layers(variables, "decoder"),
        "encoder_attention_heads": int(variables["encoder/num_heads"]),
        "decoder_attention_heads": int(variables["decoder/num_heads"]),
        "encoder_ffn_dim": int(ffn),
        "decoder_ffn_dim": int(ffn),
        "max_source_positions": int(variables["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(variables["decoder/position_encodings/encodings"].shape[0]),
        "activation_function": "gelu",
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "pad_token_id": 50257,
        "bos_token_id": 50257,
        "eos_token_id": 50257,
        "decoder_start_token_id": 50258,
        "suppress_tokens": suppress,
        "begin_suppress_tokens": begin,
    }


def _split_qkv(weight: np.ndarray, bias: np.ndarray, parts: int) -> list[tuple]:
    """CTranslate2 fuses q/k/v (or k/v) projections along the output axis; split them back."""
    return list(zip(np.split(weight, parts, axis=0), np.split(bias, parts, axis=0), strict=True))


def hf_state_dict(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map CTranslate2 WhisperSpec variables to WhisperForConditionalGeneration keys.

    The k projection has no bias in Whisper; CTranslate2 stores a zero bias for it in the
    fused tensor, dropped here.
    """
    out: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str) -> None:
        out[f"{dst}.weight"] = variables[f"{src}/weight"]
        out[f"{dst}.bias"] = variables[f"{src}/bias"]

    def norm(dst: str, src: str) -> None:
        out[f"{dst}.weight"] = variables[f"{src}/gamma"]
        out[f"{dst}.bias"] = variables[f"{src}/beta"]

    def attention(dst: str, src: str, fused: str, names: tuple[str, ...]) -> None:
        pieces = _split_qkv(variables[f"{fused}/weight"], variables[f"{fused}/bias"], len(names))
        for name, (weight, bias) in zip(names, pieces, strict=True):
            out[f"{dst}.{name}.weight"] = weight
            if name != "k_proj":
                out[f"{dst}.{name}.bias"] = bias

    enc, dec = "model.encoder", "model.decoder"
    linear(f"{enc}.conv1", "encoder/conv1")
    linear(f"{enc}.conv2", "encoder/conv2")
    out[f"{enc}.embed_positions.weight"] = variables["encoder/position_encodings/encodings"]
    norm(f"{enc}.layer_norm", "encoder/layer_norm")
    for i in range(_count_layers(variables, "encoder")):
        src, dst = f"encoder/layer_{i}", f"{enc}.layers.{i}"
        sa = f"{src}/self_attention"
        attention(f"{dst}.self_attn", sa, f"{sa}/linear_0", ("q_proj", "k_proj", "v_proj"))
        linear(f"{dst}.self_attn.out_proj", f"{sa}/linear_1")
        norm(f"{dst}.self_attn_layer_norm", f"{sa}/layer_norm")
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")

    out[f"{dec}.embed_tokens.weight"] = variables["decoder/embeddings/weight"]
    out[f"{dec}.embed_positions.weight"] = variables["decoder/position_encodings/encodings"]
    norm(f"{dec}.layer_norm", "decoder/layer_norm")
    for i in range(_count_layers(variables, "decoder")):
        src, dst = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        sa, ca = f"{src}/self_attention", f"{src}/attention"
        attention(f"{dst}.self_attn", sa, f"{sa}/linear_0", ("q_proj", "k_proj", "v_proj"))
        linear(f"{dst}.self_attn.out_proj", f"{sa}/linear_1")
        norm(f"{dst}.self_attn_layer_norm", f"{sa}/layer_norm")
        linear(f"{dst}.encoder_attn.q_proj", f"{ca}/linear_0")
        attention(f"{dst}.encoder_attn", ca, f"{ca}/linear_1", ("k_proj", "v_proj"))
        linear(f"{dst}.encoder_attn.out_proj", f"{ca}/linear_2")
        norm(f"{dst}.encoder_attn_layer_norm", f"{ca}/layer_norm")
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
    return out


def build_model(ct2_dir: Path, dtype: str = "float32"):
    """WhisperForConditionalGeneration holding the CTranslate2 weights (strict key check)."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    ct2_dir = Path(ct2_dir)
    spec, variables = read_ct2_variables(ct2_dir / "model.bin")
    if spec != "WhisperSpec":
        raise ValueError(f"{ct2_dir}/model.bin holds a {spec}, not a WhisperSpec")
    ct2_config = json.loads((ct2_dir / "config.json").read_text())
    config = WhisperConfig(**hf_config_dict(variables, ct2_config))
    model = WhisperForConditionalGeneration(config)
    torch_dtype = getattr(torch, dtype)
    state = {
        key: torch.from_numpy(np.array(value)).to(torch_dtype)
        for key, value in hf_state_dict(variables).items()
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    # proj_out is tied to embed_tokens; anything else missing or extra is a mapping bug.
    missing = [key for key in missing if key != "proj_out.weight"]
    if missing or unexpected:
        raise ValueError(f"weight mapping mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    return model.to(torch_dtype).eval()


def convert(
    ct2_dir: Path | None = None, out_dir: Path | None = None, dtype: str = "float16"
) -> Path:
    """Write `out_dir` = config.json + model.safetensors (+ tokenizer.json, ct2_config.json).

    float16 keeps the file the size of the source (145 MB for base) and is exact: the
    CTranslate2 weights are float16 already. The backend casts to its compute dtype on load.
    """
    ct2_dir = Path(ct2_dir or default_model_dir())
    out_dir = Path(out_dir or default_torch_dir())
    model = build_model(ct2_dir, dtype=dtype)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    for name in _SIDE_FILES:
        if (ct2_dir / name).is_file():
            target = CT2_CONFIG_NAME if name == "config.json" else name
            shutil.copyfile(ct2_dir / name, out_dir / target)
    log.info("converted %s -> %s (%s)", ct2_dir, out_dir, dtype)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ct2-dir", type=Path, default=None, help="assembled CTranslate2 Whisper")
    parser.add_argument("--out", type=Path, default=None, help="output directory")
    parser.add_argument("--dtype", default="float16", choices=("float16", "float32", "bfloat16"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = convert(args.ct2_dir, args.out, args.dtype)
    print(f"PyTorch Whisper written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
