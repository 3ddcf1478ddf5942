"""transformers' online re-fit of its confidence threshold, without scikit-learn.

``AssistedCandidateGenerator.update_candidate_strategy`` (transformers 5.x)
collects, per ``generate()`` call, the draft probability of every judged
drafted token (accepted: 1; the first rejected: 0; later ones were never
judged and are dropped), and once it has more than 5 with both labels present
sets ``assistant_confidence_threshold`` to the ROC threshold minimising
``fpr + 3 * fnr`` (``sklearn.metrics.roc_curve``, default
``drop_intermediate=True``). ``roc_threshold`` reproduces that computation
step by step so the vanilla loop runs the same rule with the core's
dependencies only; ``tests/test_rivals.py`` checks it against scikit-learn.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["FALSE_NEGATIVE_WEIGHT", "MIN_SAMPLES", "roc_curve", "roc_threshold"]

FALSE_NEGATIVE_WEIGHT = 3.0  # transformers: "a cost of 25% is assigned to false positives and 75% to false negatives"
MIN_SAMPLES = 5  # transformers re-fits once it holds more than this many judged tokens


def roc_curve(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) as ``sklearn.metrics.roc_curve(labels, scores)`` returns them."""
    y_true = np.asarray(labels, dtype=float)
    y_score = np.asarray(scores, dtype=float)
    order = np.argsort(y_score, kind="mergesort")[::-1]
    y_score, y_true = y_score[order], y_true[order]
    distinct = np.where(np.diff(y_score))[0]
    threshold_idxs = np.r_[distinct, y_true.size - 1]
    tps = np.cumsum(y_true)[threshold_idxs]
    fps = 1 + threshold_idxs - tps
    thresholds = y_score[threshold_idxs]
    if len(fps) > 2:  # drop points on straight segments of the curve, as sklearn does by default
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    thresholds = np.r_[np.inf, thresholds]
    return fps / fps[-1], tps / tps[-1], thresholds


def roc_threshold(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """The threshold transformers adopts from these judged tokens, or None while it would keep its own."""
    if len(scores) <= MIN_SAMPLES or not {0, 1} <= set(int(v) for v in labels):
        return None
    fpr, tpr, thresholds = roc_curve(labels, scores)
    costs = fpr + FALSE_NEGATIVE_WEIGHT * (1 - tpr)
    return float(thresholds[int(np.argmin(costs))])
