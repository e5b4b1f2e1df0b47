"""A tiny random-weight Whisper for beam-search tests and benchmark dry runs on the CPU
(milliseconds a step). In the lab so that a benchmark (lab.bench.gpu_suite --dry-run) can
build one too; tests import it through tests/tiny_whisper.py.

Weights are drawn with a large standard deviation so that next-token distributions are
peaked (no near-ties for float noise to flip), and end-of-text is made to compete with a
frequent word so that utterances finish after different numbers of steps (some run to
max_new_tokens): exactly what continuous batching has to get right.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WORDS = [
    "<unk>", "tide", "Tide", "tide.", "pods", "Pods", "pods?", "milk", "Milk", "leche",
    "Leche,", "aisle", "seven", "siete", "where", "Where", "dónde", "¿Dónde", "is", "está",
    "the", "la", "great", "value", "huggies", "pañales", "size", "talla", "four", "cuatro",
]  # fmt: skip
SPECIALS = [
    "<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|es|>", "<|transcribe|>",
    "<|notimestamps|>", "<|startofprev|>",
]  # fmt: skip
EOT = len(WORDS)  # Whisper's layout: text tokens, then end-of-text, then the specials
VOCAB = len(WORDS) + len(SPECIALS)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch intra-op threads set to n for a while. Tiny models want 1: thread hand-offs
    cost more than they save, and ~100x more when another process holds a core."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def tiny_model(seed: int = 0, frames: int = 1500, eot_like: str = "value", max_positions: int = 96):
    """WhisperForConditionalGeneration, 1+2 layers, d_model 32, eval mode, float32, CPU.

    max_positions: decoder positions (prompt + generated tokens); 96 for the tests, Whisper's
    448 where long catalog prompts come in (the pipeline's phrase biasing).

    The end-of-text row of the tied embedding becomes the row of `eot_like` (a word these
    weights like to generate) plus half its own: end-of-text then competes with that word,
    and outputs stop after varied numbers of steps.
    """
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(seed)
    config = WhisperConfig(
        vocab_size=VOCAB,
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=16,
        max_source_positions=frames,
        max_target_positions=max_positions,
        pad_token_id=EOT,
        bos_token_id=EOT + 1,
        eos_token_id=EOT,
        decoder_start_token_id=EOT + 1,
        init_std=1.0,
    )
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        rows = model.model.decoder.embed_tokens.weight
        rows[EOT] = rows[WORDS.index(eot_like)] + 0.5 * rows[EOT]
    return model


def write_tiny_whisper_dir(folder: Path, seed: int = 0, max_positions: int = 96) -> Path:
    """A converted-model folder as asr.torch_convert writes it, for TorchTranscriber.

    End-of-text resembles "where", the token that random features favour, so transcripts
    are a few words long and often differ only in case or punctuation ("Pods" / "pods?"):
    the widen-beam retries get exercised.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder.mkdir(parents=True, exist_ok=True)
    tiny_model(seed, eot_like="where", max_positions=max_positions).save_pretrained(folder)
    vocab = {word: i for i, word in enumerate(WORDS + SPECIALS)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.add_special_tokens(SPECIALS)
    tokenizer.save(str(folder / "tokenizer.json"))
    ct2 = {"suppress_ids": [0], "suppress_ids_begin": [EOT]}  # never <unk>
    (folder / "ct2_config.json").write_text(json.dumps(ct2))
    return folder
