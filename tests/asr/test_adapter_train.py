"""lab.whisper_adapt.train on a tiny random Whisper and fake encoder outputs (seconds, CPU)."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from ct2_greedy import greedy_ids  # noqa: E402
from tiny_whisper import WORDS, tiny_model, torch_threads, write_tiny_whisper_dir  # noqa: E402

from asr import adapter as ad  # noqa: E402
from lab.whisper_adapt import train  # noqa: E402

SENTENCES = {
    "en": ["where is the tide pods?", "great value milk", "huggies size four"],
    "es": ["¿Dónde está la leche", "pañales huggies talla cuatro"],
}


def fake_data(folder: Path, frames: int = 12, d_model: int = 32) -> Path:
    """train/ and dev/ splits as data.build_split writes them, with random encoder states."""
    rng = random.Random(0)
    for split, n in (("train", 24), ("dev", 8)):
        out = folder / split
        out.mkdir(parents=True)
        rows = []
        for i in range(n):
            lang = rng.choice(["en", "es"])
            text = rng.choice(SENTENCES[lang])
            phrases = [w for w in text.split() if w in ("tide", "huggies", "milk", "leche")]
            rows.append({"id": f"{split}-{i}", "text": text, "language": lang,
                         "phrases": phrases, "shard": "enc_0.npy", "row": i})  # fmt: skip
        states = np.random.default_rng(1).standard_normal((n, frames, d_model))
        np.save(out / "enc_0.npy", states.astype(np.float16))
        (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (out / "config.json").write_text(json.dumps({"fake": True}))
    pools = {"en": ["tide", "milk", "value", "great"], "es": ["leche", "pañales", "talla"]}
    (folder / "phrase_pools.json").write_text(json.dumps(pools))
    return folder


def test_training_runs_and_writes_a_mergeable_adapter(tmp_path: Path) -> None:
    import tokenizers

    data = fake_data(tmp_path / "data")
    tok_dir = write_tiny_whisper_dir(tmp_path / "tok")
    tokenizer = tokenizers.Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    cfg = train.TrainConfig(
        data=str(data), out=str(tmp_path / "adapter"), name="tiny", rank=2, steps=6,
        batch=4, eval_every=3, warmup=1, lr=1e-2, distractors=(1, 2), threads=1,
    )  # fmt: skip
    model = tiny_model()
    with torch_threads(1):
        out = train.train(cfg, model=model, tokenizer=tokenizer, progress=False)
    config = json.loads((out / "adapter.json").read_text())
    assert config["train_config"]["rank"] == 2 and config["history"]["steps_run"] >= 3
    assert len(config["targets"]) == 2 * len(train.DEFAULT_TARGETS)  # 2 decoder layers
    loaded = ad.load_adapter(out)
    d_model = model.config.d_model
    shapes = {(t.variable, t.start, t.stop): (t.a.shape, t.b.shape) for t in loaded.targets}
    assert shapes[("decoder/layer_1/self_attention/linear_0/weight", 32, 64)] == ((2, 32), (32, 2))
    assert shapes[("decoder/layer_0/ffn/linear_0/weight", 0, 64)] == ((2, d_model), (64, 2))


def test_prompts_follow_the_runtime_layout(tmp_path: Path) -> None:
    import tokenizers

    tok_dir = write_tiny_whisper_dir(tmp_path / "tok")
    tokenizer = tokenizers.Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    sp = train.Specials.from_tokenizer(tokenizer)
    row = {"text": "where is the tide pods?", "language": "en"}
    ids, start = train.encode_example(row, ["tide", "milk"], tokenizer, sp)
    assert ids[0] == sp.sot_prev
    assert ids[start - 4 : start] == [sp.sot, sp.languages["en"], sp.transcribe, sp.no_timestamps]
    assert ids[-1] == sp.eot and ids[start] == WORDS.index("where")
    bare, bare_start = train.encode_example(row, None, tokenizer, sp)
    assert bare_start == 4 and bare[bare_start:] == ids[start:]
    cfg = replace(train.TrainConfig(), distractors=(2, 2), drop_right_share=0.0)
    pools = {"en": ["milk", "value", "great", "Tide"]}
    phrases = train.prompt_phrases(
        {"language": "en", "phrases": ["tide"]}, pools, cfg, random.Random(0)
    )
    assert "tide" in phrases and "Tide" not in phrases and len(phrases) == 3


def test_exported_lora_merged_into_ctranslate2_decodes_like_torch(tmp_path: Path) -> None:
    """The export's variable/row mapping is right: torch + LoRA and CTranslate2 + merged adapter
    give the same greedy tokens (float32, peaked random weights: no near-ties)."""
    import torch

    ctranslate2 = pytest.importorskip("ctranslate2")
    from transformers import PreTrainedTokenizerFast

    hf = write_tiny_whisper_dir(tmp_path / "hf")
    PreTrainedTokenizerFast(tokenizer_file=str(hf / "tokenizer.json")).save_pretrained(hf)
    base_ct2 = tmp_path / "ct2"
    ctranslate2.converters.TransformersConverter(str(hf)).convert(str(base_ct2), force=True)
    (base_ct2 / "tokenizer.json").write_bytes((hf / "tokenizer.json").read_bytes())

    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(hf).eval()
    cfg = train.TrainConfig(rank=3, dropout=0.0, targets=train.ALL_TARGETS)
    layers = train.add_lora(model, cfg)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for lora in layers.values():
            lora.b.copy_(torch.randn(lora.b.shape, generator=gen) * 0.3)
    folder = tmp_path / "adapter"
    ad.save_adapter(
        folder, "t", train.lora_targets(layers, model.config.d_model), {}, dtype="float32"
    )
    merged = ad.assemble_adapted(base_ct2, tmp_path / "merged", adapter=folder)

    # The features greedy_ids feeds CTranslate2 (its first row).
    feats = np.random.default_rng(0).standard_normal((2, 16, 3000)).astype(np.float32)[:1]
    # <|startoftranscript|><|en|><|transcribe|><|notimestamps|>: without the last one
    # CTranslate2 applies its timestamp rules.
    prompt, steps = [len(WORDS) + i for i in (1, 2, 4, 5)], 8
    with torch.no_grad(), torch_threads(1):
        enc = model.model.encoder(torch.from_numpy(feats)).last_hidden_state
        ids = list(prompt)
        for _ in range(steps):
            logits = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([ids])).logits
            ids.append(int(logits[0, -1].argmax()))
    out, unmerged = (ids[0] for ids in greedy_ids(merged, base_ct2, prompt=tuple(prompt)))
    eot = len(WORDS)
    torch_ids = ids[
        len(prompt) :
    ]  # CTranslate2 returns the generated tokens only, without end-of-text
    torch_ids = torch_ids[: torch_ids.index(eot)] if eot in torch_ids else torch_ids
    assert len(out) >= 5 and out == torch_ids[: len(out)]
    assert unmerged != out  # the adapter does change the decoder
