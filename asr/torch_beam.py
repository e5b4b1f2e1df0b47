"""Batched beam search with n-best output over a transformers Whisper decoder.

Many utterances x `beam_size` beams are decoded as one batch of rows (utterance-major:
row = item * beam_size + beam). One device->host copy per step carries the top 2K
candidates of every utterance; the bookkeeping (finished hypotheses, stopping) runs in
numpy on those few numbers, so the GPU never waits on per-beam Python work.

Scores follow CTranslate2's Whisper `generate(..., return_scores=True)`: the cumulative
log-probability of the generated tokens *including* the end-of-text token, divided by
(number of generated tokens, end-of-text *not* counted) ** length_penalty (checked against
CTranslate2 4.8 on CPU: same scores to ~1e-3).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

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


def beam_search(
    model, encoder_out, prompts: np.ndarray, options: BeamOptions
) -> list[list[BeamResult]]:
    """Decode every utterance of `encoder_out` ([B, frames, d_model]) from its prompt.

    prompts: int array [B, P] (start-of-transcript, language, task, no-timestamps).
    Returns per utterance up to `num_hypotheses` BeamResults, best score first.
    """
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    device = encoder_out.device
    batch, k = encoder_out.shape[0], options.beam_size
    vocab = model.config.vocab_size
    rows_of = np.arange(batch)  # original utterance index of each active item

    # Every beam starts from the prompt; only beam 0 is "alive" at the first step so the
    # first expansion yields K distinct tokens instead of K copies.
    enc = encoder_out.repeat_interleave(k, dim=0)
    input_ids = torch.as_tensor(np.repeat(prompts, k, axis=0), device=device)
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    scores = scores.view(-1)
    tokens = np.zeros((batch, k, 0), dtype=np.int64)
    finished: list[list[BeamResult]] = [[] for _ in range(batch)]
    top_finished = np.zeros(batch, dtype=bool)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    suppress = torch.as_tensor(options.suppress_ids, dtype=torch.long, device=device)
    suppress_begin = torch.as_tensor(options.suppress_begin_ids, dtype=torch.long, device=device)
    penalty, eot, n_hyp = options.length_penalty, options.eot_id, options.num_hypotheses

    for step in range(options.max_new_tokens):
        hidden = model.model.decoder(
            input_ids=input_ids, encoder_hidden_states=enc, past_key_values=cache, use_cache=True
        ).last_hidden_state[:, -1]
        logits = model.proj_out(hidden).float()
        if suppress.numel():
            logits.index_fill_(1, suppress, float("-inf"))
        if step == 0 and suppress_begin.numel():
            logits.index_fill_(1, suppress_begin, float("-inf"))
        total = (scores[:, None] + torch.log_softmax(logits, dim=-1)).view(-1, k * vocab)
        top_vals, top_idx = total.topk(2 * k, dim=1)
        top_vals, top_idx = top_vals.cpu().numpy(), top_idx.cpu().numpy()  # one sync per step
        top_beam, top_tok = top_idx // vocab, top_idx % vocab
        rank0_eot = top_tok[:, 0] == eot
        last = step == options.max_new_tokens - 1

        items = tokens.shape[0]
        next_beam = np.zeros((items, k), dtype=np.int64)
        next_tok = np.zeros((items, k), dtype=np.int64)
        next_score = np.full((items, k), -np.inf, dtype=np.float32)
        keep = np.ones(items, dtype=bool)
        for a in range(items):
            done, out = finished[rows_of[a]], 0
            for rank in range(2 * k):
                value, beam, tok = float(top_vals[a, rank]), top_beam[a, rank], top_tok[a, rank]
                if value == float("-inf"):
                    break
                if tok == eot or last:
                    # HF/fairseq convention: an end-of-text ranked below the K best is ignored.
                    if rank < k:
                        ids = tuple(int(t) for t in tokens[a, beam])
                        ids += () if tok == eot else (int(tok),)
                        done.append(BeamResult(ids, value, _normalize(value, len(ids), penalty)))
                    continue
                if out < k:
                    next_beam[a, out], next_tok[a, out], next_score[a, out] = beam, tok, value
                    out += 1
            if rank0_eot[a]:
                top_finished[rows_of[a]] = True
            # CTranslate2's stopping rule: once the best candidate of some step was an
            # end-of-text (sticky) and enough hypotheses have finished. Searching on for a
            # better *normalized* score instead lets repetition loops win (their tokens are
            # cheap), at the cost of max_new_tokens steps.
            if len(done) >= n_hyp and top_finished[rows_of[a]]:
                keep[a] = False
            if out == 0:
                keep[a] = False
        if last or not keep.any():
            break

        # Re-gather the token history and self-attention cache by the chosen parent beams;
        # the cross-attention cache is identical across beams of an utterance, so it is only
        # touched when finished utterances leave the batch.
        parent = (np.arange(items)[:, None] * k + next_beam).reshape(-1)
        tokens = np.concatenate(
            [tokens.reshape(items * k, -1)[parent].reshape(items, k, -1), next_tok[:, :, None]],
            axis=2,
        )
        cache.self_attention_cache.reorder_cache(torch.as_tensor(parent, device=device))
        scores = torch.as_tensor(next_score.reshape(-1), device=device)
        input_ids = torch.as_tensor(next_tok.reshape(-1, 1), device=device)
        if not keep.all():
            rows = torch.as_tensor(
                (np.flatnonzero(keep)[:, None] * k + np.arange(k)).reshape(-1), device=device
            )
            cache.batch_select_indices(rows)
            enc, scores, input_ids = enc[rows], scores[rows], input_ids[rows]
            tokens, rows_of = tokens[keep], rows_of[keep]

    for done in finished:
        done.sort(key=lambda r: r.score, reverse=True)
        del done[n_hyp:]
    return finished
