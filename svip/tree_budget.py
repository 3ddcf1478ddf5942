"""How many nodes of a draft tree to verify, priced by this machine's measured verify curve.

EAGLE-2 grows a tree and verifies its ``total_tokens`` most likely nodes
(60 by default, tuned on A100s where a 60-token forward costs about what a
1-token one does). On a CPU the verify cost grows with every node, so the
best size depends on the machine. A node is accepted (greedy) only if its
whole path is the target's choice, so the expected accepted length of a tree
is the sum over its nodes of P(path accepted). With a calibrated draft that
is the path probability ``exp(score)``; the run measures how calibrated the
draft is (accepted length / predicted length, with a prior of 1) and scales
it. The chosen size maximises the round's tokens per second,
``(1 + E[accepted](n)) / (draft seconds + verify(n + 1))``.

Any prefix of the nodes sorted by path score is a tree (a child's path is
never more likely than its parent's), so any size is verified losslessly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from .costs import CostMeter

__all__ = ["TreeBudget"]

_MIN_SCALE, _MAX_SCALE = 0.05, 4.0


@dataclass
class TreeBudget:
    """Chooses a tree's size from its nodes' path probabilities and the meter's verify curve."""

    meter: CostMeter = field(default_factory=CostMeter)
    prior: float = 4.0  # pseudo-tokens behind "the draft is calibrated" (scale 1)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.prior) and self.prior > 0):
            raise ValueError(f"tree budget: prior must be a finite number > 0, got {self.prior!r}")
        self.accepted = self.prior
        self.predicted = self.prior
        self._pending = 0.0

    def scale(self) -> float:
        """Measured accepted length per unit of predicted length (1: the draft's path probabilities are right)."""
        return min(_MAX_SCALE, max(_MIN_SCALE, self.accepted / self.predicted))

    def expected_accepted(self, path_probs: Sequence[float]) -> float:
        scale = self.scale()
        return sum(min(1.0, scale * p) for p in path_probs)

    def choose(self, path_probs: Sequence[float], draft_seconds: float) -> int:
        """Nodes to verify (>= 1) among ``path_probs`` (sorted, most likely first); all while costs are unknown."""
        if not path_probs:
            raise ValueError("tree budget: a tree needs at least one drafted node")
        if not self.meter.known:
            best = len(path_probs)
        else:
            scale, expected, best, best_rate = self.scale(), 0.0, 1, -1.0
            for n, p in enumerate(path_probs, start=1):
                expected += min(1.0, scale * p)
                rate = (1.0 + expected) / (draft_seconds + self.meter.verify(n + 1))
                if rate > best_rate:
                    best, best_rate = n, rate
        self._pending = sum(path_probs[:best])
        return best

    def observe(self, accepted: int) -> None:
        """The verified length of the tree last chosen."""
        self.accepted += accepted
        self.predicted += self._pending
        self._pending = 0.0
