"""The draft side: propose tokens one at a time until the policy says stop."""

from __future__ import annotations

import time
from typing import Collection, Sequence

import torch

from svip.interfaces import Proposal, Proposer
from svip.policies import DraftLengthPolicy, DraftStep
from svip.sampling import SamplingConfig

from .cached_model import CachedCausalLM
from .sampling import select_token

__all__ = ["Proposal", "DraftProposer"]


class DraftProposer(Proposer):
    """Autoregressive drafting with a small model (a ``svip.interfaces.Proposer``); never sees the target."""

    def __init__(self, model: CachedCausalLM, sampling: SamplingConfig) -> None:
        self.model = model
        self.sampling = sampling

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
        """Draft up to ``budget`` tokens after ``sequence`` (``generated`` of them are new tokens)."""
        start = time.perf_counter()
        proposal = Proposal()
        pending = list(sequence[self.model.cached_length :])
        if generated > 0 and len(pending) > 2:
            pending = self._catch_up(pending, proposal)
        for index in range(budget):
            logits = self._next_logits(pending)
            proposal.draft_forwards += 1  # one forward per drafted token, kept or not
            token, q = select_token(logits, self.sampling, generator)
            step = DraftStep(index=index, position=generated + index, token=token, logits=logits)
            proposal.tokens.append(token)
            proposal.probs.append(q)
            proposal.entropies.append(step.entropy)
            proposal.logits.append(logits)
            pending = [token]
            if token in stop_tokens:
                break
            if not policy.continue_drafting(step):
                if policy.drops_crossing_token and index > 0:
                    self._leave_out_last(proposal)  # drafted, but the rule stops before it (AdaEDL)
                break
        proposal.seconds = time.perf_counter() - start
        return proposal

    def _catch_up(self, pending: list[int], proposal: Proposal) -> list[int]:
        """Feed the tokens decoded without the draft in a forward of their own; what is left to feed.

        After target-only steps (a cost-aware rule that found drafting does not
        pay) the first draft forward would also carry the skipped tokens, and
        its seconds would price a draft step at several. Timing the catch-up
        apart lets the probe round measure a real draft step, so a transient
        slowdown does not switch drafting off for good. The prompt's prefill
        is not split: it is priced out anyway and happens every prompt.
        """
        start = time.perf_counter()
        self._next_logits(pending[:-1])
        proposal.catch_up_seconds = time.perf_counter() - start
        return pending[-1:]

    @staticmethod
    def _leave_out_last(proposal: Proposal) -> None:
        for values in (proposal.tokens, proposal.probs, proposal.entropies, proposal.logits):
            values.pop()

    def _next_logits(self, pending: list[int]) -> torch.Tensor:
        """Feed ``pending`` to the draft; its logits for the next token (a GliDe draft reads the target here too)."""
        return self.model.forward(pending, 1)[-1]
