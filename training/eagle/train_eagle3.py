"""EAGLE-3's training-time test (TTT) for upstream's EAGLE-3 head (``eagle.model.cnets.Model``).

Why a second recipe: an EAGLE-3 head reads the inputs of three target layers
(2, L//2, L-3; ``eagle3_layers``) instead of the last hidden state, and is
trained on its own earlier outputs. At TTT step j the head's input hidden
state at each position is its output of step j-1, as in drafting, where tree
level j is drafted from level j-1's outputs; EAGLE-2's recipe only ever
feeds it the target's features, so its deeper drafts drift.

``ttt_hidden`` follows upstream's ``eagle/traineagle3/cnets.py``: step j's
queries attend to step 0's keys causally (the context, drafted from the
target's features) and to their own keys of steps 1..j (their chain of
drafts), rotary positions shifted by j; step j's loss weighs 0.8**j. It is
written over the inference module's own weights (``midlayer``, ``fc``,
``norm``, ``lm_head``), and a test checks it against upstream's cached
forward, the path drafting takes. Differences from upstream, for a CPU: the
labels are the target's top-k next tokens renormalised over the draft
vocabulary (``soft_cross_entropy``, as for the EAGLE-2 head), not its full
distribution; the LM head starts as the target's rows for the draft
vocabulary and stays frozen (fewer weights to learn from ~10^5 tokens);
fewer steps (``--ttt-steps``; upstream 7).
"""

from __future__ import annotations

import math

import torch

from .train_head import soft_cross_entropy

__all__ = ["eagle3_config", "eagle3_layers", "prepare_head", "ttt_hidden", "ttt_loss"]

STEP_WEIGHT = 0.8  # upstream's ploss_weight: step j's loss x 0.8**j


def eagle3_layers(num_layers: int) -> tuple[int, int, int]:
    """The decoder layers whose inputs EAGLE-3 reads (``modeling_llama_kv.py``'s choice; our patch's for Qwen2)."""
    return (2, num_layers // 2, num_layers - 3)


def eagle3_config(base_config: dict, *, draft_vocab: int, intermediate_size: int | None = None) -> dict:
    """An EAGLE-3 head's ``config.json`` for a base model: one layer, its draft vocabulary size (the EAGLE-3 mark)."""
    config = dict(base_config, num_hidden_layers=1, draft_vocab_size=draft_vocab)
    config.update(architectures=["LlamaForCausalLMEagle3"], bias=False)
    if intermediate_size:
        config["intermediate_size"] = intermediate_size
    return config


def prepare_head(head, lm_weight: torch.Tensor, vocab: torch.Tensor) -> None:
    """Fill ``d2t``/``t2d`` for the draft vocabulary (sorted target ids ``vocab``), start the LM head at the
    target's rows for it and freeze it and the embedding (the base's)."""
    head.d2t.copy_(vocab - torch.arange(len(vocab)))  # draft index i -> target id i + d2t[i]
    head.t2d.zero_()
    head.t2d[vocab] = True
    head.lm_head.weight.data.copy_(lm_weight[vocab])
    head.lm_head.weight.requires_grad_(False)
    head.embed_tokens.weight.requires_grad_(False)


def _attention_step(attn, x, keys, values, positions, causal):
    """One TTT step of the head's attention: ``x`` (batch, L, 2H); ``keys``/``values`` the earlier steps' (appended)."""
    batch, length, _ = x.shape
    heads, kv_heads, dim = attn.num_heads, attn.num_key_value_heads, attn.head_dim
    query = attn.q_proj(x).view(batch, length, heads, dim).transpose(1, 2)
    key = attn.k_proj(x).view(batch, length, kv_heads, dim).transpose(1, 2)
    value = attn.v_proj(x).view(batch, length, kv_heads, dim).transpose(1, 2)
    cos, sin = attn.rotary_emb(value, seq_len=int(positions.max()) + 1)
    from eagle.model.cnets import apply_rotary_pos_emb, repeat_kv

    query, key = apply_rotary_pos_emb(query, key, cos, sin, positions)
    keys.append(repeat_kv(key, attn.num_key_value_groups))
    values.append(repeat_kv(value, attn.num_key_value_groups))
    scale = 1 / math.sqrt(dim)
    context = torch.matmul(query, keys[0].transpose(2, 3)) * scale + causal  # the context: causal over step 0
    chain = [(query * k).sum(-1, keepdim=True) * scale for k in keys[1:]]  # each position's own earlier drafts
    weights = torch.softmax(torch.cat([context, *chain], dim=-1), dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(weights[..., :length], values[0])
    for i, v in enumerate(values[1:]):
        out = out + weights[..., length + i, None] * v
    return attn.o_proj(out.transpose(1, 2).reshape(batch, length, heads * dim))


def ttt_hidden(head, features: torch.Tensor, tokens: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """The head's output hidden states (before its norm) of TTT steps 0..steps-1.

    ``features`` (batch, L, 3H): the target's three layers at positions 0..L-1; ``tokens`` (batch, L+steps-1):
    ``tokens[:, t]`` is the token after position t. Step j at index t drafts the token j+2 places after t
    from the context up to t and its own steps 1..j there.
    """
    layer, attn = head.midlayer, head.midlayer.self_attn
    length = features.shape[1]
    hidden = head.fc(features.to(head.fc.weight.dtype))
    positions = torch.arange(length, device=features.device)[None]
    causal = torch.full((length, length), torch.finfo(torch.float32).min, device=features.device).triu(1)
    keys: list[torch.Tensor] = []
    values: list[torch.Tensor] = []
    outputs = []
    for step in range(steps):
        embedded = head.embed_tokens(tokens[:, step : step + length]).to(hidden.dtype)
        x = torch.cat([layer.input_layernorm(embedded), layer.hidden_norm(hidden)], dim=-1)
        hidden = hidden + _attention_step(attn, x, keys, values, positions + step, causal)
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        outputs.append(hidden)
    return outputs


def _batch3(examples: list[dict], indices: list[int], steps: int):
    """Right-padded (features at positions 0..L-1, the token after each position, and per label slot u — the
    target's top-k for the token after position u+1 — its ids, log-probs and whether it is an answer position)."""
    length = max(len(examples[i]["prompt"]) + len(examples[i]["answer"]) for i in indices) - 1
    width = examples[indices[0]]["layer_features"].shape[-1]
    top_k = examples[indices[0]]["top_ids"].shape[-1]
    slots = length + steps - 1
    features = torch.zeros(len(indices), length, width)
    tokens = torch.zeros(len(indices), slots, dtype=torch.long)
    top_ids = torch.zeros(len(indices), slots, top_k, dtype=torch.long)
    top_logp = torch.zeros(len(indices), slots, top_k)
    mask = torch.zeros(len(indices), slots, dtype=torch.bool)
    for row, i in enumerate(indices):
        ids = examples[i]["prompt"] + examples[i]["answer"]
        n = len(ids) - 1
        features[row, :n] = examples[i]["layer_features"][:n].float()
        tokens[row, :n] = torch.tensor(ids[1:])
        top_ids[row, :n] = examples[i]["top_ids"][1:].long()
        top_logp[row, :n] = examples[i]["top_logp"][1:].float()
        mask[row, len(examples[i]["prompt"]) - 1 : n] = True  # labels of answer positions only
    return features, tokens, top_ids, top_logp, mask


def ttt_loss(head, to_draft: torch.Tensor, examples: list[dict], indices: list[int], noise: float, *, steps: int):
    """EAGLE-3's TTT loss on ``examples[indices]``: sum over steps of 0.8**j x the mean soft cross-entropy of
    step j. Hits and positions are step 0's (the head's top-1 on the target's features, as for EAGLE-2)."""
    features, tokens, top_ids, top_logp, mask = _batch3(examples, indices, steps)
    if noise:
        features = features + (torch.rand_like(features) - 0.5) * noise
    length = features.shape[1]
    total = 0.0
    hits, positions = torch.zeros(()), 0.0
    for step, hidden in enumerate(ttt_hidden(head, features, tokens, steps)):
        keep = mask[:, step : step + length]
        logits = head.lm_head(head.norm(hidden[keep]))
        loss, step_hits = soft_cross_entropy(
            logits, to_draft, top_ids[:, step : step + length][keep], top_logp[:, step : step + length][keep]
        )
        total = total + STEP_WEIGHT**step * loss / max(1, int(keep.sum()))
        if step == 0:
            hits, positions = step_hits, float(keep.sum())
    return total, hits, positions
