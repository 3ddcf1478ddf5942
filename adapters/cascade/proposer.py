"""The cascade drafter: the draft model reviews Max-Gram, Max-Gram fills the round's tail.

One round (budget = ``k + mag`` tokens, clipped by what is left to generate):

1. Draft level (vertical cascade), while it holds fewer than ``k`` tokens:
   Max-Gram proposes up to ``sub`` tokens; the draft model scores them in
   *one* forward pass and keeps the prefix it agrees with plus one token of
   its own (its correction, or a bonus after a fully kept proposal) -- the
   draft's autoregressive drafting, drafted by a cheaper drafter.
   Greedy: agreement = its argmax, or with ``lenience`` > 1 probability
   > 1/lenience (upstream's rule). Sampling: exact rejection sampling of
   Max-Gram's one-hot proposal against the draft's q (accept x with q(x),
   else sample q without x), so the token is distributed as q and carries
   q to the target; a token kept by lenience was chosen deterministically
   and carries a one-hot q instead.
   A draft-length policy (``+svip``) sees every draft-level token and may
   end the level early (its own budget caps it too).
2. Max-Gram level (horizontal cascade): the rest of the budget straight
   from Max-Gram -- ``mag`` tokens after a full draft level; after a policy
   stop everything left with ``handoff=1``, nothing with ``handoff=0`` --
   each carrying a one-hot q.

Why one-hot is exact: the target's test with q = delta(x) accepts x with
probability p(x) and otherwise samples norm(p - delta(x)) = p without x,
which is the law p for any deterministically chosen x. More generally the
target's test is exact for any q a token was really drawn from, whatever
its history; each token here carries exactly that law. The target verifies
the whole proposal in one forward as for any drafter, so greedy output
equals target-only and sampled output keeps the target's distribution.
"""

from __future__ import annotations

import time
from typing import Collection, Sequence

import torch

from svip.interfaces import Proposal, Proposer
from svip.policies import DraftLengthPolicy, DraftStep
from svip.sampling import SamplingConfig

from ..vanilla.cached_model import CachedCausalLM
from ..vanilla.sampling import residual_distribution, to_probs
from .level import DraftLevelPolicy
from .maxgram import MaxGram
from .method import CascadeMethod

__all__ = ["CascadeProposer"]


class CascadeProposer(Proposer):
    """Drop-in for ``DraftProposer`` (same ``propose`` contract, same draft model and cache).

    Give the engine ``method.engine_policy()`` with it, so the draft-level
    policy learns from draft-level counts and the round budget is ``k + mag``.
    """

    def __init__(
        self, model: CachedCausalLM, sampling: SamplingConfig, maxgram: MaxGram, method: CascadeMethod, vocab_size: int
    ) -> None:
        self.model = model
        self.sampling = sampling
        self.maxgram = maxgram
        self.method = method
        self.vocab_size = vocab_size

    @property
    def spec(self) -> str:
        return self.method.spec

    def _one_hot(self, token: int) -> torch.Tensor | None:
        """The law of a deterministically chosen token (None under greedy, where no law is carried)."""
        if self.sampling.greedy:
            return None
        q = torch.zeros(self.vocab_size)
        q[token] = 1.0
        return q

    def _review(
        self, row: torch.Tensor, proposed: int | None, generator: torch.Generator | None
    ) -> tuple[int, torch.Tensor | None, bool]:
        """(token, law it was drawn from, proposal kept?) for one position of a draft-level review."""
        lenient = self.method.lenience > 1
        if self.sampling.greedy:
            choice = int(row.argmax())
            if proposed is None:
                return choice, None, False
            if proposed == choice or (
                lenient and float(torch.softmax(row.float(), -1)[proposed]) > 1 / self.method.lenience
            ):
                return proposed, None, True
            return choice, None, False
        q = to_probs(row, self.sampling)
        if proposed is None:
            return int(torch.multinomial(q, 1, generator=generator)), q, False
        if lenient and float(q[proposed]) > 1 / self.method.lenience:
            return (
                proposed,
                self._one_hot(proposed),
                True,
            )  # kept by rule, not by chance: deterministic given the context
        if float(torch.rand((), generator=generator)) < float(q[proposed]):  # min(1, q(x) / 1)
            return proposed, q, True
        return (
            int(torch.multinomial(residual_distribution(q, self._one_hot(proposed)), 1, generator=generator)),
            q,
            False,
        )

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
        """Up to ``budget`` tokens after ``sequence``: a draft level, then a Max-Gram tail."""
        start = time.perf_counter()
        prompt = sequence[: len(sequence) - generated]
        context = list(sequence)
        proposal = Proposal()
        level_cap = min(budget, policy.level_budget()) if isinstance(policy, DraftLevelPolicy) else budget
        level_goal = min(self.method.k, level_cap)
        stopped = finished = False
        while len(proposal.tokens) < level_goal and not (stopped or finished):
            # The review's last row is the draft's own token, so offer one less than the level may still take.
            offered = self.maxgram.propose(prompt, context, min(self.method.sub, level_cap - len(proposal.tokens) - 1))
            pending = context[self.model.cached_length :]
            rows = self.model.forward(pending + offered, len(offered) + 1)
            proposal.draft_forwards += 1
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
                stopped = not policy.continue_drafting(step)
                if finished or stopped or not kept or len(proposal.tokens) >= level_cap:
                    break
            self.model.crop(len(context) - 1)  # drop reviewed inputs past the kept ones; the last token is fed next
        level = len(proposal.tokens)
        if isinstance(policy, DraftLevelPolicy):
            policy.level_drafted = level
        policy_ended = stopped or level < self.method.k  # its stop rule, or its own budget, ended the level
        if not finished and (self.method.hands_off or not policy_ended):
            for token in self.maxgram.propose(prompt, context, budget - level):
                proposal.tokens.append(token)
                proposal.probs.append(self._one_hot(token))
                context.append(token)
                if token in stop_tokens:
                    break
        proposal.seconds = time.perf_counter() - start
        return proposal
