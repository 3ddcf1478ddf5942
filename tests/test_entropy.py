"""``entropy``/``should_stop`` against an independent float64 pure-Python reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from svip import entropy, should_stop, svip_score


def reference_entropy_from_logits(logits: list[float]) -> float:
    finite = [x for x in logits if x != float("-inf")]
    top = max(finite)
    log_z = top + math.log(sum(math.exp(x - top) for x in finite))
    return -sum(math.exp(x - log_z) * (x - log_z) for x in finite)


def reference_entropy_from_probs(probs: list[float]) -> float:
    return -sum(p * math.log(p) for p in probs if p > 0)


def test_matches_reference_on_random_logits():
    generator = torch.Generator().manual_seed(0)
    for scale in (0.1, 1.0, 5.0, 30.0):
        logits = torch.randn(16, 1000, generator=generator, dtype=torch.float64) * scale
        ours = entropy(logits, kind="logits")
        expected = torch.tensor([reference_entropy_from_logits(row.tolist()) for row in logits], dtype=torch.float64)
        assert torch.allclose(ours.double(), expected, rtol=1e-4, atol=1e-5)


def test_probs_and_logits_agree():
    logits = torch.randn(4, 300, generator=torch.Generator().manual_seed(1))
    probs = torch.softmax(logits, dim=-1)
    assert torch.allclose(entropy(logits, kind="logits"), entropy(probs, kind="probs"), atol=1e-5)
    assert torch.allclose(entropy(probs), entropy(probs, kind="probs"))  # auto detects probabilities
    assert torch.allclose(entropy(logits), entropy(logits, kind="logits"))  # and logits


def test_edge_cases():
    vocab = 49152
    one_hot = torch.zeros(vocab)
    one_hot[7] = 1.0
    assert entropy(one_hot, kind="probs").item() == 0.0
    uniform_logits = torch.zeros(vocab)
    assert entropy(uniform_logits, kind="logits").item() == pytest.approx(math.log(vocab), rel=1e-6)
    masked = torch.full((vocab,), float("-inf"))
    masked[:4] = 0.0
    value = entropy(masked, kind="logits")
    assert not torch.isnan(value) and value.item() == pytest.approx(math.log(4), rel=1e-6)
    peaked = torch.full((vocab,), -1e4)
    peaked[3] = 1e4
    assert entropy(peaked, kind="logits").item() == pytest.approx(0.0, abs=1e-6)


def test_low_precision_inputs_are_computed_in_fp32():
    logits = torch.randn(2, 151936, generator=torch.Generator().manual_seed(2)) * 3
    for dtype in (torch.bfloat16, torch.float16):
        low = logits.to(dtype)
        expected = [reference_entropy_from_logits(row.double().tolist()) for row in low.float()]
        ours = entropy(low, kind="logits")
        assert ours.dtype == torch.float32
        assert ours.tolist() == pytest.approx(expected, rel=1e-4)


def test_numpy_input():
    probs = np.array([0.5, 0.25, 0.25])
    assert entropy(probs).item() == pytest.approx(reference_entropy_from_probs(probs.tolist()), rel=1e-6)


def test_should_stop_is_the_svip_inequality():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(256, 500, generator=generator) * torch.linspace(0.05, 8, 256).unsqueeze(1)
    for gamma, h in ((0.15, 0.3), (0.3, 0.5), (1.0, 1.0)):
        stops = should_stop(logits, gamma=gamma, h=h, kind="logits")
        expected = [math.sqrt(gamma * reference_entropy_from_logits(row.tolist())) > h for row in logits]
        assert stops.tolist() == expected
        assert 0 < sum(expected) < len(expected)  # the sweep covers both sides of the threshold


def test_should_stop_single_distribution_and_threshold_boundary():
    # H = ln 4 = 1.386; sqrt(0.15 * 1.386) = 0.456 > 0.3 -> stop; one-hot never stops.
    assert bool(should_stop(torch.full((4,), 0.25)))
    assert not bool(should_stop(torch.tensor([1.0, 0.0, 0.0, 0.0])))
    # Exactly at the bound sqrt(gamma*H) == h the rule does not fire (strict '>').
    assert not bool(should_stop(torch.full((4,), 0.25), gamma=1.0, h=float(svip_score(math.log(4), gamma=1.0)) + 1e-6))


@pytest.mark.parametrize("bad", [dict(gamma=0.0), dict(gamma=-1.0), dict(h=-0.1)])
def test_should_stop_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        should_stop(torch.zeros(4), **bad)


def test_entropy_rejects_garbage():
    with pytest.raises(ValueError):
        entropy(torch.full((3,), float("-inf")), kind="logits")
    with pytest.raises(ValueError):
        entropy(torch.tensor([float("nan"), 0.0]), kind="logits")
    with pytest.raises(TypeError):
        entropy(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError):
        entropy(torch.zeros(0))


def test_cross_entropy_equals_entropy_for_the_same_distribution_and_exceeds_it_otherwise():
    from svip import cross_entropy

    torch.manual_seed(0)
    q = torch.randn(4, 50) * 3
    p = torch.randn(4, 50) * 3
    assert torch.allclose(cross_entropy(q, q), entropy(q, kind="logits"), atol=1e-5)
    assert (cross_entropy(q, p) >= entropy(q, kind="logits") - 1e-5).all()  # Gibbs' inequality
    # by hand: q = (0.5, 0.5, 0), p = (0.25, 0.25, 0.5) -> H(q, p) = log 4
    q_hand = torch.tensor([0.0, 0.0, -float("inf")])
    p_hand = torch.log(torch.tensor([0.25, 0.25, 0.5]))
    assert float(cross_entropy(q_hand, p_hand)) == pytest.approx(math.log(4), abs=1e-6)
    assert float(
        cross_entropy(torch.zeros(3), p_hand.clone().index_fill_(0, torch.tensor([2]), -float("inf")))
    ) == float("inf")
    with pytest.raises(ValueError, match="shape"):
        cross_entropy(torch.zeros(3), torch.zeros(4))
