"""Beam search with n-best output over a transformers Whisper decoder, with continuous batching.

`ContinuousBeamSearch` keeps many utterances x `beam_size` beams in one batch of rows
(utterance-major: the rows of an utterance are contiguous). Utterances join at step
boundaries (`add`, then the next `step` prefills their prompts) and leave as soon as they
finish (`step` returns their results at once), so a short utterance never waits for a long
one. `beam_search` is the static form: add all, step until empty.

One device->host copy per step carries the top 2K candidates of every utterance; the
bookkeeping (finished hypotheses, stopping: `_advance`) runs in numpy on those few numbers,
so the GPU never waits on per-beam Python work.

Rows of different utterances hold self-attention caches of different lengths (an utterance
that joined late has fed fewer tokens, prompts may differ in length). The cache is one tensor
per layer, left-padded with zeros to the longest row; an attention mask [rows, past + 1]
hides the padding and per-row positions give each token its own, so a row decodes exactly
as it would alone. Whisper encoder outputs always have 1500 frames (30 s), so the
cross-attention caches of all utterances concatenate along the batch; they are kept once
per utterance, not per beam (asr.torch_decoder runs the steps; a new utterance's prompt goes
through transformers' WhisperDecoder, which also fills its cross-attention cache).

Scores follow CTranslate2's Whisper `generate(..., return_scores=True)`: the cumulative
log-probability of the generated tokens *including* the end-of-text token, divided by
(number of generated tokens, end-of-text *not* counted) ** length_penalty (checked against
CTranslate2 4.8 on CPU: same scores to ~1e-3).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from asr.torch_decoder import BeamKV, decoder_step, kv_from_cache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeamOptions:
    """Decoding options shared by every utterance of a batch.

    beam_size: beams kept per utterance.
    num_hypotheses: finished hypotheses returned per utterance (<= beam_size is typical).
    max_new_tokens: hard cap on generated tokens (a 30 s window holds at most ~224 in practice).
    length_penalty: exponent of the length normalization (1.0 = average log-probability).
    suppress_ids: token ids never generated (Whisper's non-speech symbols).
    suppress_begin_ids: token ids forbidden as the first token (blank, end-of-text).
    eot_id: end-of-text token id.
    """

    beam_size: int = 8
    num_hypotheses: int = 8
    max_new_tokens: int = 96
    length_penalty: float = 1.0
    suppress_ids: tuple[int, ...] = ()
    suppress_begin_ids: tuple[int, ...] = ()
    eot_id: int = 50257


@dataclass(frozen=True)
class BeamResult:
    """One finished hypothesis: generated token ids (no prompt, no end-of-text), the summed
    log-probability of those tokens plus end-of-text (nats), and the normalized score."""

    token_ids: tuple[int, ...]
    logprob_sum: float
    score: float


def _normalize(logprob_sum: float, length: int, penalty: float) -> float:
    return logprob_sum / (max(length, 1) ** penalty)


@dataclass
class _Beams:
    """Search state of one utterance in the running batch.

    tokens: [K, t] generated ids per beam (t = steps taken so far).
    valid: self-attention cache entries that are real for this utterance's rows (prompt +
        tokens fed so far); the rest of the cache row, on the left, is padding.
    """

    handle: int
    tokens: np.ndarray
    valid: int
    finished: list[BeamResult] = field(default_factory=list)
    top_finished: bool = False  # some step's best candidate was end-of-text (sticky)

    def results(self, n_hyp: int) -> list[BeamResult]:
        return sorted(self.finished, key=lambda r: r.score, reverse=True)[:n_hyp]


@dataclass
class _Joiner:
    """An utterance added since the last step: prefilled (prompt forward) at the next one."""

    handle: int
    encoder_out: object  # torch.Tensor [frames, d_model]
    prompt: tuple[int, ...]


def _advance(
    beams: _Beams, vals: np.ndarray, parents: np.ndarray, toks: np.ndarray, options: BeamOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One step of one utterance's bookkeeping, from its top 2K candidates (best first).

    vals: [2K] cumulative log-probabilities; parents: [2K] beam each candidate extends;
    toks: [2K] its token. Records finished hypotheses in `beams` and returns the K beams to
    keep as (parent beam, token, score) arrays of shape [K] (unfilled slots: score -inf), or
    None when the utterance is done.
    """
    k, eot = options.beam_size, options.eot_id
    last = beams.tokens.shape[1] >= options.max_new_tokens - 1
    next_beam = np.zeros(k, dtype=np.int64)
    next_tok = np.zeros(k, dtype=np.int64)
    next_score = np.full(k, -np.inf, dtype=np.float32)
    out = 0
    for rank in range(len(vals)):
        value, beam, tok = float(vals[rank]), parents[rank], toks[rank]
        if value == float("-inf"):
            break
        if tok == eot or last:
            # HF/fairseq convention: an end-of-text ranked below the K best is ignored.
            if rank < k:
                ids = tuple(int(t) for t in beams.tokens[beam])
                ids += () if tok == eot else (int(tok),)
                beams.finished.append(
                    BeamResult(ids, value, _normalize(value, len(ids), options.length_penalty))
                )
            continue
        if out < k:
            next_beam[out], next_tok[out], next_score[out] = beam, tok, value
            out += 1
    if toks[0] == eot:
        beams.top_finished = True
    # CTranslate2's stopping rule: once the best candidate of some step was an end-of-text
    # (sticky) and enough hypotheses have finished. Searching on for a better *normalized*
    # score instead lets repetition loops win (their tokens are cheap), at the cost of
    # max_new_tokens steps.
    if last or out == 0 or (len(beams.finished) >= options.num_hypotheses and beams.top_finished):
        return None
    return next_beam, next_tok, next_score


class ContinuousBeamSearch:
    """Beam search over a changing set of utterances, one decoder step at a time.

    model: transformers WhisperForConditionalGeneration (eval mode, any device and dtype).
    options: shared by every utterance (one engine per beam width).

    add(encoder_out [frames, d_model], prompt ids) -> handle; step() -> [(handle, results)]
    for the utterances that finished in that step, results best score first (up to
    num_hypotheses BeamResults). Not thread-safe: one thread calls add and step.
    """

    def __init__(self, model, options: BeamOptions) -> None:
        import torch

        self.model, self.options = model, options
        self._decoder, self._proj = model.model.decoder, model.proj_out
        self._vocab = model.config.vocab_size
        self._device = next(model.parameters()).device
        self._suppress = torch.as_tensor(
            options.suppress_ids, dtype=torch.long, device=self._device
        )
        self._suppress_begin = torch.as_tensor(
            options.suppress_begin_ids, dtype=torch.long, device=self._device
        )
        self._handles = itertools.count()
        self._joiners: list[_Joiner] = []
        self._items: list[_Beams] = []  # running utterances, in row order
        self._kv: BeamKV | None = None  # caches of the running rows
        self._scores = None  # torch [rows] cumulative log-probability of each beam
        self._input_ids = None  # torch [rows, 1] token each beam feeds at the next step
        self._frames: int | None = None

    @property
    def active(self) -> int:
        """Utterances not finished yet (running or waiting to join at the next step)."""
        return len(self._items) + len(self._joiners)

    @property
    def running(self) -> int:
        return len(self._items)

    def add(self, encoder_out, prompt: Sequence[int]) -> int:
        """Queue an utterance; it joins the search at the next `step`.

        encoder_out: [frames, d_model] on the model's device, in its dtype.
        prompt: decoder prompt ids (start-of-transcript, language, task, no-timestamps, ...).
        """
        if encoder_out.dim() != 2:
            raise ValueError(
                f"encoder_out must be [frames, d_model], got {tuple(encoder_out.shape)}"
            )
        frames = int(encoder_out.shape[0])
        if self._frames is None:
            self._frames = frames
        elif frames != self._frames:
            raise ValueError(f"encoder_out has {frames} frames, the running batch {self._frames}")
        prompt = tuple(int(t) for t in prompt)
        if not prompt:
            raise ValueError("empty prompt")
        handle = next(self._handles)
        self._joiners.append(_Joiner(handle, encoder_out, prompt))
        return handle

    def step(self) -> list[tuple[int, list[BeamResult]]]:
        """Advance every running utterance by one token and prefill the waiting ones.

        Returns (handle, results) for each utterance that finished in this step.
        """
        import torch

        if not self.active:
            return []
        k, vocab = self.options.beam_size, self._vocab
        with torch.inference_mode():
            top_vals, top_idx = [], []
            if self._items:
                logprobs = self._logprobs(self._forward_running(), begin=False)
                total = (self._scores[:, None] + logprobs).view(-1, k * vocab)
                vals, idx = total.topk(2 * k, dim=1)
                top_vals.append(vals)
                top_idx.append(idx)
            joined, prefills = self._prefill()
            for _, logits in prefills:
                # Only beam 0 of a new utterance is alive, so its candidates are the top 2K
                # tokens of the prompt's last position (parent beam 0 = index // vocab).
                vals, idx = self._logprobs(logits, begin=True).topk(2 * k, dim=1)
                top_vals.append(vals)
                top_idx.append(idx)
            vals = torch.cat(top_vals).cpu().numpy()  # one sync per step
            idx = torch.cat(top_idx).cpu().numpy()
            return self._update(joined, prefills, vals, idx // vocab, idx % vocab)

    # -- one step, in parts -------------------------------------------------------------

    def _logprobs(self, logits, begin: bool):
        """[rows, vocab] float32 log-probabilities with the suppressed ids at -inf."""
        import torch

        if self._suppress.numel():
            logits.index_fill_(1, self._suppress, float("-inf"))
        if begin and self._suppress_begin.numel():
            logits.index_fill_(1, self._suppress_begin, float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    def _forward_running(self):
        """Decoder step over the running rows -> logits [rows, vocab] (float32)."""
        valid = np.repeat([b.valid for b in self._items], self.options.beam_size)  # [rows]
        mask = self._padding_mask(valid, self._kv.past)
        logits, self._kv = decoder_step(
            self.model, self._input_ids, self._positions(valid), mask, self._kv
        )
        return logits

    def _padding_mask(self, valid: np.ndarray, past: int):
        """Attention mask [rows, past + 1] (True: attend) for cache rows left-padded to
        `past` slots, of which the last valid[r] are row r's; None when no row is padded."""
        import torch

        if (valid == past).all():
            return None  # the decoder's default causal mask, as in a static batch
        keep = np.arange(past + 1)[None, :] >= (past - valid)[:, None]
        return torch.as_tensor(keep, device=self._device)

    def _positions(self, valid: np.ndarray):
        """position_ids [rows, 1]: the token fed now is row r's token number valid[r]."""
        import torch

        return torch.as_tensor(valid[:, None], device=self._device)

    def _prefill(self):
        """Prompt forward of the waiting utterances, grouped by prompt length.

        Returns (joined _Beams, [(BeamKV of G rows, logits [G, vocab])]), the joined
        utterances in the order of the groups' rows.
        """
        import torch
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        joiners, self._joiners = self._joiners, []
        groups: dict[int, list[_Joiner]] = {}
        for joiner in joiners:
            groups.setdefault(len(joiner.prompt), []).append(joiner)
        joined, prefills = [], []
        for length, group in groups.items():
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
            hidden = self._decoder(
                input_ids=torch.as_tensor([j.prompt for j in group], device=self._device),
                encoder_hidden_states=torch.stack([j.encoder_out for j in group]),
                past_key_values=cache,
                use_cache=True,
            ).last_hidden_state[:, -1]
            prefills.append((kv_from_cache(cache), self._proj(hidden).float()))
            empty = np.zeros((self.options.beam_size, 0), dtype=np.int64)
            joined.extend(_Beams(j.handle, empty, length) for j in group)
        return joined, prefills

    def _update(self, joined, prefills, vals, parents, toks):
        """Bookkeeping for every utterance, then the new batch: kept beams of the running
        utterances and of the joined ones, caches gathered by parent row."""
        import torch

        k = self.options.beam_size
        done: list[tuple[int, list[BeamResult]]] = []
        kept: list[_Beams] = []
        rows, items, next_toks, next_scores = [], [], [], []
        # Source utterances: the running ones (K self-attention rows each), then the prefill
        # groups' (1 row each: all K beams of a new utterance descend from its beam 0).
        running = len(self._items)
        sources = [(b, i, i * k) for i, b in enumerate(self._items)]
        sources += [(b, running + g, running * k + g) for g, b in enumerate(joined)]
        for source, (beams, item, first) in enumerate(sources):
            step = _advance(beams, vals[source], parents[source], toks[source], self.options)
            if step is None:
                done.append((beams.handle, beams.results(self.options.num_hypotheses)))
                continue
            next_beam, next_tok, next_score = step
            beams.tokens = np.concatenate([beams.tokens[next_beam], next_tok[:, None]], axis=1)
            if item < running:
                beams.valid += 1  # a running row just cached the token it fed
                rows.append(first + next_beam)
            else:
                rows.append(np.full(k, first))
            items.append(item)
            kept.append(beams)
            next_toks.append(next_tok)
            next_scores.append(next_score)
        membership_changed = bool(joined) or len(kept) != len(self._items)
        self._items = kept
        if not kept:  # empty: the next utterance may bring another window length
            self._kv = self._scores = self._input_ids = self._frames = None
            return done
        kvs = ([self._kv] if self._kv is not None else []) + [kv for kv, _ in prefills]
        self._kv = _merge(
            kvs,
            torch.as_tensor(np.concatenate(rows), device=self._device),
            torch.as_tensor(items, device=self._device) if membership_changed else None,
            max(b.valid for b in kept),
        )
        self._scores = torch.as_tensor(np.concatenate(next_scores), device=self._device)
        self._input_ids = torch.as_tensor(np.concatenate(next_toks)[:, None], device=self._device)
        return done


def _merge(kvs: list[BeamKV], rows, items, length: int) -> BeamKV:
    """The caches of the new batch, gathered from the concatenation of `kvs`.

    rows: [new rows] source self-attention row of each (parent beams, new utterances'
    beams from their prompt row). items: [new utterances] source utterance of each, or None
    when no utterance joined or left (the cross-attention cache stays as it is). length: the
    longest real history kept; columns left of it are padding in every row and are dropped.
    """
    layers = range(len(kvs[0].self_k))
    self_k = [_gather([kv.self_k[i] for kv in kvs], rows, length) for i in layers]
    self_v = [_gather([kv.self_v[i] for kv in kvs], rows, length) for i in layers]
    if items is None:
        return BeamKV(self_k, self_v, kvs[0].cross_k, kvs[0].cross_v)
    cross_k = [_gather([kv.cross_k[i] for kv in kvs], items) for i in layers]
    cross_v = [_gather([kv.cross_v[i] for kv in kvs], items) for i in layers]
    return BeamKV(self_k, self_v, cross_k, cross_v)


def _gather(parts, index, length: int | None = None):
    """Rows `index` of the parts [rows_i, heads, len_i, head_dim] stacked along rows, each
    left-padded with zeros to the longest len; then only the last `length` columns."""
    import torch

    width = max(p.shape[2] for p in parts)
    parts = [
        p if p.shape[2] == width else torch.nn.functional.pad(p, (0, 0, width - p.shape[2], 0))
        for p in parts
    ]
    merged = (parts[0] if len(parts) == 1 else torch.cat(parts)).index_select(0, index)
    return merged if length is None or length >= width else merged[:, :, width - length :]


def beam_search(
    model, encoder_out, prompts: np.ndarray, options: BeamOptions
) -> list[list[BeamResult]]:
    """Decode every utterance of `encoder_out` ([B, frames, d_model]) from its prompt.

    prompts: int array [B, P] (start-of-transcript, language, task, no-timestamps).
    Returns per utterance up to `num_hypotheses` BeamResults, best score first.
    """
    search = ContinuousBeamSearch(model, options)
    handles = [search.add(encoder_out[i], prompts[i]) for i in range(encoder_out.shape[0])]
    results: dict[int, list[BeamResult]] = {}
    while search.active:
        results.update(search.step())
    return [results[h] for h in handles]
