"""The published rivals as core policies, with known answers: transformers' ROC re-fit of its confidence
threshold (``confidence:...,refit=1``), a UCB1 bandit over draft rules (``bandit``) and AdaEDL (``adaedl``)."""

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


def _entropy_step(entropy: float, index: int = 0) -> DraftStep:
    step = DraftStep(index, index, 0, torch.zeros(2))
    step.__dict__["entropy"] = entropy
    return step


def test_adaedl_stop_decisions_by_hand():
    """lam 0.7, gamma 0.2: 1 - sqrt(0.2 H) < 0.7  <=>  H > 0.45."""
    policy = make_policy("adaedl")
    assert (policy.threshold, policy.gamma, policy.max_draft, policy.drops_crossing_token) == (0.7, 0.2, 16, True)
    assert policy.lower_bound(0.45) == pytest.approx(0.7)
    assert policy.continue_drafting(_entropy_step(0.44, index=1))
    assert not policy.continue_drafting(_entropy_step(0.46, index=1))
    assert policy.continue_drafting(_entropy_step(5.0, index=0))  # the first token of a round is always drafted
    kept = make_policy("adaedl:drop=0")  # the crossing token kept, as SVIP: the first token is judged too
    assert not kept.drops_crossing_token and not kept.continue_drafting(_entropy_step(5.0, index=0))


def test_adaedl_threshold_follows_algorithm_1_on_a_synthetic_stream():
    """AR <- 0.5 AR + 0.5 a/n; lambda' = lambda + 0.01 if AR < 0.9, lambda - 0.01 elif a != L (16), else lambda;
    lambda <- 0.9 lambda + 0.1 lambda'. Values computed by hand from lambda = 0.7, AR = 0.9."""
    policy = make_policy("adaedl")
    stream = [  # (drafted, accepted) -> (AR, lambda) after the round
        ((4, 1), (0.575, 0.701)),  # AR below alpha: lambda up
        ((4, 4), (0.7875, 0.702)),  # still below: up
        ((4, 4), (0.89375, 0.703)),
        ((4, 4), (0.946875, 0.702)),  # above alpha, a != L: down
        ((16, 16), (0.9734375, 0.702)),  # above alpha, a == L: unchanged
        ((0, 0), (0.9734375, 0.702)),  # no round drafted: nothing observed
    ]
    for (drafted, accepted), (acceptance, threshold) in stream:
        policy.observe(drafted, accepted)
        assert (policy.acceptance, policy.threshold) == (pytest.approx(acceptance), pytest.approx(threshold))
    # H = 0.449: 1 - sqrt(0.0898) = 0.7003, above the first lambda (0.7), below the one now in force (0.702)
    assert not policy.continue_drafting(_entropy_step(0.449, index=1))
    assert make_policy("adaedl").continue_drafting(_entropy_step(0.449, index=1))
    policy.start_sequence()  # a new prompt starts afresh (the paper's per-generation state)
    assert (policy.acceptance, policy.threshold) == (0.9, 0.7)


def test_adaedl_rejections_raise_the_threshold_and_acceptance_lowers_it():
    rejecting, accepting = make_policy("adaedl"), make_policy("adaedl")
    for _ in range(50):
        rejecting.observe(3, 0)
        accepting.observe(3, 3)
    assert rejecting.threshold > 0.74 and accepting.threshold < 0.66


def test_adaedl_is_refused_where_the_loop_keeps_every_drafted_token():
    from svip.adapters.registry import canonical

    assert canonical("adaedl").startswith("adaedl:lam=0.7")
    assert canonical("hf+adaedl:drop=0").endswith("drop=0,max=16")
    for method in ("hf+adaedl", "cascade:k=5,mag=2+adaedl", "cape+adaedl", "vllm+adaedl"):
        with pytest.raises(ValueError, match="drop=0"):
            canonical(method)


def test_the_vanilla_drafter_leaves_out_the_token_adaedl_stops_before():
    """The token whose bound fails is drafted (its forward is spent) but not proposed."""
    from svip.adapters.vanilla.cached_model import CachedCausalLM
    from svip.adapters.vanilla.proposer import DraftProposer
    from svip.sampling import SamplingConfig

    from helpers import tiny_llama

    class StopAtThird(type(make_policy("adaedl"))):
        def continue_drafting(self, step):
            return step.index < 2

    drafter = DraftProposer(CachedCausalLM(tiny_llama(seed=1)), SamplingConfig())
    for drop, tokens in ((1, 2), (0, 3)):
        drafter.model.reset()
        proposal = drafter.propose(
            [1, 2, 3], generated=0, budget=8, policy=StopAtThird(drop=drop), stop_tokens=(), generator=None
        )
        assert (len(proposal.tokens), len(proposal.probs), len(proposal.entropies)) == (tokens, tokens, tokens)
        assert proposal.draft_forwards == 3


def test_simulate_charges_the_left_out_token_as_a_draft_step():
    from svip.eval.simulate import SimCosts, simulate_question

    costs = SimCosts({"target_step_s": 1.0, "verify_over_step": {"2": 1.0, "8": 1.0}, "draft_over_step": 0.5}, False)
    row = {
        "tokens": [1, 2, 3, 4],
        "draft_argmax": [1, 2, 3, 4],
        "draft_top1": [0.9] * 4,
        "draft_entropy": [0.1, 0.1, 2.0, 0.1],  # the bound fails at position 2
        "branches": {},
        "prefill_s": {"target": 1.0, "draft": 0.5},
    }
    dropped = simulate_question(row, make_policy("adaedl"), costs, costs.meter(), [])
    kept = simulate_question(row, make_policy("adaedl:drop=0"), costs, costs.meter(), [])
    # drop=1: round 1 drafts 1, 2 (3 forwards, 3 left out), bonus 3; round 2 drafts 4: 3 x 0.5 + 1 + 0.5 + 1
    assert (dropped.drafted, dropped.accepted, dropped.rounds, dropped.cost) == (3, 3, 2, pytest.approx(4.0))
    # drop=0: round 1 drafts 1, 2, 3 (kept), bonus 4: 3 x 0.5 + 1, one round
    assert (kept.drafted, kept.accepted, kept.rounds, kept.cost) == (3, 3, 1, pytest.approx(2.5))


@pytest.mark.parametrize("spec", ["bandit:ks=3", "confidence:p_min=0.4,refit=1", "adaedl", "adaedl:drop=0"])
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
