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

The calibration is kept per depth, each starting from the run's overall
scale. At most one node of a depth lies on the target's path, so the
verified nodes of depth d hold it with probability the sum of their path
probabilities, and a round accepts d tokens or more exactly when one of them
does: depth d's scale is (rounds that accepted >= d tokens) / (their nodes'
summed probabilities). A head's deep, unlikely paths are overconfident more
than its first ones (issue 33: 0.95 accepted against 1.34 forecast for 17-32
nodes, 1.04 against 1.15 up to 16), and a scale per tree size, as before,
gave a tree's deep nodes its first ones' credit (issue 33 on AMD Zen 5: the
adaptive tree drafted 1.9 levels a round against the fixed tree's 1.35, and
lost in drafting time what it won in tokens). Each node is priced by its own
depth's scale, so adding a node never lowers a forecast.

A depth's record forgets with a horizon of about 50 trees (back to the overall
scale): a depth calibrated low by a few early trees is then never verified,
never observed again, and would keep the trees shallow for good (issue 33 on
AMD Zen 5, with the per-size scale: 3-4 node trees at 0.53, 2 nodes at 0.80,
and the rule verified 2 nodes in 371 of 393 rounds).

Any prefix of the nodes sorted by path score is a tree (a child's path is
never more likely than its parent's), so any size is verified losslessly.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Optional, Sequence

from .costs import CostMeter

__all__ = ["TreeBudget"]

_MIN_SCALE, _MAX_SCALE = 0.05, 4.0
_DEPTH_DECAY = 0.98  # a depth's record forgets with a horizon of ~50 trees (see the module docstring)


@dataclass
class TreeBudget:
    """Chooses a tree's size from its nodes' path probabilities (and depths) and the meter's verify curve."""

    meter: CostMeter = field(default_factory=CostMeter)
    prior: float = 4.0  # pseudo-tokens behind "the draft is calibrated" (scale 1)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.prior) and self.prior > 0):
            raise ValueError(f"tree budget: prior must be a finite number > 0, got {self.prior!r}")
        self.accepted = self.prior
        self.predicted = self.prior
        self._pending: dict[int, float] = {}  # depth -> summed path probabilities of the chosen tree's nodes
        self._by_depth: dict[int, list[float]] = {}  # depth -> [rounds accepting >= depth, predicted], fading

    def scale(self) -> float:
        """Measured accepted length per unit of predicted length (1: the draft's path probabilities are right)."""
        return min(_MAX_SCALE, max(_MIN_SCALE, self.accepted / self.predicted))

    def scale_at(self, depth: int) -> float:
        """The calibration of nodes ``depth`` levels below the root: their record, the overall scale as its prior."""
        accepted, predicted = self._by_depth.get(depth, (0.0, 0.0))
        return min(_MAX_SCALE, max(_MIN_SCALE, (accepted + self.prior * self.scale()) / (predicted + self.prior)))

    def expected_accepted(self, path_probs: Sequence[float], depths: Optional[Sequence[int]] = None) -> float:
        """The calibrated accepted length of the tree of ``path_probs`` (depths unknown: the overall scale)."""
        forecasts = self._forecasts(path_probs, depths)
        return forecasts[-1] if forecasts else 0.0

    def _forecasts(self, path_probs: Sequence[float], depths: Optional[Sequence[int]]) -> list[float]:
        """Calibrated accepted length of every prefix (sizes 1..n)."""
        if depths is not None and len(depths) != len(path_probs):
            raise ValueError(f"tree budget: {len(depths)} depths for {len(path_probs)} nodes")
        overall = self.scale()
        scales = {d: self.scale_at(d) for d in set(depths)} if depths is not None else {}
        forecasts, total = [], 0.0
        for i, p in enumerate(path_probs):
            total += min(1.0, (scales[depths[i]] if depths is not None else overall) * p)
            forecasts.append(total)
        return forecasts

    def best(
        self, path_probs: Sequence[float], draft_seconds: float, depths: Optional[Sequence[int]] = None
    ) -> tuple[int, float]:
        """The size ``choose`` would pick, without recording it, and its forecast tokens per second (NaN while
        costs are unknown: then every node)."""
        if not path_probs:
            raise ValueError("tree budget: a tree needs at least one drafted node")
        if not self.meter.known:
            return len(path_probs), math.nan
        verify = self.meter.verify_curve()
        best, best_rate = 1, -1.0
        for n, expected in enumerate(self._forecasts(path_probs, depths), start=1):
            rate = (1.0 + expected) / (draft_seconds + verify(n + 1))
            if rate > best_rate:
                best, best_rate = n, rate
        return best, best_rate

    def choose(self, path_probs: Sequence[float], draft_seconds: float, depths: Optional[Sequence[int]] = None) -> int:
        """Nodes to verify (>= 1) among ``path_probs`` (sorted, most likely first; ``depths``: each node's
        level below the root, 1 = the root's children); all while costs are unknown."""
        best, _ = self.best(path_probs, draft_seconds, depths)
        self._pending = defaultdict(float)
        for i, p in enumerate(path_probs[:best]):
            self._pending[depths[i] if depths is not None else 0] += p
        return best

    def observe(self, accepted: int) -> None:
        """The verified length of the tree last chosen."""
        self.accepted += accepted
        self.predicted += sum(self._pending.values())
        for record in self._by_depth.values():
            record[0] *= _DEPTH_DECAY
            record[1] *= _DEPTH_DECAY
        for depth, predicted in self._pending.items():
            if depth > 0:  # 0: depths unknown, the overall scale only
                record = self._by_depth.setdefault(depth, [0.0, 0.0])
                record[0] += float(accepted >= depth)
                record[1] += predicted
        self._pending = {}
