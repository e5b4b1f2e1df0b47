"""Continuous-batching beam search (asr.torch_beam) on a tiny random-weight Whisper, CPU.

The must: an utterance's results (token ids, scores) do not depend on what else is in the
batch or on when it joined. Each check compares against the utterance decoded alone, and
the engine against a plain beam search without any cache.
"""

from __future__ import annotations

import numpy as np
import pytest
from tiny_whisper import EOT, SPECIALS, WORDS, tiny_model, torch_threads

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from asr.torch_beam import (  # noqa: E402 - after the importorskip of torch
    BeamOptions,
    ContinuousBeamSearch,
    _advance,
    _Beams,
    beam_search,
)

FRAMES = 24  # any window works as long as every utterance has the same one
# Scores agree to float32 noise: ~1e-4 on these large random weights (the cache-free
# reference differs from the cached search by as much); a padding leak moves some by ~1e-2.
TOL = 1e-3
OPTIONS = BeamOptions(
    beam_size=3,
    num_hypotheses=3,
    max_new_tokens=24,
    eot_id=EOT,
    suppress_ids=(0,),  # <unk>
    suppress_begin_ids=(EOT,),
)
_ID = {token: EOT + i for i, token in enumerate(SPECIALS)}
_TASK = (_ID["<|transcribe|>"], _ID["<|notimestamps|>"])
SHORT = (_ID["<|startoftranscript|>"], _ID["<|en|>"], *_TASK)  # 4 tokens
BIASED = (  # 7 tokens: previous-text marker and two bias words first
    _ID["<|startofprev|>"], WORDS.index("tide"), WORDS.index("pods"),
    _ID["<|startoftranscript|>"], _ID["<|es|>"], *_TASK,
)  # fmt: skip
BIASED_MORE = (_ID["<|startofprev|>"], *range(1, 8), *SHORT)  # 12 tokens


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def model():
    return tiny_model(frames=FRAMES)


@pytest.fixture(scope="module")
def encoder_rows():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(8, FRAMES, 32, generator=generator)


def alone(model, row, prompt, options=OPTIONS):
    return beam_search(model, row[None], np.array([prompt]), options)[0]


def assert_same(got, want):
    assert [r.token_ids for r in got] == [r.token_ids for r in want]
    for a, b in zip(got, want, strict=True):
        assert a.score == pytest.approx(b.score, abs=TOL)
        assert a.logprob_sum == pytest.approx(b.logprob_sum, abs=TOL)


def run_schedule(model, encoder_rows, schedule, options=OPTIONS, search=None):
    """Add utterances at the steps `schedule` names ({step: [(row, prompt)]}) and step until
    all finished. -> ({row: results}, {row: step it finished}, most utterances in a step)."""
    search = search or ContinuousBeamSearch(model, options)
    handles, results, finished_at, widest = {}, {}, {}, 0
    step = 0
    while step <= max(schedule) or search.active:
        for row, prompt in schedule.get(step, []):
            handles[search.add(encoder_rows[row], prompt)] = row
        widest = max(widest, search.active)
        for handle, result in search.step():
            results[handles[handle]] = result
            finished_at[handles[handle]] = step
        step += 1
    return results, finished_at, widest


def reference_search(model, row, prompt, options=OPTIONS):
    """Beam search without a cache: every step runs the decoder over the whole prefix."""
    k, vocab = options.beam_size, model.config.vocab_size
    beams = _Beams(handle=0, tokens=np.zeros((k, 0), dtype=np.int64), valid=len(prompt))
    scores = np.full(k, -np.inf, dtype=np.float32)
    scores[0] = 0.0
    with torch.inference_mode():
        while True:
            ids = np.concatenate([np.tile(prompt, (k, 1)), beams.tokens], axis=1)
            hidden = model.model.decoder(
                input_ids=torch.as_tensor(ids), encoder_hidden_states=row[None].expand(k, -1, -1)
            ).last_hidden_state[:, -1]
            logits = model.proj_out(hidden).float()
            logits[:, list(options.suppress_ids)] = float("-inf")
            if beams.tokens.shape[1] == 0:
                logits[:, list(options.suppress_begin_ids)] = float("-inf")
            total = torch.as_tensor(scores)[:, None] + torch.log_softmax(logits, dim=-1)
            vals, idx = total.view(-1).topk(2 * k)
            vals, idx = vals.numpy(), idx.numpy()
            step = _advance(beams, vals, idx // vocab, idx % vocab, options)
            if step is None:
                return beams.results(options.num_hypotheses)
            next_beam, next_tok, scores = step
            beams.tokens = np.concatenate([beams.tokens[next_beam], next_tok[:, None]], axis=1)


def test_static_search_equals_uncached_reference(model, encoder_rows):
    prompts = np.array([SHORT] * 4)
    got = beam_search(model, encoder_rows[:4], prompts, OPTIONS)
    for i in range(4):
        assert_same(got[i], reference_search(model, encoder_rows[i], SHORT))


def test_outputs_vary_in_length(model, encoder_rows):
    """The tiny model is only a good test if utterances stop after different numbers of
    steps, some at max_new_tokens."""
    lengths = {len(alone(model, encoder_rows[i], SHORT)[0].token_ids) for i in range(8)}
    assert len(lengths) >= 3 and OPTIONS.max_new_tokens in lengths


def test_joining_and_leaving_at_different_steps(model, encoder_rows):
    # Prompts of three lengths: a late joiner's cache is shorter than the running rows'
    # (padded on its left) or longer (the running rows get padded).
    schedule = {
        0: [(0, SHORT), (1, BIASED)],
        2: [(2, SHORT)],
        5: [(3, BIASED_MORE), (4, SHORT)],
        9: [(5, BIASED)],
        13: [(6, SHORT), (7, BIASED_MORE)],
    }
    results, finished_at, widest = run_schedule(model, encoder_rows, schedule)
    assert widest >= 4
    assert len(set(finished_at.values())) >= 4, finished_at  # they left at different steps
    # Someone left while later utterances were still to join or running.
    assert min(finished_at.values()) < 13
    for step_rows in schedule.values():
        for row, prompt in step_rows:
            assert_same(results[row], alone(model, encoder_rows[row], prompt))


def test_join_late_equals_alone_and_batch_order_does_not_matter(model, encoder_rows):
    together = beam_search(model, encoder_rows[:6], np.array([SHORT] * 6), OPTIONS)
    reverse = beam_search(model, encoder_rows[:6].flip(0), np.array([SHORT] * 6), OPTIONS)
    for i in range(6):
        assert_same(together[i], reverse[5 - i])
    # Row 0 joining at step 7 of a running batch decodes as in the static batch.
    results, _, _ = run_schedule(
        model, encoder_rows, {0: [(i, SHORT) for i in range(1, 6)], 7: [(0, SHORT)]}
    )
    assert_same(results[0], together[0])


@pytest.mark.parametrize("leak", ["mask", "positions"])
def test_padding_leak_would_be_caught(model, encoder_rows, monkeypatch, leak):
    """With the padding mask or the per-row positions switched off, late joiners decode
    differently: the parity tests above do look at what padding would change."""
    if leak == "mask":
        monkeypatch.setattr(ContinuousBeamSearch, "_padding_mask", lambda self, valid, past: None)
    else:
        monkeypatch.setattr(
            ContinuousBeamSearch,
            "_positions",
            lambda self, valid: torch.full((len(valid), 1), int(valid.max())),
        )
    schedule = {0: [(0, BIASED_MORE), (1, SHORT)], 4: [(2, SHORT), (3, BIASED)]}
    results, _, _ = run_schedule(model, encoder_rows, schedule)
    monkeypatch.undo()
    differs = 0
    for step_rows in schedule.values():
        for row, prompt in step_rows:
            want = alone(model, encoder_rows[row], prompt)
            got = results[row]
            same_ids = [r.token_ids for r in got] == [r.token_ids for r in want]
            differs += not same_ids or abs(got[0].score - want[0].score) > TOL
    assert differs >= 1


def test_results_sorted_trimmed_and_capped(model, encoder_rows):
    options = BeamOptions(**{**OPTIONS.__dict__, "num_hypotheses": 2, "max_new_tokens": 6})
    for results in beam_search(model, encoder_rows[:5], np.array([SHORT] * 5), options):
        assert 1 <= len(results) <= 2
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
        assert all(len(r.token_ids) <= 6 and EOT not in r.token_ids for r in results)


def test_engine_empties_refills_and_validates(model, encoder_rows):
    search = ContinuousBeamSearch(model, OPTIONS)
    assert search.active == 0 and search.step() == []
    with pytest.raises(ValueError):
        search.add(encoder_rows[0], ())
    with pytest.raises(ValueError):
        search.add(encoder_rows[:2], SHORT)
    handle = search.add(encoder_rows[0], SHORT)
    with pytest.raises(ValueError, match="frames"):
        search.add(encoder_rows[1, :10], SHORT)
    results = {}
    while search.active:
        results.update(search.step())
    assert search.active == 0 and search.running == 0
    assert_same(results[handle], alone(model, encoder_rows[0], SHORT))
    # Empty again: a new window length is accepted, and the engine decodes as new.
    short_rows = torch.randn(2, 10, 32, generator=torch.Generator().manual_seed(3))
    results, _, _ = run_schedule(model, short_rows, {0: [(0, SHORT), (1, BIASED)]}, search=search)
    assert_same(results[1], alone(model, short_rows[1], BIASED))
