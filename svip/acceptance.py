"""P(accept | draft entropy), learned from the run's own verifications.

The SVIP paper bounds a draft token's acceptance rate by ``1 - sqrt(gamma*H)``;
how tight that is depends on the model pair. ``AcceptanceModel`` starts from
the bound as a prior and adds the outcomes the target reports, so it is
usable from the first round and sharpens with use:

- the prior's own ``gamma`` is re-fitted to every judged token so far
  (maximum likelihood over a grid, held near the paper's value by
  ``prior`` pseudo-observations): one parameter, so evidence from the
  frequent low-entropy tokens also moves the estimate at entropies seen
  rarely -- a rule that stops at those would otherwise never learn them;
- each entropy bin then has a Beta posterior around that curve
  (``prior`` pseudo-observations), and bins are pooled so the estimate never
  rises with entropy (pool-adjacent-violators, weighted by evidence).

Counting follows the one rule of per-token acceptance: in a round where the
target accepted ``a`` of ``n`` drafted tokens, tokens ``0..a-1`` were accepted,
token ``a`` (if drafted) was rejected, and the rest were never judged: they
are not evidence either way.
"""

from __future__ import annotations

import bisect
import math
from typing import Sequence

from .isotonic import non_increasing

__all__ = ["ENTROPY_EDGES", "AcceptanceModel", "judged_outcomes"]

# Bin edges in nats; the last bin is open. Fine at low entropy, where most draft tokens sit.
ENTROPY_EDGES: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
_LAST_BIN_ENTROPY = 4.0
_PRIOR_FLOOR, _PRIOR_CEIL = 0.02, 0.98


def judged_outcomes(drafted: int, accepted: int) -> list[bool]:
    """Outcome of every judged token of a round: ``accepted`` Trues, then one False if a token was rejected."""
    if not 0 <= accepted <= drafted:
        raise ValueError(f"accepted={accepted} outside [0, drafted={drafted}]")
    return [True] * accepted + ([False] if accepted < drafted else [])


def _bin_entropy(index: int) -> float:
    """A representative entropy of a bin (its midpoint; a fixed value for the open last bin)."""
    if index + 1 < len(ENTROPY_EDGES):
        return (ENTROPY_EDGES[index] + ENTROPY_EDGES[index + 1]) / 2
    return _LAST_BIN_ENTROPY


def _bound(gamma: float, index: int) -> float:
    """The SVIP curve ``1 - sqrt(gamma*H)`` at a bin, kept inside (0, 1)."""
    return min(_PRIOR_CEIL, max(_PRIOR_FLOOR, 1 - math.sqrt(gamma * _bin_entropy(index))))


_GAMMA_GRID = tuple(10 ** (-4 + 4.5 * i / 90) for i in range(91))  # 1e-4 .. ~3.2, log-spaced


def _log_likelihood(gamma: float, weights: list[tuple[float, float]]) -> float:
    total = 0.0
    for index, (accepted, rejected) in enumerate(weights):
        p = _bound(gamma, index)
        total += accepted * math.log(p) + rejected * math.log(1 - p)
    return total


class AcceptanceModel:
    """Beta posterior per entropy bin, prior mean ``1 - sqrt(gamma*H)`` with ``prior`` pseudo-counts."""

    def __init__(self, *, gamma: float = 0.15, prior: float = 4.0) -> None:
        if not (math.isfinite(gamma) and gamma > 0):
            raise ValueError(f"gamma must be a finite number > 0, got {gamma!r}")
        if not (math.isfinite(prior) and prior > 0):
            raise ValueError(f"prior must be a finite number > 0, got {prior!r}")
        self.gamma, self.prior = gamma, prior
        bins = len(ENTROPY_EDGES)
        self.prior_mean = [_bound(gamma, i) for i in range(bins)]
        self.accepted = [0.0] * bins
        self.judged = [0.0] * bins
        self._table: list[float] | None = None
        self._fitted_gamma: float | None = None

    @staticmethod
    def bin_of(entropy: float) -> int:
        return max(0, bisect.bisect_right(ENTROPY_EDGES, entropy) - 1)

    def add(self, entropy: float, accepted: bool) -> None:
        """One judged token."""
        index = self.bin_of(entropy)
        self.judged[index] += 1
        self.accepted[index] += float(accepted)
        self._table = self._fitted_gamma = None

    def add_round(self, entropies: Sequence[float], accepted: int) -> int:
        """A round's judged tokens (``entropies`` of the drafted tokens in order); returns how many counted."""
        outcomes = judged_outcomes(len(entropies), accepted)
        for entropy, outcome in zip(entropies, outcomes):
            self.add(entropy, outcome)
        return len(outcomes)

    def fitted_gamma(self) -> float:
        """``gamma`` of ``1 - sqrt(gamma*H)`` that best explains the judged tokens (the prior's value without any)."""
        if self._fitted_gamma is None and not any(self.judged):
            self._fitted_gamma = self.gamma
        if self._fitted_gamma is None:
            pseudo = self.prior / len(self.judged)  # the paper's curve, as a few observations spread over the bins
            weights = [
                (a + pseudo * m, n - a + pseudo * (1 - m))
                for a, n, m in zip(self.accepted, self.judged, self.prior_mean)
            ]
            self._fitted_gamma = max((*_GAMMA_GRID, self.gamma), key=lambda g: _log_likelihood(g, weights))
        return self._fitted_gamma

    def posterior(self) -> list[float]:
        """Posterior mean per bin (around the fitted curve) before pooling."""
        gamma = self.fitted_gamma()
        return [
            (self.prior * _bound(gamma, i) + a) / (self.prior + n)
            for i, (a, n) in enumerate(zip(self.accepted, self.judged))
        ]

    def table(self) -> list[float]:
        """Posterior means pooled to be non-increasing in entropy."""
        if self._table is None:
            weights = [self.prior + n for n in self.judged]
            self._table = non_increasing(self.posterior(), weights)
        return self._table

    def __call__(self, entropy: float) -> float:
        """P(this token is accepted | every earlier token of its round was, its draft entropy)."""
        return self.table()[self.bin_of(entropy)]
