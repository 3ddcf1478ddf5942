"""GliDe's cross-attention: a draft layer reads the target's KV cache of one upper target layer.

Upstream (``glide/glideModel.py``, ``LlamaCrossAttention``) reuses the
target's keys and values as they are (already rotated at their positions)
and owns only the query and output projections, with the target's head
count and head size; the query is rotated at its own position with the
target's RoPE, so the scores see relative distances as the target does.
Two choices here differ and are why the module is small:

- The block sits *after* each draft layer (residual add), not between its
  self-attention and MLP: the draft's layers are a real model's
  (``Qwen2DecoderLayer``) called as they are, through a forward hook.
- A zero key/value that every query always sees (an attention sink): a
  query with no visible target position (training's first block) gets a
  zero output instead of a softmax over nothing, and the draft can learn to
  ignore the target where it does not help. Training and inference use it
  alike.

What a query may see is one integer per query, its *limit*: target
positions ``< limit``. Drafting: ``min(T, p)`` with ``T`` the target's
cached length (the target has not seen the newest committed token nor the
drafts). Training: the start of the query's block (upstream's block-wise
mask), which covers the same offsets a round of drafting produces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["CrossAttention", "CrossContext", "rotate_queries"]


def rotate_queries(queries: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on ``(batch, heads, q, head_dim)`` with ``cos``/``sin`` of shape ``(batch, q, head_dim)`` (HF's layout)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    half = queries.shape[-1] // 2
    rotated = torch.cat((-queries[..., half:], queries[..., :half]), dim=-1)
    return queries * cos + rotated * sin


@dataclass
class CrossContext:
    """What the cross-attention blocks read during one draft forward (set by the caller before it).

    ``keys[i]``/``values[i]``: the target's cache of the upper layer draft
    layer ``i`` reads, ``(batch, kv_heads, T, head_dim)``. ``limits``:
    ``(batch, q)`` target positions visible to each query (``< limit``).
    ``None`` keys: the blocks are skipped (the draft is its base model).
    """

    keys: list[torch.Tensor] | None = None
    values: list[torch.Tensor] | None = None
    limits: torch.Tensor | None = None
    calls: list[int] = field(default_factory=list)  # layer indices called (tests check every block ran)

    def clear(self) -> None:
        self.keys = self.values = self.limits = None


class CrossAttention(nn.Module):
    """RMSNorm -> query (target's heads) -> attention over target KV + a zero sink -> output projection."""

    def __init__(self, hidden_size: int, heads: int, kv_heads: int, head_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        if heads % kv_heads:
            raise ValueError(f"cross-attention: {heads} query heads do not group over {kv_heads} KV heads")
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.norm_weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps
        self.q_proj = nn.Linear(hidden_size, heads * head_dim, bias=False)
        self.o_proj = nn.Linear(heads * head_dim, hidden_size, bias=False)
        nn.init.zeros_(self.o_proj.weight)  # starts as the identity on the residual stream: the base model

    def _norm(self, hidden: torch.Tensor) -> torch.Tensor:
        variance = hidden.float().pow(2).mean(-1, keepdim=True)
        return (hidden.float() * torch.rsqrt(variance + self.eps)).to(hidden.dtype) * self.norm_weight

    def forward(
        self,
        hidden: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        limits: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """The residual update for ``hidden`` ``(batch, q, hidden_size)``."""
        batch, q_len, _ = hidden.shape
        queries = self.q_proj(self._norm(hidden)).view(batch, q_len, self.heads, self.head_dim).transpose(1, 2)
        queries = rotate_queries(queries, *rope)
        group = self.heads // self.kv_heads
        keys = keys.to(queries.dtype).repeat_interleave(group, dim=1)  # (batch, heads, T, d)
        values = values.to(queries.dtype).repeat_interleave(group, dim=1)
        scores = torch.matmul(queries, keys.transpose(-1, -2)) / math.sqrt(self.head_dim)  # (batch, heads, q, T)
        positions = torch.arange(keys.shape[-2], device=hidden.device)
        hidden_from_query = positions[None, None, :] >= limits[:, :, None].to(hidden.device)  # (batch, q, T)
        scores = scores.masked_fill(hidden_from_query[:, None], float("-inf"))
        sink = torch.zeros(*scores.shape[:-1], 1, dtype=scores.dtype, device=scores.device)  # the zero key's score
        weights = torch.softmax(torch.cat([sink, scores], dim=-1).float(), dim=-1).to(values.dtype)
        attended = torch.matmul(weights[..., 1:], values)  # the sink's value is zero
        return self.o_proj(attended.transpose(1, 2).reshape(batch, q_len, self.heads * self.head_dim))
