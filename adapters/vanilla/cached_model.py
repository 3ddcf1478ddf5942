"""A causal LM bound to its own KV cache, fed incrementally.

Both the draft proposer and the target scorer only ever (a) append tokens
and read the logits of the last few positions, and (b) roll the cache back
after a rejection. Keeping that in one place makes the bookkeeping in the
engine a matter of lengths, not cache internals.
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import DynamicCache, PreTrainedModel

from svip.tree import TokenTree

__all__ = ["CachedCausalLM", "context_limit"]


def context_limit(model: PreTrainedModel) -> int | None:
    """Longest sequence the model was built for (None when the config does not say)."""
    limit = getattr(model.config, "max_position_embeddings", None)
    return int(limit) if limit else None


class CachedCausalLM:
    """``model`` + ``DynamicCache``; the cache covers ``sequence[:cached_length]``."""

    def __init__(self, model: PreTrainedModel) -> None:
        self.model = model
        self.input_device = model.get_input_embeddings().weight.device
        self.cache = DynamicCache(config=model.config)

    def reset(self) -> None:
        """Forget every cached position (new prompt)."""
        self.cache = DynamicCache(config=self.model.config)

    @property
    def cached_length(self) -> int:
        return self.cache.get_seq_length()

    def forward(self, new_tokens: Sequence[int], n_logits: int) -> torch.Tensor:
        """Append ``new_tokens`` to the cache; return fp32 CPU logits of the last ``n_logits`` positions.

        Shape ``(n_logits, vocab)``. ``logits_to_keep`` spares the LM head
        over the prompt, as ``generate()`` does.
        """
        if not new_tokens:
            raise ValueError("forward needs at least one new token")
        if not 1 <= n_logits <= len(new_tokens):
            raise ValueError(f"n_logits={n_logits} outside [1, {len(new_tokens)}]")
        input_ids = torch.tensor([list(new_tokens)], dtype=torch.long, device=self.input_device)
        output = self.model(input_ids=input_ids, past_key_values=self.cache, use_cache=True, logits_to_keep=n_logits)
        self.cache = output.past_key_values
        return output.logits[0, -n_logits:].float().cpu()

    def crop(self, length: int) -> None:
        """Drop cached positions beyond ``length`` (after a rejection)."""
        excess = self.cached_length - length
        if excess > 0:
            self.cache.crop(-excess)  # transformers 5.x: a negative count removes that many tokens

    def forward_tree(self, new_tokens: Sequence[int], tree: TokenTree) -> torch.Tensor:
        """Append committed ``new_tokens`` (the last is the tree's root) and every node in one forward.

        Returns fp32 CPU logits after the root and after each node, shape
        ``(1 + len(tree), vocab)``. The cache then holds every node: ``keep``
        the accepted path before the next forward.
        """
        if not new_tokens:
            raise ValueError("forward_tree needs the root (the last committed token) among the new tokens")
        cached, fed = self.cached_length, len(new_tokens)
        dtype = self.model.get_input_embeddings().weight.dtype
        device = self.input_device
        output = self.model(
            input_ids=torch.tensor([list(new_tokens) + tree.tokens], dtype=torch.long, device=device),
            attention_mask=tree.attention_mask(cached, fed, dtype).to(device),
            position_ids=tree.position_ids(cached, fed).to(device),
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=len(tree) + 1,
        )
        self.cache = output.past_key_values
        return output.logits[0].float().cpu()

    def keep(self, base: int, nodes: Sequence[int]) -> None:
        """Keep cached positions ``[0, base)`` followed by ``base + i`` for each of ``nodes``, in that order."""
        if self.cached_length < base + (max(nodes) + 1 if nodes else 0):
            raise ValueError(f"cannot keep nodes {list(nodes)} after {base}: the cache holds {self.cached_length}")
        index = torch.tensor([*range(base), *(base + i for i in nodes)], dtype=torch.long)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(-2, index.to(layer.keys.device))
            layer.values = layer.values.index_select(-2, index.to(layer.values.device))
