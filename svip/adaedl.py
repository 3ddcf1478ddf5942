"""``adaedl``: AdaEDL's entropy stop with its threshold adapted online (Agrawal, Jeon, Lee, arXiv 2410.18351).

The rule, as the paper states it (Section 3, Algorithm 1): before drafting the
next token, with H the entropy of the draft's distribution for it, stop if

    1 - sqrt(gamma * H) < lambda                      (the entropy-based lower bound on acceptance)

and after every round that drafted ``n`` tokens of which ``a`` were accepted

    AR      <- beta1 * AR + (1 - beta1) * a / n       (moving average of the round's acceptance)
    lambda' =  lambda + eps   if AR < alpha
               lambda - eps   elif a != L             (L: the maximum draft length)
               lambda         otherwise
    lambda  <- beta2 * lambda + (1 - beta2) * lambda'

with the paper's values gamma = 0.2, beta1 = 0.5, beta2 = 0.9, eps = 0.01, alpha = 0.9 (Section 3.1).

Where this comes from: the paper's own text was not reachable from this
machine; the rule and values above are those of two independent public
re-implementations that quote Algorithm 1 (nithinj25/mini_project
``specdec.py``, and an ``AdaEDLPolicy`` in the stored code corpus) and agree
with a detailed paper note (uni042/llm-paper-summary, the 2410.18351 note).
One published re-implementation tests the decrease branch the other way
round (``AR > alpha and a == L``); we follow the two that agree.

What the paper leaves open, chosen here (and said in docs/policies.md):

- the initial ``lambda`` (the paper sweeps 0.3-0.9): ``lam=0.7``, where AdaEDL
  starts as SVIP's ``h = 0.3`` bound at ``gamma = 0.2``;
- the initial ``AR``: ``alpha`` (so the first rounds do not read as a miss);
- at least one token per round: the first token of a round is always drafted
  (as SVIP), which also keeps ``a / n`` defined;
- state per generation (a fresh instance per prompt), as the paper's
  "short generations may not let the threshold settle" implies;
- ``L`` is ``max`` (default 16, the paper's largest draft length).

``drop=1`` (the default) is the paper's stop *before* the token: the token
whose bound fails is not proposed (its draft forward is spent). The vanilla
engine and ``svip simulate`` can leave it out; adapters whose loop keeps every
drafted token (transformers' stopping criteria, vLLM, EAGLE, the cascade)
refuse ``drop=1`` and take ``drop=0``: the crossing token kept, as SVIP does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from .policies import DraftLengthPolicy, DraftStep, _check

__all__ = ["AdaEdlPolicy"]


@dataclass
class AdaEdlPolicy(DraftLengthPolicy):
    """Stop when ``1 - sqrt(gamma*H) < lambda``; ``lambda`` follows the observed acceptance (Algorithm 1)."""

    name: ClassVar[str] = "adaedl"
    lam: float = 0.7
    gamma: float = 0.2
    alpha: float = 0.9
    beta1: float = 0.5
    beta2: float = 0.9
    eps: float = 0.01
    drop: int = 1
    max_draft: int = 16
    _lambda: float = field(default=0.0, init=False, repr=False)
    _acceptance: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("lam", "alpha", "beta1", "beta2"):
            value = getattr(self, key)
            _check(math.isfinite(value) and 0 <= value <= 1, f"adaedl: {key} must be in [0, 1], got {value!r}")
        _check(math.isfinite(self.gamma) and self.gamma > 0, f"adaedl: gamma must be > 0, got {self.gamma!r}")
        _check(math.isfinite(self.eps) and self.eps >= 0, f"adaedl: eps must be >= 0, got {self.eps!r}")
        _check(self.drop in (0, 1), f"adaedl: drop must be 0 or 1, got {self.drop!r}")
        self.start_sequence()

    @property
    def drops_crossing_token(self) -> bool:
        return bool(self.drop)

    @property
    def threshold(self) -> float:
        """The ``lambda`` in force."""
        return self._lambda

    @property
    def acceptance(self) -> float:
        """``AR``, the moving average of the rounds' acceptance."""
        return self._acceptance

    def lower_bound(self, entropy: float) -> float:
        """``1 - sqrt(gamma*H)``: the paper's entropy-based lower bound on the token's acceptance."""
        return 1.0 - math.sqrt(self.gamma * max(entropy, 0.0))

    def start_sequence(self) -> None:
        self._lambda, self._acceptance = self.lam, self.alpha

    def continue_drafting(self, step: DraftStep) -> bool:
        if self.drop and step.index == 0:
            return True  # the paper checks before a token; the first of a round is always drafted
        return self.lower_bound(step.entropy) >= self._lambda

    def observe(self, drafted: int, accepted: int) -> None:
        if drafted == 0:
            return  # no round was drafted (an engine's target-only step): nothing observed
        self._acceptance = self.beta1 * self._acceptance + (1 - self.beta1) * accepted / drafted
        if self._acceptance < self.alpha:
            proposed = self._lambda + self.eps
        elif accepted != self.max_draft:
            proposed = self._lambda - self.eps
        else:
            proposed = self._lambda
        self._lambda = self.beta2 * self._lambda + (1 - self.beta2) * proposed
