"""asr.contract: the n-best contract every first-pass backend shares, checked without a model
(the backends themselves: test_transcriber.py, test_torch_backend.py, test_torch_continuous.py).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from asr import backends, contract
from asr.contract import MAX_BEAM, MAX_PROMPT_TOKENS, DecodeOptions, DecodingConfig
from asr.nbest import Hypothesis
from asr.transcriber import TranscriberConfig

ASR = Path(__file__).resolve().parents[2] / "asr"


def _other_value(value, name: str):
    """A valid value for a config field other than its default."""
    if name == "language":
        return "es"
    if name == "languages":
        return ("es", "en")
    if name == "device":
        return "cpu"
    if name == "bias_terms":
        return ("Tide Pods", "Huggies")
    if name == "window_s":
        return 10.0
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2
    raise AssertionError(f"no test value for {name}={value!r}: extend _other_value")


def test_every_shared_field_carries_over_to_the_torch_config():
    """backends.torch_config takes every field TranscriberConfig and TorchTranscriberConfig
    share (window_s included), however many they come to hold; model_dir stays behind."""
    torch_backend = pytest.importorskip("asr.torch_backend")
    ct2_names = {f.name for f in dataclasses.fields(TranscriberConfig)}
    shared = [
        f.name
        for f in dataclasses.fields(torch_backend.TorchTranscriberConfig)
        if f.name in ct2_names and f.name not in backends.NOT_CARRIED
    ]
    # Every decoding field of the contract is shared, and device too.
    assert {f.name for f in dataclasses.fields(DecodingConfig)} | {"device"} <= set(shared)
    defaults = TranscriberConfig()
    config = dataclasses.replace(
        defaults, **{name: _other_value(getattr(defaults, name), name) for name in shared}
    )
    got = backends.torch_config(config, torch_model_dir=Path("/converted"))
    for name in shared:
        assert getattr(got, name) == getattr(config, name) != getattr(defaults, name), name
    assert got.model_dir == Path("/converted")
    assert backends.torch_config(None).model_dir is None


def test_both_configs_validate_the_shared_fields_alike():
    torch_backend = pytest.importorskip("asr.torch_backend")
    for cls in (TranscriberConfig, torch_backend.TorchTranscriberConfig):
        with pytest.raises(ValueError, match="unknown language"):
            cls(language="fr")
        with pytest.raises(ValueError, match="languages must be among"):
            cls(languages=("en", "fr"))
        with pytest.raises(ValueError, match="nbest"):
            cls(nbest=MAX_BEAM + 1)
        with pytest.raises(ValueError, match="at least 1"):
            cls(beam_size=0)
        with pytest.raises(ValueError, match="window_s"):
            cls(window_s=0.5)
        assert cls(bias_terms=["a", "b"]).bias_terms == ("a", "b")  # lists become tuples


def test_decode_options_fold_the_keyword_form_and_resolve_against_the_config():
    config = TranscriberConfig(nbest=5, beam_size=8, widen_beam=True)
    plain = DecodeOptions.of(None, None, None).resolved(config)
    assert (plain.nbest, plain.beam_size, plain.widen_beam, plain.bias_terms) == (5, 8, True, None)
    assert plain.first_beam == 10  # at least 2 x nbest
    # nbest=0 keeps meaning "the config's", as `nbest or config.nbest` did
    assert DecodeOptions.of(nbest=0).resolved(config).nbest == 5
    given = DecodeOptions.of(DecodeOptions(nbest=2, beam_size=1), bias_terms=["Tide"])
    assert given == DecodeOptions(nbest=2, beam_size=1, bias_terms=("Tide",))
    assert DecodeOptions.of(given, nbest=3).nbest == 3  # keywords override options
    assert given.resolved(config).first_beam == 4
    greedy = DecodeOptions(beam_size=1, widen_beam=False).resolved(config)
    assert greedy.wider(greedy.first_beam) is None
    # widening doubles up to MAX_BEAM, then stops
    assert [plain.wider(b) for b in (10, 20, MAX_BEAM)] == [20, MAX_BEAM, None]
    for bad in (0, MAX_BEAM + 1):
        with pytest.raises(ValueError, match="nbest must be between"):
            DecodeOptions(nbest=bad)
    with pytest.raises(ValueError, match="beam_size"):
        DecodeOptions(beam_size=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.nbest = 3  # type: ignore[misc]


def test_argument_checks():
    config = TranscriberConfig(languages=("es",), language="es")
    assert contract.check_language(None, config) == "es"
    assert contract.check_language("auto", config) == "auto"
    with pytest.raises(ValueError, match="unknown language 'en': use auto, es"):
        contract.check_language("en", config)
    assert contract.languages_per_audio([1, 2], None) == [None, None]
    with pytest.raises(ValueError, match="languages must have one entry per audio"):
        contract.languages_per_audio([1, 2], ["en"])
    with pytest.raises(ValueError, match="phrases must have one entry per audio"):
        contract.selectors_per_audio([1, 2], [None])


class _Tokenizer:
    """One token per character, like tokenizers.Tokenizer.encode(...).ids."""

    def encode(self, text, add_special_tokens=True):
        assert not add_special_tokens
        return SimpleNamespace(ids=[ord(c) for c in text])


def test_bias_terms_and_prompt():
    assert contract.bias_prompt_text([" Tide Pods ", "", "Huggies"]) == "Tide Pods, Huggies"
    ids = contract.encode_bias(_Tokenizer(), ["ab", "c"])
    assert ids == [ord(c) for c in " ab, c"]
    assert contract.encode_bias(_Tokenizer(), ["  "]) == []
    assert len(contract.encode_bias(_Tokenizer(), ["x" * 500])) == MAX_PROMPT_TOKENS
    assert contract.prompt_ids(9, [1, 2], [7, 8]) == [9, 1, 2, 7, 8]
    assert contract.prompt_ids(9, [], [7, 8]) == [7, 8]


def test_readings_keep_the_best_spelling_of_each():
    hyps = [
        Hypothesis("Tide pods?", asr_score=-0.2),
        Hypothesis("tide pods", asr_score=-0.3),
        Hypothesis("?", asr_score=-0.1),  # nothing to read
        Hypothesis("tied pods", asr_score=-0.4),
    ]
    kept = contract.distinct_readings(hyps, "en")
    assert [h.text for h in kept] == ["Tide pods?", "tied pods"]
    merged = contract.merge_readings(kept, [Hypothesis("Tide Pods", asr_score=-0.05)], "en")
    assert [h.text for h in merged] == ["Tide Pods", "tied pods"]


def test_the_backends_satisfy_the_protocol(tmp_path):
    """The PyTorch backend and its continuous decoder (the CTranslate2 one: below, with the
    session's Whisper) answer the `Transcriber` protocol."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_whisper import write_tiny_whisper_dir

    from asr.torch_backend import TorchTranscriber, TorchTranscriberConfig
    from asr.torch_continuous import ContinuousDecoder

    folder = write_tiny_whisper_dir(tmp_path)
    config = TorchTranscriberConfig(model_dir=folder, device="cpu", max_new_tokens=8)
    pt = TorchTranscriber(config)
    decoder = ContinuousDecoder(pt)
    clip = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    greedy_view = copy.copy(pt)  # what the pipeline's partials view does
    greedy_view.config = dataclasses.replace(config, beam_size=1, widen_beam=False)
    greedy = DecodeOptions(nbest=1, beam_size=1, widen_beam=False)
    try:
        for backend in (pt, decoder):
            assert isinstance(backend, contract.Transcriber)
            # The per-call options and the keyword form are one thing.
            got = backend.nbest(clip, "en", options=DecodeOptions(nbest=2, bias_terms=()))
            want = backend.nbest(clip, "en", nbest=2, bias_terms=())
            assert [h.token_ids for h in got.hypotheses] == [h.token_ids for h in want.hypotheses]
            # Per-call beam options decode as a copy with that config does.
            fast = backend.nbest_batch([clip], ["en"], options=greedy)[0]
            view = greedy_view.nbest(clip, "en", nbest=1)
            assert fast.extra["beam"] == view.extra["beam"] == 2
            assert [h.token_ids for h in fast.hypotheses] == [h.token_ids for h in view.hypotheses]
    finally:
        decoder.close()
    assert not isinstance(object(), contract.Transcriber)


def test_the_ctranslate2_backend_satisfies_the_protocol(whisper_transcriber):
    assert isinstance(whisper_transcriber, contract.Transcriber)


def test_asr_reads_the_environment_in_one_module():
    """asr.models is the one place asr reads environment variables (ENV_HOME, ENV_ASR_MODEL)."""
    readers = sorted(
        path.name
        for path in ASR.rglob("*.py")
        if re.search(r"\bos\.environ\b|\bgetenv\(", path.read_text(encoding="utf-8"))
    )
    assert readers == ["models.py"]
