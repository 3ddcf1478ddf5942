"""The cascade drafter: the draft model reviews Max-Gram, Max-Gram fills the round's tail.

One round (budget = ``k + mag`` tokens, clipped by what is left to generate):

1. Draft level (vertical cascade), until ``k`` tokens: Max-Gram proposes
   ``sub`` tokens; the draft model scores them in *one* forward pass and
   keeps the prefix it agrees with plus one token of its own (its correction,
   or a bonus after a fully accepted proposal). Greedy: agreement = its
   argmax (or, with ``lenience`` > 1, probability > 1/lenience). Sampling:
   exact rejection sampling of the one-hot proposal against the draft's q,
   so every draft-level token is distributed as q and carries q to the target.
   With SVIP on (``h``), the level stops after a token of high draft entropy.
2. Max-Gram level (horizontal cascade): the rest of the budget (``mag``
   tokens, or all that is left after an SVIP stop with ``handoff=1``) straight
   from Max-Gram, each carrying a one-hot q: the target's rejection test with
   q = delta(x) accepts x with probability p(x) and otherwise samples
   p without x, which is exact for any deterministic proposal.

The target verifies the whole proposal in one forward as for any drafter,
so greedy output equals target-only and sampling keeps the target's law.
"""

from __future__ import annotations

import time
from typing import Collection, Sequence

import torch

from svip.adapters.vanilla.cached_model import CachedCausalLM
from svip.adapters.vanilla.proposer import Proposal
from svip.adapters.vanilla.sampling import SamplingConfig, residual_distribution, to_probs
from svip.policies import DraftLengthPolicy, DraftStep

from .maxgram import MaxGram
from .method import CascadeMethod

__all__ = ["CascadeProposer"]


class CascadeProposer:
    """Drop-in for ``DraftProposer`` (same ``propose`` contract, same draft model and cache)."""

    def __init__(self, model: CachedCausalLM, sampling: SamplingConfig, maxgram: MaxGram, method: CascadeMethod, vocab_size: int) -> None:
        if method.lenience > 1 and not sampling.greedy:
            raise ValueError("cascade: lenience > 1 is greedy-only (upstream's rule); sampling reviews exactly so the output keeps the target's law")
        self.model = model
        self.sampling = sampling
        self.maxgram = maxgram
        self.method = method
        self.vocab_size = vocab_size

    @property
    def spec(self) -> str:
        return self.method.spec

    def _one_hot(self, token: int) -> torch.Tensor | None:
        if self.sampling.greedy:
            return None
        q = torch.zeros(self.vocab_size)
        q[token] = 1.0
        return q

    def _review(self, row: torch.Tensor, proposed: int | None, generator) -> tuple[int, torch.Tensor | None, bool]:
        """(token, q it follows, proposal kept?) for one position of a draft-level review."""
        if self.sampling.greedy:
            choice = int(row.argmax())
            if proposed is None:
                return choice, None, False
            keep = proposed == choice or (self.method.lenience > 1 and float(torch.softmax(row.float(), -1)[proposed]) > 1 / self.method.lenience)
            return (proposed, None, True) if keep else (choice, None, False)
        q = to_probs(row, self.sampling)
        if proposed is not None:
            if float(torch.rand((), generator=generator)) < float(q[proposed]):  # min(1, q(x) / 1)
                return proposed, q, True
            fallback = residual_distribution(q, self._one_hot(proposed))
            return int(torch.multinomial(fallback, 1, generator=generator)), q, False
        return int(torch.multinomial(q, 1, generator=generator)), q, False

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
        prompt = sequence[: len(sequence) - generated]
        context = list(sequence)
        proposal = Proposal()
        forwards = 0
        draft_budget = min(self.method.k, budget)
        svip_stopped = finished = False
        while len(proposal.tokens) < draft_budget and not (svip_stopped or finished):
            offered = self.maxgram.propose(prompt, context, self.method.sub)
            pending = context[self.model.cached_length :]
            rows = self.model.forward(pending + offered, len(offered) + 1)
            forwards += 1
            for j, row in enumerate(rows):
                token, q, kept = self._review(row, offered[j] if j < len(offered) else None, generator)
                index = len(proposal.tokens)
                step = DraftStep(index=index, position=generated + index, token=token, logits=row)
                proposal.tokens.append(token)
                proposal.probs.append(q)
                proposal.entropies.append(step.entropy)
                proposal.logits.append(row)
                context.append(token)
                finished = token in stop_tokens
                svip_stopped = not policy.continue_drafting(step)
                if finished or svip_stopped or not kept or len(proposal.tokens) >= draft_budget:
                    break
            self.model.crop(len(context) - 1)  # the cache keeps reviewed inputs that are now in the context
        if not finished and not (svip_stopped and not self.method.handoff):
            for token in self.maxgram.propose(prompt, context, budget - len(proposal.tokens)):
                proposal.tokens.append(token)
                proposal.probs.append(self._one_hot(token))
                context.append(token)
                if token in stop_tokens:
                    break
        proposal.draft_forwards = forwards
        proposal.seconds = time.perf_counter() - start
        return proposal
