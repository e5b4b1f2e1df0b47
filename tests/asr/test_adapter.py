"""asr.adapter: the CTranslate2 writer, the LoRA merge, the sha256 check (numpy only, fast)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ct2_greedy import greedy_ids

from asr import adapter as ad
from asr.models import ModelError, default_model_dir, resolve_model_dir
from asr.torch_convert import read_ct2_variables


def small_model() -> ad.Ct2Model:
    """A hand-made model.bin content: every dtype, a scalar, an alias, fused q/k/v rows."""
    rng = np.random.default_rng(0)
    variables = {
        "decoder/activation": np.array(3, np.int8),
        "decoder/alignment_heads": np.arange(6, dtype=np.int16).reshape(3, 2),
        "decoder/num_heads": np.array(4, np.int32),
        "decoder/embeddings/weight": rng.standard_normal((10, 8)).astype(np.float16),
        "decoder/layer_0/self_attention/linear_0/weight": rng.standard_normal((24, 8)).astype(
            np.float16
        ),
        "decoder/layer_0/ffn/linear_0/weight": rng.standard_normal((16, 8)).astype(np.float16),
        "decoder/layer_0/ffn/layer_norm/gamma": rng.standard_normal(8).astype(np.float32),
    }
    return ad.Ct2Model(
        "WhisperSpec", 3, variables, [("decoder/projection/weight", "decoder/embeddings/weight")]
    )


def test_writer_round_trips(tmp_path: Path) -> None:
    model = small_model()
    ad.write_ct2_model(tmp_path / "model.bin", model)
    spec, read = read_ct2_variables(tmp_path / "model.bin")
    assert spec == "WhisperSpec"
    assert set(read) == set(model.variables) | {"decoder/projection/weight"}
    for name, array in model.variables.items():
        assert read[name].dtype == array.dtype and read[name].shape == array.shape, name
        np.testing.assert_array_equal(read[name], array)
    np.testing.assert_array_equal(
        read["decoder/projection/weight"], model.variables["decoder/embeddings/weight"]
    )
    again = ad.read_ct2_model(tmp_path / "model.bin")
    assert (again.spec, again.revision, again.aliases) == (model.spec, 3, model.aliases)
    ad.write_ct2_model(tmp_path / "again.bin", again)
    assert (tmp_path / "again.bin").read_bytes() == (tmp_path / "model.bin").read_bytes()


def test_base_model_bin_rewrites_byte_identical(tmp_path: Path) -> None:
    base = default_model_dir() / "model.bin"
    if not base.is_file():
        pytest.skip("Whisper base is not assembled (assistant models assemble)")
    ad.write_ct2_model(tmp_path / "model.bin", ad.read_ct2_model(base))
    assert (tmp_path / "model.bin").read_bytes() == base.read_bytes()


def _target(model: ad.Ct2Model, variable: str, start: int, stop: int, rank: int, zero: bool):
    rng = np.random.default_rng(1)
    width = model.variables[variable].shape[1]
    b = (
        np.zeros((stop - start, rank), np.float32)
        if zero
        else rng.standard_normal((stop - start, rank))
    )
    return ad.Target(
        variable,
        start,
        stop,
        rng.standard_normal((rank, width)).astype(np.float32),
        b.astype(np.float32),
    )


def test_zero_adapter_is_the_identity(tmp_path: Path) -> None:
    model = small_model()
    qkv = "decoder/layer_0/self_attention/linear_0/weight"
    zero = ad.Adapter("zero", {}, (_target(model, qkv, 8, 16, 2, zero=True),))
    merged = ad.merge(model, zero)
    ad.write_ct2_model(tmp_path / "a.bin", model)
    ad.write_ct2_model(tmp_path / "b.bin", merged)
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()


def test_merge_adds_the_low_rank_update_to_its_rows_only() -> None:
    model = small_model()
    qkv = "decoder/layer_0/self_attention/linear_0/weight"
    ffn = "decoder/layer_0/ffn/linear_0/weight"
    targets = (_target(model, qkv, 8, 16, 2, zero=False), _target(model, ffn, 0, 16, 3, zero=False))
    merged = ad.merge(model, ad.Adapter("t", {}, targets))
    before, after = (
        model.variables[qkv].astype(np.float32),
        merged.variables[qkv].astype(np.float32),
    )
    np.testing.assert_array_equal(after[:8], before[:8])
    np.testing.assert_array_equal(after[16:], before[16:])
    expected = (before[8:16] + targets[0].b @ targets[0].a).astype(np.float16)
    np.testing.assert_array_equal(merged.variables[qkv][8:16], expected)
    assert merged.variables[qkv].dtype == np.float16
    assert not np.array_equal(merged.variables[ffn], model.variables[ffn])
    np.testing.assert_array_equal(model.variables[qkv], before.astype(np.float16))  # not in place


def test_merge_refuses_a_target_that_does_not_fit() -> None:
    model = small_model()
    qkv = "decoder/layer_0/self_attention/linear_0/weight"
    bad = ad.Target(qkv, 20, 28, np.zeros((2, 8), np.float32), np.zeros((8, 2), np.float32))
    with pytest.raises(ad.AdapterError, match="does not fit"):
        ad.merge(model, ad.Adapter("bad", {}, (bad,)))
    missing = ad.Target("decoder/layer_9/x/weight", 0, 1, np.zeros((1, 8)), np.zeros((1, 1)))
    with pytest.raises(ad.AdapterError, match="has no"):
        ad.merge(model, ad.Adapter("bad", {}, (missing,)))


def test_ct2_target_names() -> None:
    assert ad.ct2_target("model.decoder.layers.3.self_attn.k_proj", 512) == (
        "decoder/layer_3/self_attention/linear_0/weight", 512, 1024,
    )  # fmt: skip
    assert ad.ct2_target("model.decoder.layers.0.encoder_attn.v_proj", 512) == (
        "decoder/layer_0/attention/linear_1/weight", 512, 1024,
    )  # fmt: skip
    assert ad.ct2_target("model.decoder.layers.5.encoder_attn.q_proj", 512)[0].endswith(
        "attention/linear_0/weight"
    )
    assert ad.ct2_target("model.decoder.layers.1.fc2", 512) == (
        "decoder/layer_1/ffn/linear_1/weight", 0, -1,
    )  # fmt: skip
    with pytest.raises(ValueError):
        ad.ct2_target("model.encoder.layers.0.fc1", 512)


def _saved(tmp_path: Path) -> tuple[Path, dict[str, str], ad.Target]:
    model = small_model()
    target = _target(model, "decoder/layer_0/ffn/linear_0/weight", 0, 16, 2, zero=False)
    folder = tmp_path / "adapter"
    sha = ad.save_adapter(folder, "t", [target], {"note": "test"})
    return folder, sha, target


def test_save_load_checks_sha256(tmp_path: Path) -> None:
    folder, sha, target = _saved(tmp_path)
    loaded = ad.load_adapter(folder, expected=sha)
    assert loaded.config["note"] == "test" and len(loaded.targets) == 1
    np.testing.assert_allclose(loaded.targets[0].a, target.a, rtol=1e-3, atol=1e-3)
    assert loaded.targets[0].a.dtype == np.float32
    # The same arrays give the same bytes (a rebuilt adapter keeps its recorded sha256).
    assert ad.save_adapter(tmp_path / "again", "t", [target], {"note": "test"}) == sha


def test_corrupted_adapter_gives_a_clear_error(tmp_path: Path) -> None:
    folder, sha, _ = _saved(tmp_path)
    data = bytearray((folder / "adapter.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "adapter.npz").write_bytes(bytes(data))
    with pytest.raises(ad.AdapterError, match="sha256.*restore it"):
        ad.load_adapter(folder, expected=sha)
    (folder / "adapter.npz").unlink()
    with pytest.raises(ad.AdapterError, match="missing"):
        ad.load_adapter(folder, expected=sha)
    with pytest.raises(ad.AdapterError, match="unknown adapter"):
        ad.load_adapter("no-such-adapter")


@pytest.mark.parametrize("name", sorted(ad.ADAPTER_SHA256))
def test_committed_adapter_matches_its_recorded_sha256(name: str) -> None:
    loaded = ad.load_adapter(name)
    card = json.loads((ad.adapter_dir(name) / "card.json").read_text())
    assert loaded.targets and "rebuild" in card


# ---- a real (tiny) CTranslate2 Whisper: the merged model loads and decodes the same ---------


@pytest.fixture(scope="module")
def tiny_ct2(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    ctranslate2 = pytest.importorskip("ctranslate2")
    from tiny_whisper import write_tiny_whisper_dir
    from transformers import PreTrainedTokenizerFast

    hf = write_tiny_whisper_dir(tmp_path_factory.mktemp("tiny-hf"))
    PreTrainedTokenizerFast(tokenizer_file=str(hf / "tokenizer.json")).save_pretrained(hf)
    out = tmp_path_factory.mktemp("tiny-ct2") / "model"
    ctranslate2.converters.TransformersConverter(str(hf)).convert(str(out), force=True)
    shutil.copyfile(hf / "tokenizer.json", out / "tokenizer.json")
    return out


def test_zero_adapter_assembles_an_identical_loadable_model(tiny_ct2: Path, tmp_path: Path) -> None:
    model = ad.read_ct2_model(tiny_ct2 / "model.bin")
    d_model = model.variables["decoder/embeddings/weight"].shape[1]
    variable, start, stop = ad.ct2_target("model.decoder.layers.1.self_attn.v_proj", d_model)
    zero = ad.Target(
        variable,
        start,
        stop,
        np.ones((2, d_model), np.float32),
        np.zeros((stop - start, 2), np.float32),
    )
    folder = tmp_path / "zero"
    ad.save_adapter(folder, "zero", [zero], {})
    out = ad.assemble_adapted(tiny_ct2, tmp_path / "merged", adapter=folder)
    assert (out / "model.bin").read_bytes() == (tiny_ct2 / "model.bin").read_bytes()
    assert (out / "tokenizer.json").is_file() and (out / ad.ADAPTED_MARKER).is_file()
    merged_ids, base_ids = greedy_ids(out, tiny_ct2)
    assert merged_ids == base_ids
    assert resolve_model_dir(out) == out


def test_a_nonzero_adapter_changes_the_decoder(tiny_ct2: Path, tmp_path: Path) -> None:
    model = ad.read_ct2_model(tiny_ct2 / "model.bin")
    d_model = model.variables["decoder/embeddings/weight"].shape[1]
    rng = np.random.default_rng(2)
    targets = []
    for module in ("self_attn.q_proj", "encoder_attn.k_proj", "fc1"):
        variable, start, stop = ad.ct2_target(f"model.decoder.layers.0.{module}", d_model)
        stop = model.variables[variable].shape[0] if stop < 0 else stop
        a = rng.standard_normal((4, d_model)).astype(np.float32)
        targets.append(
            ad.Target(
                variable,
                start,
                stop,
                a,
                3 * rng.standard_normal((stop - start, 4)).astype(np.float32),
            )
        )
    folder = tmp_path / "big"
    ad.save_adapter(folder, "big", targets, {})
    out = ad.assemble_adapted(tiny_ct2, tmp_path / "merged", adapter=folder)
    assert (out / "model.bin").read_bytes() != (tiny_ct2 / "model.bin").read_bytes()
    merged_ids, base_ids = greedy_ids(out, tiny_ct2)
    assert merged_ids != base_ids


def test_resolve_adapted_model_dir_says_how_to_assemble(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RETAIL_ASSISTANT_HOME", str(tmp_path))
    assert ad.adapted_model_dir("store-v1") == tmp_path / "whisper-base-store-v1"
    with pytest.raises(ModelError, match="assistant models assemble"):
        resolve_model_dir(adapter="store-v1")
