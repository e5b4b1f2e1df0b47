"""One Whisper decoder step over beam rows, with cross-attention shared by an utterance's beams.

transformers' WhisperDecoder wants one cross-attention key/value row per query row, so a
beam search there keeps K copies of every utterance's encoder keys and values (Whisper base,
beam 10: 18 MB per copy in float16, 37 MB in float32) and reads them all at every step, and
every utterance joining or leaving the batch copies them all again. This step computes the
same layers with the beams of an utterance as K queries against a single copy: a K-times
smaller cross-attention cache, K times less of it read per step, and batch changes that copy
utterances, not beams. The prompt forward (prefill) stays transformers' own.

Same weights, same operations, same order as transformers 5.x `WhisperDecoderLayer` in eval
mode (pre-norm self-attention, cross-attention, feed-forward; queries scaled before the
product; no embedding scale); tests compare the two on a tiny model and on Whisper base.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BeamKV:
    """Key/value caches of a batch of beam rows, one entry per decoder layer.

    self_k, self_v: [rows, heads, past, head_dim], rows = utterances x K, utterance-major;
        left-padded where a row's history is shorter than `past` (see the step's mask).
    cross_k, cross_v: [utterances, heads, frames, head_dim], one row per utterance.
    """

    self_k: list
    self_v: list
    cross_k: list
    cross_v: list

    @property
    def past(self) -> int:
        return int(self.self_k[0].shape[2])


def kv_from_cache(cache) -> BeamKV:
    """The tensors of a transformers EncoderDecoderCache filled by a prompt forward."""
    selfs, crosses = cache.self_attention_cache.layers, cache.cross_attention_cache.layers
    return BeamKV(
        [layer.keys for layer in selfs],
        [layer.values for layer in selfs],
        [layer.keys for layer in crosses],
        [layer.values for layer in crosses],
    )


def decoder_step(model, input_ids, positions, mask, kv: BeamKV):
    """Feed one token per beam row -> (logits [rows, vocab] float32, kv with it appended).

    input_ids, positions: [rows, 1] token ids and their positions (per row: the length of
    its real history). mask: None, or bool [rows, past + 1], True where a row may attend
    (its real history and the token fed now). kv: the rows' caches (not modified).
    """
    import torch
    from torch.nn.functional import scaled_dot_product_attention as attend

    decoder = model.model.decoder
    rows = input_ids.shape[0]
    items = kv.cross_k[0].shape[0]
    beams = rows // items
    x = decoder.embed_tokens(input_ids) + decoder.embed_positions.weight[positions]
    attn_mask = None if mask is None else mask[:, None, None, :]
    self_k, self_v = [], []
    for i, layer in enumerate(decoder.layers):
        sa = layer.self_attn
        heads, dim = sa.num_heads, sa.head_dim
        h = layer.self_attn_layer_norm(x)
        q = (sa.q_proj(h) * sa.scaling).view(rows, 1, heads, dim).transpose(1, 2)
        k = torch.cat([kv.self_k[i], sa.k_proj(h).view(rows, 1, heads, dim).transpose(1, 2)], 2)
        v = torch.cat([kv.self_v[i], sa.v_proj(h).view(rows, 1, heads, dim).transpose(1, 2)], 2)
        self_k.append(k)
        self_v.append(v)
        out = attend(q, k, v, attn_mask=attn_mask, scale=1.0)  # [rows, heads, 1, dim]
        x = x + sa.out_proj(out.transpose(1, 2).reshape(rows, 1, heads * dim))

        ca = layer.encoder_attn
        h = layer.encoder_attn_layer_norm(x)
        # An utterance's K beams are K queries against its one copy of the encoder keys.
        q = (ca.q_proj(h) * ca.scaling).view(items, beams, heads, dim).transpose(1, 2)
        out = attend(q, kv.cross_k[i], kv.cross_v[i], scale=1.0)  # [items, heads, K, dim]
        x = x + ca.out_proj(out.transpose(1, 2).reshape(rows, 1, heads * dim))

        h = layer.final_layer_norm(x)
        x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
    logits = model.proj_out(decoder.layer_norm(x)[:, -1]).float()
    return logits, BeamKV(self_k, self_v, kv.cross_k, kv.cross_v)
