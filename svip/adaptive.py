"""``svip-adaptive``: SVIP's entropy signal priced with this machine's measured costs.

SVIP stops once the draft entropy crosses a fixed threshold tuned on A100s,
where scoring more tokens is almost free. On a CPU the marginal verify cost
can be half a step, and then the same threshold drafts too far. This policy
keeps SVIP's premise (the draft's entropy predicts acceptance) and replaces
the fixed threshold by a price comparison:

- *value* of one more draft token: the probability that every token drafted
  so far is accepted (per token from ``AcceptanceModel``: prior
  ``1 - sqrt(gamma*H)``, then the run's own verifications) times the
  probability that a token after an accepted one is accepted (the next
  token's entropy is not known before drafting it, so this is the run's
  measured rate, a Beta posterior over judged non-first tokens whose
  evidence decays back to the prior: the rule only judges second tokens it
  chose to draft, and must not be locked out of them by an unlucky start);
- *price*: one draft step plus the marginal verify cost
  ``verify(n+2) - verify(n+1)``, from ``CostMeter`` (seeded by a measured
  curve, updated by every round's timings);
- keep drafting while value / price >= the throughput the run reaches (tokens
  per second over recent rounds, never below target-only's ``1/step``): the
  Dinkelbach condition for a ratio objective, so a token is drafted only if
  it raises tokens per second. The comparison looks up to ``_LOOKAHEAD``
  tokens ahead (the best value/price of drafting ``j`` more, token ``n + j``
  accepted with ``P(all so far) * q**j``): where verifying costs less per
  token the more tokens it scores (llama.cpp's CPU curve: 2 -> 4 tokens cost
  twice as much per token as 8 -> 16), one more token can cost more than it
  brings while a few more pay, and a rule looking one token ahead stops at
  the dear first ones. On a flat or convex curve the first ``j`` is the best
  and nothing changes.

If even the best round does not pay (expected ``1 + a1*(1 + q + ... +
q**(k-1))`` tokens for ``k*draft + verify(k+1)`` seconds below one token per
``verify(1)`` for every ``k``, ``a1`` the measured acceptance of first
tokens, ``q`` that of later ones), the round budget drops to 0: the engine decodes target-only
and probes with one speculative round after ``probe`` steps, waiting twice as
long after every probe that does not change the verdict (up to 16x; the
count runs across prompts, since a probe on a new prompt also pays the
draft's prefill), so a hardware regime where drafting cannot pay costs a
few percent.

One instance learns across the prompts of a run (``learns_across_prompts``);
``start_sequence`` resets only the round in progress.

A tree drafter (EAGLE-2) prices a *level* instead of a token: it sets
``verify_tokens`` (drafted levels -> tokens the target scores), and the same
comparison decides the tree's depth.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Callable, ClassVar, Mapping

from .acceptance import AcceptanceModel, judged_outcomes
from .costs import CostMeter, RoundTiming
from .entropy import DEFAULT_GAMMA, DEFAULT_H
from .policies import DraftLengthPolicy, DraftStep, _check

__all__ = ["AdaptiveSvipPolicy"]

_FIRST_PRIOR_MEAN = 0.6
_NEXT_PRIOR_MEAN = 0.75
_FIRST_DECAY = 0.95  # first-token acceptance forgets with a horizon of ~20 rounds (regimes drift)
# The rate after an accepted token forgets its evidence (back towards the prior) with a horizon of ~50 drafting
# rounds. Without it a few early rejections of second tokens price every second token below its cost, the rule
# then drafts one token a round and never judges a second one again: one thread, bf16, 12 questions, it stayed at
# k=1 for 223 rounds (1.25x) where SVIP reached 1.44x.
_NEXT_DECAY = 0.98
_MIN_FIRST_EVIDENCE = 4.0  # judged first tokens before the policy may stop drafting altogether
_RECENT_ROUNDS = 64
_LOOKAHEAD = 16  # draft tokens the price comparison looks ahead
_MAX_BACKOFF = 16


@dataclass
class AdaptiveSvipPolicy(DraftLengthPolicy):
    """Draft while the expected extra tokens per marginal second beat the run's throughput."""

    name: ClassVar[str] = "svip-adaptive"
    learns_across_prompts: ClassVar[bool] = True
    gamma: float = DEFAULT_GAMMA  # the prior: P(accept) ~ 1 - sqrt(gamma*H)
    prior: float = 4.0  # pseudo-observations behind the prior, per entropy bin
    probe: int = 16  # target-only steps between probe rounds once drafting does not pay

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(
            math.isfinite(self.gamma) and self.gamma > 0,
            f"svip-adaptive: gamma must be a finite number > 0, got {self.gamma!r}",
        )
        _check(
            math.isfinite(self.prior) and self.prior > 0,
            f"svip-adaptive: prior must be a finite number > 0, got {self.prior!r}",
        )
        _check(
            isinstance(self.probe, int) and self.probe >= 1,
            f"svip-adaptive: probe must be an integer >= 1, got {self.probe!r}",
        )
        self.meter = CostMeter()
        self.acceptance = AcceptanceModel(gamma=self.gamma, prior=self.prior)  # token i | its own entropy
        self.next_accepted = self.prior * _NEXT_PRIOR_MEAN  # judged tokens after an accepted one (Beta counts)
        self.next_judged = self.prior
        self.first_accepted = self.prior * _FIRST_PRIOR_MEAN
        self.first_judged = self.prior
        self.first_evidence = 0.0
        self.drafting_pays = True
        self._backoff = 1
        self._recent: deque[tuple[int, int]] = deque(maxlen=_RECENT_ROUNDS)  # (tokens emitted, drafted) per round
        self._fallback_entropy = DEFAULT_H * DEFAULT_H / DEFAULT_GAMMA  # plain SVIP until costs are known
        self._steps_since_probe = 0
        self.verify_tokens: Callable[[int], int] = _one_per_token  # drafted -> tokens scored by the verify forward
        self._start_round()

    # -- costs --------------------------------------------------------------
    def seed_costs(self, curve: Mapping) -> None:
        self.meter.seed(curve)

    def observe_timing(self, timing: RoundTiming) -> None:
        self.meter.observe(timing)

    def throughput(self) -> float:
        """Tokens per second to beat: recent rounds at the meter's prices, never below target-only."""
        floor = 1.0 / self.meter.step()
        tokens = sum(t for t, _ in self._recent)
        seconds = sum(self.round_cost(drafted) for _, drafted in self._recent)
        return max(floor, tokens / seconds) if seconds > 0 else floor

    def next_token_acceptance(self) -> float:
        """P(a draft token is accepted | every earlier token of its round was): the run's rate so far."""
        return self.next_accepted / self.next_judged

    def first_token_acceptance(self) -> float:
        return self.first_accepted / self.first_judged

    def _drafting_pays(self) -> bool:
        """Whether some round length beats a target-only step at the measured acceptance and prices."""
        if self.first_evidence < _MIN_FIRST_EVIDENCE:
            return True
        target_only = 1 / self.meter.step()
        tokens, accepted = 1.0, self.first_token_acceptance()
        for drafted in range(1, min(self.max_draft, _LOOKAHEAD) + 1):
            tokens += accepted
            accepted *= self.next_token_acceptance()
            if tokens / self.round_cost(drafted) >= target_only:
                return True
        return False

    def best_rate(self, drafted: int) -> float:
        """The best expected extra tokens per second of drafting 1 .. ``_LOOKAHEAD`` more tokens after ``drafted``."""
        verify, draft, rate = self.meter.verify_curve(), self.meter.draft(), self.next_token_acceptance()
        verified = verify(self.verify_tokens(drafted))
        best, value, accepted = 0.0, 0.0, self._all_accepted
        for more in range(1, max(1, min(_LOOKAHEAD, self.max_draft - drafted)) + 1):
            accepted *= rate
            value += accepted
            price = more * draft + verify(self.verify_tokens(drafted + more)) - verified
            best = max(best, value / max(price, 1e-12))
        return best

    def round_cost(self, drafted: int) -> float:
        """Seconds of a round that drafts ``drafted`` tokens (levels, for a tree); 0: a target-only step."""
        return self.meter.round_cost(drafted, self.verify_tokens(drafted))

    # -- the engine's calls -------------------------------------------------
    def _start_round(self) -> None:
        self._entropies: list[float] = []
        self._all_accepted = 1.0  # P(every token drafted so far is accepted)

    def start_sequence(self) -> None:
        self._start_round()

    def round_budget(self) -> int:
        if self.drafting_pays:
            return self.max_draft
        self._steps_since_probe += 1
        if self._steps_since_probe > self.probe * self._backoff:
            self._steps_since_probe = 0
            self._backoff = min(_MAX_BACKOFF, self._backoff * 2)  # undone below if the probe changes the verdict
            return self.max_draft
        return 0

    def continue_drafting(self, step: DraftStep) -> bool:
        entropy = step.entropy
        self._entropies.append(entropy)
        self._all_accepted *= self.acceptance(entropy)
        if not self.meter.known:
            return entropy <= self._fallback_entropy
        return self.best_rate(len(self._entropies)) >= self.throughput()

    def observe(self, drafted: int, accepted: int) -> None:
        if drafted == 0:  # a target-only step
            self._recent.append((1, 0))
            self._start_round()
            return
        entropies = self._entropies[:drafted]  # a stop token ends a round without a policy call
        outcomes = judged_outcomes(drafted, accepted)
        self.acceptance.add_round(entropies, min(accepted, len(entropies)))
        prior_accepted = self.prior * _NEXT_PRIOR_MEAN
        self.next_accepted = prior_accepted + (self.next_accepted - prior_accepted) * _NEXT_DECAY + sum(outcomes[1:])
        self.next_judged = self.prior + (self.next_judged - self.prior) * _NEXT_DECAY + len(outcomes[1:])
        self.first_accepted = self.first_accepted * _FIRST_DECAY + float(accepted > 0)
        self.first_judged = self.first_judged * _FIRST_DECAY + 1.0
        self.first_evidence += 1.0
        self._recent.append((accepted + 1, drafted))
        if self.meter.known:
            self.drafting_pays = self._drafting_pays()
            if self.drafting_pays:
                self._backoff = 1
        self._start_round()


def _one_per_token(drafted: int) -> int:
    """A chain: the drafted tokens plus the last verified one."""
    return drafted + 1
