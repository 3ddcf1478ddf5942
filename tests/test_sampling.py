"""Rejection sampling is exactly lossless; a broken residual is caught.

The exact test enumerates every draft token: the probability that the
verification step emits token y is
    sum_x q(x) [a(x) 1{y = x} + (1 - a(x)) r(y)],   a(x) = min(1, p(x)/q(x)),
which must equal p(y). It is computed from the same functions the engine
uses, so a wrong acceptance rule or residual fails here.
"""

from __future__ import annotations

import pytest
import torch

from svip.adapters.vanilla.sampling import (
    SamplingConfig,
    acceptance_probability,
    residual_distribution,
    to_probs,
    verify_greedy,
    verify_sampled,
)


def output_distribution(p: torch.Tensor, q: torch.Tensor, residual=residual_distribution) -> torch.Tensor:
    out = torch.zeros_like(p, dtype=torch.float64)
    r = residual(p, q).double()
    for x in range(len(q)):
        if q[x] <= 0:
            continue
        a = acceptance_probability(p, q, x)
        out[x] += float(q[x]) * a
        out += float(q[x]) * (1 - a) * r
    return out


def broken_residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """A classic bug: on rejection, resample from p instead of norm(max(0, p - q))."""
    return p


def random_pairs(count: int, vocab: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    for i in range(count):
        scale = 0.5 + 3 * torch.rand((), generator=generator)
        p = torch.softmax(torch.randn(vocab, generator=generator, dtype=torch.float64) * scale, dim=0)
        q = torch.softmax(torch.randn(vocab, generator=generator, dtype=torch.float64) * scale, dim=0)
        if i % 5 == 0:  # sparse supports, as after top-p
            q[torch.rand(vocab, generator=generator) < 0.3] = 0
            q /= q.sum()
        yield p, q


def test_exact_output_distribution_equals_target():
    for p, q in random_pairs(200, vocab=12, seed=0):
        assert torch.allclose(output_distribution(p, q), p, atol=1e-12)


def test_exact_check_catches_broken_residual():
    worst = max(
        float((output_distribution(p, q, broken_residual) - p).abs().sum()) / 2 for p, q in random_pairs(50, 12, 1)
    )
    assert worst > 0.05


def test_identical_distributions_always_accept():
    p = torch.softmax(torch.randn(20, dtype=torch.float64), dim=0)
    assert all(acceptance_probability(p, p, x) == 1.0 for x in range(20))
    assert torch.equal(residual_distribution(p, p), p)


def _empirical_tv(vocab: int, trials: int, residual, seed: int) -> float:
    """Run verify_sampled itself (one draft token) and compare its output histogram with p."""
    generator = torch.Generator().manual_seed(seed)
    config = SamplingConfig(temperature=1.0)
    target_logits = torch.randn(2, vocab, generator=generator) * 2
    draft_logits = torch.randn(vocab, generator=generator) * 2
    p = to_probs(target_logits[0], config)
    q = to_probs(draft_logits, config)
    counts = torch.zeros(vocab)
    for _ in range(trials):
        x = int(torch.multinomial(q, 1, generator=generator))
        accepted, token = verify_sampled(target_logits, [x], [q], config, generator, residual=residual)
        counts[x if accepted == 1 else token] += 1
    return float((counts / trials - p).abs().sum() / 2)


def test_monte_carlo_verify_sampled_matches_target():
    # 6 tokens, 6k trials: sampling noise on TV is ~0.01; the broken sampler is ~0.1 off.
    good = _empirical_tv(6, 6000, residual_distribution, seed=3)
    bad = _empirical_tv(6, 6000, broken_residual, seed=3)
    assert good < 0.025
    assert bad > 0.05


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    probs = to_probs(logits, SamplingConfig(temperature=1.0, top_p=0.8))
    assert probs.tolist() == pytest.approx([0.625, 0.375, 0.0, 0.0])
    probs = to_probs(logits, SamplingConfig(temperature=1.0, top_p=0.81))
    assert probs[2] > 0 and probs[3] == 0


def test_greedy_verification():
    logits = torch.zeros(4, 10)
    for row, best in enumerate([3, 4, 5, 6]):
        logits[row, best] = 1
    assert verify_greedy(logits, [3, 4, 5]) == (3, 6)  # all accepted + bonus
    assert verify_greedy(logits, [3, 9, 5]) == (1, 4)  # reject at 1, correction 4
    assert verify_greedy(logits, [0, 4, 5]) == (0, 3)


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_p=0), dict(top_p=1.5), dict(temperature=float("nan"))])
def test_bad_sampling_config(bad):
    with pytest.raises(ValueError):
        SamplingConfig(**bad)
