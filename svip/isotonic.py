"""Least-squares fits that keep an order (pool adjacent violators).

Two estimates here must be monotone whatever their noisy windows say: P(accept | entropy) never rises with the
entropy (``acceptance``), and a forward over more tokens never costs less (``costs``).
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["non_decreasing", "non_increasing"]


def non_increasing(values: Sequence[float], weights: Sequence[float]) -> list[float]:
    """Weighted least-squares fit that never increases: neighbours that violate it are pooled to their mean."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for value, weight in zip(values, weights):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            mean2, weight2, count2 = blocks.pop()
            mean1, weight1, count1 = blocks[-1]
            total = weight1 + weight2
            blocks[-1] = [(mean1 * weight1 + mean2 * weight2) / total, total, count1 + count2]
    return [mean for mean, _, count in blocks for _ in range(int(count))]


def non_decreasing(values: Sequence[float], weights: Sequence[float]) -> list[float]:
    """Weighted least-squares fit that never decreases (the mirror of ``non_increasing``)."""
    return [-value for value in non_increasing([-value for value in values], weights)]
