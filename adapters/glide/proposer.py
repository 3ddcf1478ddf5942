"""``GlideProposer``: the draft loop of ``DraftProposer``, with the GliDe draft reading the target's cache.

Each draft forward first points the cross-attention at the target's KV
cache as it stands (the committed tokens but the newest: ``T`` positions)
and gives every query its limit ``min(T, p)``: drafted positions see all
``T``, positions the draft catches up on see only what came before them,
as in training. The very first round of a prompt has no target cache yet,
so it proposes nothing: the engine's verification of an empty proposal is
one target step (the prefill), and GliDe drafts from the next round on, as
upstream does after its prefill.
"""

from __future__ import annotations

import time
from typing import Collection, Sequence

import torch

from svip.interfaces import Proposal, Proposer
from svip.policies import DraftLengthPolicy, DraftStep
from svip.sampling import SamplingConfig

from ..vanilla.cached_model import CachedCausalLM
from ..vanilla.sampling import select_token
from .draft import GlideDraft

__all__ = ["GlideProposer"]


class GlideProposer(Proposer):
    """Drafts with ``draft`` (driven through ``model``, its cache) while reading ``target``'s cache."""

    def __init__(
        self, draft: GlideDraft, model: CachedCausalLM, target: CachedCausalLM, sampling: SamplingConfig
    ) -> None:
        self.draft, self.model, self.target, self.sampling = draft, model, target, sampling

    def _forward(self, tokens: list[int]) -> torch.Tensor:
        start, visible = self.model.cached_length, self.target.cached_length
        positions = torch.arange(start, start + len(tokens))
        self.draft.read_target(self.target.cache, positions.clamp(max=visible)[None])
        try:
            return self.model.forward(tokens, 1)[-1]
        finally:
            self.draft.context.clear()  # never hold the target's tensors past the forward

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
        start = time.perf_counter()
        proposal = Proposal()
        if self.target.cached_length == 0:  # nothing to cross-attend to: the prefill round
            proposal.seconds = time.perf_counter() - start
            return proposal
        pending = list(sequence[self.model.cached_length :])
        for index in range(budget):
            logits = self._forward(pending)
            token, q = select_token(logits, self.sampling, generator)
            step = DraftStep(index=index, position=generated + index, token=token, logits=logits)
            proposal.tokens.append(token)
            proposal.probs.append(q)
            proposal.entropies.append(step.entropy)
            proposal.logits.append(logits)
            pending = [token]
            if token in stop_tokens or not policy.continue_drafting(step):
                break
        proposal.draft_forwards = len(proposal.tokens)
        proposal.seconds = time.perf_counter() - start
        return proposal
