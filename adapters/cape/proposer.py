"""``CapeProposer``: a chain drafter's proposal, expanded into a tree where the draft is unsure (CaPE).

After the chain is drafted (the policy decides its length), every position
``i`` gets ``bins[int(10 * p_top1)] - 1`` alternatives: the draft's next most
likely tokens there, as leaves under the chain's node ``i - 1`` (upstream's
``generate_proposals``: ``trajectory[:i] + [token]`` for its top-k tokens).
Alternatives cost no draft forward (they come from logits already computed)
and are verified with the chain in one target forward.
"""

from __future__ import annotations

import time
from typing import Collection, Sequence

import torch

from svip.interfaces import Proposal, Proposer
from svip.policies import DraftLengthPolicy
from svip.tree import ROOT, TokenTree

from .method import CapeMethod

__all__ = ["CapeProposer", "expand"]


def expand(chain: Sequence[int], logits: Sequence[torch.Tensor], method: CapeMethod) -> TokenTree:
    """The chain (nodes ``0..n-1``) plus CaPE's alternatives, at most ``method.nodes`` nodes."""
    tree = TokenTree.chain(list(chain)[: method.nodes])
    for index, row in enumerate(logits[: len(tree)]):
        probs = torch.softmax(row.float(), dim=-1)
        want = method.candidates(float(probs.max())) - 1
        parent = ROOT if index == 0 else index - 1
        for token in torch.topk(probs, min(want + 1, probs.numel())).indices.tolist():
            if want <= 0 or len(tree) >= method.nodes:
                break
            if token != chain[index]:
                tree.add(token, parent)
                want -= 1
    return tree


class CapeProposer(Proposer):
    """Wraps a chain ``Proposer`` (the draft model's loop); its proposal gains a tree."""

    def __init__(self, inner: Proposer, method: CapeMethod) -> None:
        self.inner, self.method = inner, method
        self.spec = method.spec

    def propose(
        self,
        sequence: Sequence[int],
        *,
        generated: int,
        budget: int,
        policy: DraftLengthPolicy,
        stop_tokens: Collection[int],
        generator: torch.Generator | None,
    ) -> Proposal:
        proposal = self.inner.propose(
            sequence, generated=generated, budget=budget, policy=policy, stop_tokens=stop_tokens, generator=generator
        )
        start = time.perf_counter()
        proposal.tree = expand(proposal.tokens, proposal.logits, self.method)
        kept = min(len(proposal.tokens), self.method.nodes)  # a chain longer than the node cap is cut with it
        for name in ("tokens", "probs", "entropies", "logits"):
            setattr(proposal, name, getattr(proposal, name)[:kept])
        proposal.seconds += time.perf_counter() - start
        return proposal
