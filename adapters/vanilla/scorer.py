"""The target side: score a proposal in one forward pass and decide what to keep."""

from __future__ import annotations

import time
from typing import Sequence

import torch

from svip.interfaces import Proposal, Verification
from svip.method import InputError
from svip.sampling import SamplingConfig

from .cached_model import CachedCausalLM
from .sampling import select_token, verify_greedy, verify_sampled

__all__ = ["TargetScorer", "Verification"]


class TargetScorer:
    """Verifies draft tokens against the target; the only source of output tokens."""

    def __init__(self, model: CachedCausalLM, sampling: SamplingConfig) -> None:
        self.model = model
        self.sampling = sampling

    def next_token(self, sequence: Sequence[int], generator: torch.Generator | None) -> int:
        """Plain autoregressive step (target-only decoding)."""
        logits = self.model.forward(sequence[self.model.cached_length :], 1)[-1]
        return select_token(logits, self.sampling, generator)[0]

    def verify(self, sequence: Sequence[int], proposal: Proposal, generator: torch.Generator | None) -> Verification:
        """Score all drafted tokens in one target forward and accept a prefix of them (a path, for a tree)."""
        if proposal.tree is not None:
            return self._verify_tree(sequence, proposal)
        start = time.perf_counter()
        drafts = proposal.tokens
        logits = self.model.forward(list(sequence[self.model.cached_length :]) + drafts, len(drafts) + 1)
        if self.sampling.greedy:
            accepted, token = verify_greedy(logits, drafts)
        else:
            accepted, token = verify_sampled(logits, drafts, proposal.probs, self.sampling, generator)
        return Verification(accepted, token, time.perf_counter() - start, logits)

    def _verify_tree(self, sequence: Sequence[int], proposal: Proposal) -> Verification:
        """One forward over every node (tree attention); the target's greedy choice walks the accepted path."""
        if not self.sampling.greedy:
            raise InputError(
                "tree verification (CaPE) is greedy only: multi-candidate rejection sampling is not implemented; "
                "use temperature 0, or a chain method for sampling"
            )
        start = time.perf_counter()
        tree = proposal.tree
        logits = self.model.forward_tree(list(sequence[self.model.cached_length :]), tree)
        path, token = tree.accept_greedy(logits.argmax(dim=-1).tolist())
        self.model.keep(len(sequence), path)  # the cache: committed tokens, then the accepted nodes
        return Verification(len(path), token, time.perf_counter() - start, logits, path)
