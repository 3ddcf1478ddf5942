"""Draft-entropy statistics and the SVIP stop rule.

The SVIP paper ("Draft Model Knows When to Stop", arXiv 2411.18462) bounds the
acceptance rate of a draft token by a function of the draft distribution's
entropy alone, so the draft model can decide when to stop without ever looking
at the target. The rule is: stop once ``sqrt(gamma * H) > h``, where H is the
Shannon entropy (nats) of softmax(raw logits) over the *full* vocabulary.

Everything here is torch/numpy only: no model or framework imports.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

__all__ = ["DEFAULT_GAMMA", "DEFAULT_H", "cross_entropy", "entropy", "svip_score", "should_stop"]

DEFAULT_GAMMA = 0.15
DEFAULT_H = 0.3

Kind = Literal["auto", "logits", "probs"]

_PROB_SUM_TOLERANCE = 1e-3


def _as_float32_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """fp16/bf16 logits lose too much precision in a softmax over 100k+ entries."""
    tensor = torch.as_tensor(x)
    if not torch.is_floating_point(tensor):
        raise TypeError(f"entropy needs a floating-point tensor, got {tensor.dtype}")
    if tensor.ndim == 0:
        raise ValueError("entropy needs at least one dimension (the vocabulary)")
    if tensor.shape[-1] == 0:
        raise ValueError("entropy over an empty vocabulary is undefined")
    return tensor.to(torch.float32)


def _looks_like_probs(x: torch.Tensor) -> bool:
    """A probability vector: finite, within [0, 1], rows summing to 1."""
    if not torch.isfinite(x).all():
        return False
    if (x < 0).any() or (x > 1).any():
        return False
    sums = x.sum(dim=-1)
    return bool(torch.all((sums - 1).abs() < _PROB_SUM_TOLERANCE))


def entropy(x: torch.Tensor | np.ndarray, *, kind: Kind = "auto") -> torch.Tensor:
    """Shannon entropy in nats along the last dimension.

    ``kind="logits"`` computes the entropy of softmax(x) (the paper's setting:
    raw logits, full vocabulary); ``kind="probs"`` treats x as a distribution.
    ``"auto"`` picks "probs" when every row is a valid probability vector and
    "logits" otherwise; engines should pass the kind explicitly because a
    logit row can, rarely, look like a probability vector.

    Computed in fp32 whatever the input dtype; ``-inf`` logits and zero
    probabilities contribute 0 (the limit of p log p), never NaN.
    """
    values = _as_float32_tensor(x)
    if kind == "auto":
        kind = "probs" if _looks_like_probs(values) else "logits"
    if kind == "logits":
        if torch.isnan(values).any():
            raise ValueError("logits contain NaN")
        if torch.isneginf(values).all(dim=-1).any():
            raise ValueError("a row of logits is entirely -inf: no distribution")
        log_probs = torch.log_softmax(values, dim=-1)
        probs = log_probs.exp()
        terms = torch.where(probs > 0, probs * log_probs, torch.zeros_like(probs))
        return (-terms.sum(dim=-1)).clamp_min(0.0)
    if kind == "probs":
        if (values < 0).any() or not torch.isfinite(values).all():
            raise ValueError("probabilities must be finite and non-negative")
        return (-torch.special.xlogy(values, values).sum(dim=-1)).clamp_min(0.0)
    raise ValueError(f"kind must be 'auto', 'logits' or 'probs', not {kind!r}")


def cross_entropy(draft_logits: torch.Tensor | np.ndarray, target_logits: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``H(q, p) = -sum q log p`` in nats, q = softmax(draft), p = softmax(target).

    The paper's Figure 3 shows that H(q, p) / H(q) stays within a narrow band,
    which is why the draft entropy alone predicts the acceptance rate. Both
    inputs are raw logits over the same vocabulary; computed in fp32. Where q
    puts mass on a token p rules out (-inf), the result is +inf.
    """
    q_log = torch.log_softmax(_as_float32_tensor(draft_logits), dim=-1)
    p_log = torch.log_softmax(_as_float32_tensor(target_logits), dim=-1)
    if q_log.shape != p_log.shape:
        raise ValueError(f"draft and target logits differ in shape: {tuple(q_log.shape)} vs {tuple(p_log.shape)}")
    q = q_log.exp()
    terms = torch.where(q > 0, q * p_log, torch.zeros_like(q))
    return -terms.sum(dim=-1)


def svip_score(entropy_nats: torch.Tensor | float, *, gamma: float = DEFAULT_GAMMA) -> torch.Tensor:
    """``sqrt(gamma * H)``: the paper's bound on the draft token's rejection risk."""
    return torch.sqrt(gamma * torch.as_tensor(entropy_nats, dtype=torch.float32))


def should_stop(
    draft_probs: torch.Tensor | np.ndarray,
    *,
    gamma: float = DEFAULT_GAMMA,
    h: float = DEFAULT_H,
    kind: Kind = "auto",
) -> torch.Tensor:
    """The SVIP rule: True where ``sqrt(gamma * H(draft)) > h``.

    Vectorised over leading dimensions: a ``(batch, vocab)`` input gives a
    ``(batch,)`` bool tensor; a ``(vocab,)`` input gives a 0-d bool tensor
    (usable directly in ``if``). The drafted token is kept when this fires;
    the caller stops drafting *after* it.
    """
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    if h < 0:
        raise ValueError(f"h must be >= 0, got {h}")
    return svip_score(entropy(draft_probs, kind=kind), gamma=gamma) > h
