"""A tree of draft tokens verified in one target forward (SpecInfer, Medusa, EAGLE, GliDe's CaPE).

A chain drafts one continuation; a tree adds alternatives (e.g. CaPE's extra
candidates where the draft is unsure) and the target scores every node in one
forward: each node attends to the cached context, the committed tokens fed
this round, its ancestors and itself, at position ``context + depth``. Greedy
verification walks from the root along the child whose token is the target's
argmax: the accepted path, then the target's own token after it. The output is
the target's greedy output whatever the tree holds, as for a chain.

Nodes are stored in topological order (a parent before its children), the
order every drafter produces them in and the one the KV cache is compacted in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

__all__ = ["ROOT", "TokenTree"]

ROOT = -1  # parent of the first level: the last committed token
_DUPLICATE = "two nodes with one parent carry the same token: a tree holds each branch once"


@dataclass
class TokenTree:
    """Draft nodes: ``tokens[i]`` hangs under ``parents[i]`` (``ROOT`` or an earlier node)."""

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.parents):
            raise ValueError(f"a tree needs one parent per token, got {len(self.tokens)} and {len(self.parents)}")
        for i, parent in enumerate(self.parents):
            if not ROOT <= parent < i:
                raise ValueError(f"node {i}: parent {parent} must be ROOT (-1) or an earlier node")
        if len(set(zip(self.parents, self.tokens))) != len(self.tokens):
            raise ValueError(_DUPLICATE)

    @classmethod
    def chain(cls, tokens: Sequence[int]) -> "TokenTree":
        return cls(list(tokens), [i - 1 for i in range(len(tokens))])

    def __len__(self) -> int:
        return len(self.tokens)

    def add(self, token: int, parent: int) -> int:
        """Append a node (checked against the tree as it stands); returns its index."""
        token, parent, index = int(token), int(parent), len(self.tokens)
        if not ROOT <= parent < index:
            raise ValueError(f"node {index}: parent {parent} must be ROOT (-1) or an earlier node")
        if (parent, token) in zip(self.parents, self.tokens):
            raise ValueError(_DUPLICATE)
        self.tokens.append(token)
        self.parents.append(parent)
        return index

    def depths(self) -> list[int]:
        """1 for the root's children."""
        out: list[int] = []
        for parent in self.parents:
            out.append(1 if parent == ROOT else out[parent] + 1)
        return out

    def path_to(self, node: int) -> list[int]:
        """Node indices from the root's child down to ``node``."""
        path = []
        while node != ROOT:
            path.append(node)
            node = self.parents[node]
        return path[::-1]

    def attention_mask(self, cached: int, fed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Additive mask ``(1, 1, fed + n, cached + fed + n)``: 0 where a query may attend, the dtype's min elsewhere.

        ``fed`` committed tokens not yet in the cache come first (causal; the
        last one is the root), then the nodes (context + ancestors + self).
        """
        n = len(self.tokens)
        allowed = torch.zeros(fed + n, cached + fed + n, dtype=torch.bool)
        allowed[:, :cached] = True
        allowed[:fed, cached : cached + fed] = torch.ones(fed, fed, dtype=torch.bool).tril()
        allowed[fed:, cached : cached + fed] = True
        for i in range(n):
            allowed[fed + i, [cached + fed + a for a in self.path_to(i)]] = True
        mask = torch.zeros(allowed.shape, dtype=dtype)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        return mask[None, None]

    def position_ids(self, cached: int, fed: int) -> torch.Tensor:
        """``(1, fed + n)``: committed tokens at their places, a node at the root's position + its depth."""
        root = cached + fed - 1
        return torch.tensor([[*range(cached, cached + fed), *(root + d for d in self.depths())]], dtype=torch.long)

    def accept_greedy(self, predictions: Sequence[int]) -> tuple[list[int], int]:
        """The accepted path and the target's next token.

        ``predictions[0]`` is the target's argmax after the root, ``predictions[1 + i]``
        after node ``i``. From the root, follow the child carrying the
        prediction; where none does, that prediction is the correction.
        """
        children: dict[int, dict[int, int]] = {}
        for i, (parent, token) in enumerate(zip(self.parents, self.tokens)):
            children.setdefault(parent, {})[token] = i
        path, node, predicted = [], ROOT, int(predictions[0])
        while (child := children.get(node, {}).get(predicted)) is not None:
            path.append(child)
            node, predicted = child, int(predictions[1 + child])
        return path, predicted
