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

The calibration is kept per size (buckets 1, 2, 3-4, 5-8, ... nodes), each
starting from the run's overall scale: on prompts unlike its training text a
head's deep, unlikely paths are overconfident more than its best ones
(issue 33 measured 0.95 accepted against 1.34 forecast for 17-32 nodes, 1.04
against 1.15 up to 16), so one scale for every size makes big trees look better
than they are. A bucket's record forgets with a horizon of about 50 trees
(back to the overall scale): a size calibrated low by a few early trees is
then never chosen, never observed again, and its record would keep the trees
small for good (issue 33 on AMD Zen 5: 3-4 nodes at 0.53, 2 nodes at 0.80,
so the rule verified 2 nodes a round where the fixed tree's 3 accepted more for
1% more verify time). And a tree never accepts fewer tokens than a prefix of
it (the prefix's accepted path is in the bigger tree), so a size's forecast is
at least every smaller size's, whatever their buckets' calibrations say.

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
_BUCKET_DECAY = 0.98  # a size bucket's record forgets with a horizon of ~50 trees (see the module docstring)


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
        self._pending_bucket = 0
        self._by_size: dict[int, list[float]] = {}  # size bucket -> [accepted, predicted] of trees of that size

    def scale(self) -> float:
        """Measured accepted length per unit of predicted length (1: the draft's path probabilities are right)."""
        return min(_MAX_SCALE, max(_MIN_SCALE, self.accepted / self.predicted))

    def scale_for(self, nodes: int) -> float:
        """The calibration of trees of ``nodes`` nodes: their bucket's record, with the overall scale as its prior."""
        accepted, predicted = self._by_size.get(_bucket(nodes), (0.0, 0.0))
        overall = self.scale()
        return min(_MAX_SCALE, max(_MIN_SCALE, (accepted + self.prior * overall) / (predicted + self.prior)))

    def expected_accepted(self, path_probs: Sequence[float]) -> float:
        """The calibrated accepted length of the tree of ``path_probs`` (sorted, most likely first): at least that
        of any prefix of it."""
        return max(self._forecasts(path_probs), default=0.0)

    def _forecasts(self, path_probs: Sequence[float]) -> list[float]:
        """Calibrated accepted length of every prefix (sizes 1..n), each at least the one before."""
        forecasts: list[float] = []
        best = 0.0
        for bucket in sorted({_bucket(n) for n in range(1, len(path_probs) + 1)}):  # sizes 1, 2, 3-4, 5-8, ...
            scale = self.scale_for(bucket)
            first = bucket // 2 + 1
            clipped = sum(min(1.0, scale * p) for p in path_probs[: first - 1])
            for n in range(first, min(bucket, len(path_probs)) + 1):
                clipped += min(1.0, scale * path_probs[n - 1])
                best = max(best, clipped)
                forecasts.append(best)
        return forecasts

    def best(self, path_probs: Sequence[float], draft_seconds: float) -> tuple[int, float]:
        """The size ``choose`` would pick, without recording it, and its forecast tokens per second (NaN while
        costs are unknown: then every node)."""
        if not path_probs:
            raise ValueError("tree budget: a tree needs at least one drafted node")
        if not self.meter.known:
            return len(path_probs), math.nan
        verify = self.meter.verify_curve()
        best, best_rate = 1, -1.0
        for n, expected in enumerate(self._forecasts(path_probs), start=1):
            rate = (1.0 + expected) / (draft_seconds + verify(n + 1))
            if rate > best_rate:
                best, best_rate = n, rate
        return best, best_rate

    def choose(self, path_probs: Sequence[float], draft_seconds: float) -> int:
        """Nodes to verify (>= 1) among ``path_probs`` (sorted, most likely first); all while costs are unknown."""
        best, _ = self.best(path_probs, draft_seconds)
        self._pending = sum(path_probs[:best])
        self._pending_bucket = _bucket(best)
        return best

    def observe(self, accepted: int) -> None:
        """The verified length of the tree last chosen."""
        self.accepted += accepted
        self.predicted += self._pending
        for forgetting in self._by_size.values():
            forgetting[0] *= _BUCKET_DECAY
            forgetting[1] *= _BUCKET_DECAY
        record = self._by_size.setdefault(self._pending_bucket, [0.0, 0.0])
        record[0] += accepted
        record[1] += self._pending
        self._pending = 0.0


def _bucket(nodes: int) -> int:
    """Sizes share a calibration within powers of two: 1, 2, 3-4, 5-8, 9-16, ... (the bucket's upper bound)."""
    return 1 << max(0, nodes - 1).bit_length()
