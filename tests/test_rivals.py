"""The published rivals as core policies, with known answers: transformers' ROC re-fit of its confidence
threshold (``confidence:...,refit=1``) and a UCB1 bandit over draft rules (``bandit``)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from svip import make_policy
from svip.bandit import BanditPolicy
from svip.costs import RoundTiming
from svip.policies import ConfidencePolicy, DraftStep
from svip.roc import roc_curve, roc_threshold

# A hand-made set: scores with labels 1 1 0 1 0 0 (already in decreasing order).
SCORES = [0.9, 0.8, 0.7, 0.6, 0.4, 0.3]
LABELS = [1, 1, 0, 1, 0, 0]


def test_roc_threshold_by_hand():
    """Worked out on paper: sklearn drops the 0.4 point (collinear), costs fpr + 3 fnr over the thresholds
    [inf, .9, .8, .7, .6, .3] are [3, 2, 1, 4/3, 1/3, 1], so the re-fit picks 0.6."""
    fpr, tpr, thresholds = roc_curve(LABELS, SCORES)
    assert list(thresholds) == [math.inf, 0.9, 0.8, 0.7, 0.6, 0.3]
    assert np.allclose(fpr, [0, 0, 0, 1 / 3, 1 / 3, 1]) and np.allclose(tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    assert roc_threshold(LABELS, SCORES) == 0.6
    assert roc_threshold(LABELS[:5], SCORES[:5]) is None  # transformers waits for more than 5 judged tokens
    assert roc_threshold([1] * 6, SCORES) is None  # ... and for both outcomes


def test_roc_curve_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn (pip install 'svip[bench]')")
    rng = random.Random(0)
    for trial in range(200):
        n = rng.randint(2, 40)
        scores = [round(rng.random(), rng.choice([1, 2, 6])) for _ in range(n)]  # ties included
        labels = [int(rng.random() < s) for s in scores]
        if len(set(labels)) < 2:
            continue
        expected = metrics.roc_curve(labels, scores)
        for ours, theirs in zip(roc_curve(labels, scores), expected):
            assert np.allclose(ours, theirs), (trial, labels, scores)


def _step(prob: float, index: int = 0) -> DraftStep:
    step = DraftStep(index, index, 0, torch.zeros(2))
    step.__dict__["token_prob"] = prob  # the cached value: what the policy reads
    return step


def _round(policy: ConfidencePolicy, probs: list[float], accepted: int) -> list[bool]:
    decisions = [policy.continue_drafting(_step(p, i)) for i, p in enumerate(probs)]
    policy.observe(len(probs), accepted)
    return decisions


def test_confidence_refit_follows_transformers_bookkeeping():
    """Judged tokens only (the accepted ones, then the first rejected); the re-fit once > 5 judged tokens."""
    policy = make_policy("confidence:p_min=0.4,refit=1")
    policy.start_sequence()
    assert _round(policy, [0.9, 0.8, 0.7], accepted=2) == [True, True, True]
    assert _round(policy, [0.6, 0.4, 0.3], accepted=1) == [True, True, False]  # 0.3 < 0.4 ends it; never judged
    assert policy.threshold == 0.4  # 5 judged tokens: not yet
    assert _round(policy, [0.3], accepted=0) == [False]
    assert policy.threshold == 0.6  # the hand-made set above, gathered round by round
    assert policy.continue_drafting(_step(0.5)) is False
    policy.start_sequence()  # a new prompt: transformers starts from the configured threshold again
    assert policy.threshold == 0.4 and policy.continue_drafting(_step(0.5)) is True
    plain = make_policy("confidence:p_min=0.4")
    plain.start_sequence()
    _round(plain, [0.9, 0.8, 0.7], 2), _round(plain, [0.6, 0.4, 0.3], 1), _round(plain, [0.3], 0)
    assert plain.threshold == 0.4 and plain.spec == "confidence:p_min=0.4,max=40"  # refit=0: the old rule and name


def test_bandit_plays_every_arm_once_then_ucb1():
    policy = BanditPolicy(ks=2, c=1.0)
    assert [a.label for a in policy.arms] == ["constant:k=1", "constant:k=2", "svip:h=0.2", "svip:h=0.3", "svip:h=0.4"]
    for arm, reward in zip(policy.arms, [10.0, 30.0, 20.0, 25.0, 5.0]):
        assert policy.choose() is arm  # unplayed arms first, in order
        policy.reward(arm, reward)
    # scaled means 1/3, 1, 2/3, 5/6, 1/6 (best 30); every bonus sqrt(2 ln 5 / 1): k=2 leads
    assert policy.choose().label == "constant:k=2"
    policy.reward(policy.arms[1], 30.0)
    # k=2: 1 + sqrt(2 ln 6 / 2) = 2.34; h=0.3: 5/6 + sqrt(2 ln 6) = 2.73: the bonus sends it to h=0.3
    assert policy.choose().label == "svip:h=0.3"
    greedy = BanditPolicy(ks=2, c=0.0)
    for arm, reward in zip(greedy.arms, [10.0, 30.0, 20.0, 25.0, 5.0]):
        greedy.reward(arm, reward)
    assert greedy.choose().label == "constant:k=2"


def test_bandit_rounds_reward_tokens_per_second_and_learn_across_prompts():
    policy = make_policy("bandit:ks=1")
    assert policy.learns_across_prompts
    policy.start_sequence()
    assert policy.round_budget() == 1  # constant:k=1 first
    policy.observe(1, 1)
    policy.observe_timing(RoundTiming(1, 0.1, 2, 0.3))  # 2 tokens in 0.4 s
    assert policy.arms[0].reward_sum == pytest.approx(5.0)
    assert policy.round_budget() == 40  # svip:h=0.2 next, up to the cap; its entropy limit is 0.2^2/0.15
    assert policy.continue_drafting(_entropy_step(0.26)) and not policy.continue_drafting(_entropy_step(0.27))
    policy.observe(0, 0)
    policy.observe_timing(RoundTiming(0, None, 1, 0.2))  # a target-only step: no arm charged
    assert policy.arms[1].pulls == 0
    policy.start_sequence()  # a new prompt keeps what was learned
    policy.round_budget()
    policy.observe(3, 2)
    policy.observe_timing(RoundTiming(3, None, 4, 0.5))  # a prefill round: its seconds price nothing
    assert policy.arms[0].pulls == 1 and sum(a.pulls for a in policy.arms) == 1


def _entropy_step(entropy: float) -> DraftStep:
    step = DraftStep(0, 0, 0, torch.zeros(2))
    step.__dict__["entropy"] = entropy
    return step


@pytest.mark.parametrize("spec", ["bandit:ks=3", "confidence:p_min=0.4,refit=1"])
def test_rivals_are_lossless_on_the_engine(spec):
    """Greedy output of the vanilla engine equals target-only under the new rules (tiny random models:
    mechanics; real weights in test_lossless_real)."""
    from svip.adapters.vanilla import SpeculativeEngine

    from helpers import tiny_llama

    target, draft = tiny_llama(seed=0), tiny_llama(seed=0, layers=1)
    reference = SpeculativeEngine(target, None).generate([1, 2, 3], max_new_tokens=24).tokens
    engine = SpeculativeEngine(target, draft)
    policy = make_policy(spec)
    for _ in range(3):
        result = engine.generate([1, 2, 3], policy=policy, max_new_tokens=24)
        assert result.tokens == reference and result.drafted > 0
