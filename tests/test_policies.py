"""Policy behaviour and the shared policy-string parser."""

from __future__ import annotations

import math

import pytest
import torch

from svip import DraftStep, PolicySpecError, make_policy


def step_with_entropy(target_nats: float, index: int = 0, position: int = 0, vocab: int = 1000) -> DraftStep:
    """A logit row whose softmax entropy is close to ``target_nats`` (uniform over e^H tokens)."""
    support = max(1, round(math.exp(target_nats)))
    logits = torch.full((vocab,), float("-inf"))
    logits[:support] = 0.0
    return DraftStep(index=index, position=position, token=0, logits=logits)


def test_svip_keeps_the_crossing_token_and_stops():
    policy = make_policy("svip:h=0.3,gamma=0.15")  # stops when H > 0.6 nats
    assert policy.continue_drafting(step_with_entropy(0.0))  # one-hot: H = 0
    assert not policy.continue_drafting(step_with_entropy(math.log(2)))  # H = 0.693 > 0.6: stop after it
    low = DraftStep(0, 0, 0, torch.tensor([5.0, 0.0, 0.0]))  # H ~ 0.08
    assert policy.continue_drafting(low)
    high = DraftStep(0, 0, 0, torch.zeros(10))  # H = ln 10 = 2.3
    assert not policy.continue_drafting(high)
    assert policy.round_budget() == 40


def test_svip_threshold_matches_should_stop():
    from svip import should_stop

    policy = make_policy("svip:h=0.25,gamma=0.2")
    generator = torch.Generator().manual_seed(0)
    for scale in torch.linspace(0.1, 6, 50):
        logits = torch.randn(300, generator=generator) * scale
        step = DraftStep(0, 0, 0, logits)
        assert policy.continue_drafting(step) == (not bool(should_stop(logits, gamma=0.2, h=0.25, kind="logits")))


def test_constant_and_heuristic_schedules():
    constant = make_policy("constant:k=3")
    assert constant.round_budget() == 3
    heuristic = make_policy("heuristic:k0=5")
    heuristic.start_sequence()
    assert heuristic.round_budget() == 5
    heuristic.observe(drafted=5, accepted=5)
    assert heuristic.round_budget() == 7
    heuristic.observe(drafted=7, accepted=2)
    assert heuristic.round_budget() == 6
    for _ in range(20):
        heuristic.observe(drafted=1, accepted=0)
    assert heuristic.round_budget() == 1
    for _ in range(40):
        heuristic.observe(drafted=1, accepted=1)
    assert heuristic.round_budget() == 40  # capped
    heuristic.start_sequence()
    assert heuristic.round_budget() == 5  # reset per sequence


def test_confidence_stops_below_p_min():
    policy = make_policy("confidence:p_min=0.5")
    confident = DraftStep(0, 0, token=0, logits=torch.tensor([4.0, 0.0, 0.0]))
    unsure = DraftStep(0, 0, token=1, logits=torch.tensor([4.0, 0.0, 0.0]))
    assert policy.continue_drafting(confident)
    assert not policy.continue_drafting(unsure)


def test_oracle_follows_the_reference():
    policy = make_policy("oracle")
    with pytest.raises(ValueError, match="set_reference"):
        policy.start_sequence()
    policy.set_reference([5, 6, 7])
    policy.start_sequence()
    logits = torch.zeros(10)
    assert policy.continue_drafting(DraftStep(0, 0, 5, logits))
    assert policy.continue_drafting(DraftStep(1, 1, 6, logits))
    assert not policy.continue_drafting(DraftStep(2, 2, 9, logits))
    assert not policy.continue_drafting(DraftStep(0, 3, 1, logits))  # past the reference


@pytest.mark.parametrize(
    "spec",
    ["constant:k=5", "heuristic:k0=3,max=20", "svip:h=0.4,gamma=0.2,max=12", "confidence:p_min=0.3", "oracle"],
)
def test_spec_round_trip(spec):
    policy = make_policy(spec)
    assert make_policy(policy.spec) == policy


@pytest.mark.parametrize(
    "spec, message",
    [
        ("svp", "did you mean 'svip'"),
        ("", "empty policy"),
        ("svip:h=-0.1", "h must be"),
        ("svip:gamma=0", "gamma must be"),
        ("svip:h=nan", "h must be"),
        ("constant:k=0", "k must be"),
        ("constant:k=2.5", "not a valid int"),
        ("confidence:p_min=1.5", "p_min must be"),
        ("svip:temperature=1", "unknown parameter"),
        ("svip:h", "expected key=value"),
        ("svip:h=0.1,h=0.2", "given twice"),
        ("heuristic:k0=50", "k0 must be"),
        ("svip:max=0", "max must be"),
    ],
)
def test_bad_specs_give_clear_errors(spec, message):
    with pytest.raises(PolicySpecError, match=message):
        make_policy(spec)
