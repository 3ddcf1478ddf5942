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

from typing import Sequence

import torch

from svip.interfaces import Proposal
from svip.sampling import SamplingConfig

from ..vanilla.cached_model import CachedCausalLM
from ..vanilla.proposer import DraftProposer
from .draft import GlideDraft

__all__ = ["GlideProposer"]


class GlideProposer(DraftProposer):
    """``DraftProposer``'s loop with the GliDe draft (driven through ``model``) reading ``target``'s cache."""

    def __init__(
        self, draft: GlideDraft, model: CachedCausalLM, target: CachedCausalLM, sampling: SamplingConfig
    ) -> None:
        super().__init__(model, sampling)
        self.draft, self.target = draft, target

    def _next_logits(self, pending: list[int]) -> torch.Tensor:
        start, visible = self.model.cached_length, self.target.cached_length
        positions = torch.arange(start, start + len(pending))
        self.draft.read_target(self.target.cache, positions.clamp(max=visible)[None])
        try:
            return super()._next_logits(pending)
        finally:
            self.draft.context.clear()  # never hold the target's tensors past the forward

    def propose(self, sequence: Sequence[int], **kwargs) -> Proposal:
        if self.target.cached_length == 0:  # nothing to cross-attend to: the prefill round proposes nothing
            return Proposal()
        return super().propose(sequence, **kwargs)
