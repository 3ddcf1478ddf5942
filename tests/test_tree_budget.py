"""How many tree nodes to verify (TreeBudget) and a policy that prices levels instead of tokens."""

from __future__ import annotations

import pytest
from test_adaptive import seeded, step

from svip.costs import CostMeter
from svip.tree_budget import TreeBudget


def meter(verify_over_step: dict[str, float], step_s: float = 1.0) -> CostMeter:
    m = CostMeter()
    m.seed({"target_step_s": step_s, "verify_over_step": verify_over_step})
    return m


FLAT = {"2": 1.0, "64": 1.0}
STEEP = {"2": 2.0, "64": 64.0}  # every scored token costs a full step


def test_free_verification_takes_every_node_and_costly_verification_one():
    probs = [0.6, 0.3, 0.2, 0.1, 0.05]
    assert TreeBudget(meter(FLAT)).choose(probs, draft_seconds=0.1) == 5
    assert TreeBudget(meter(STEEP)).choose(probs, draft_seconds=0.1) == 1


def test_the_size_maximises_tokens_per_second_by_hand():
    # verify(n) = 1 + 0.25 (n - 1); draft 0.5 s; rates (1 + E) / (0.5 + verify(n + 1)):
    # n=1: 1.8/1.75 = 1.029, n=2: 2.3/2.0 = 1.150, n=3: 2.4/2.25 = 1.067 -> 2 nodes
    budget = TreeBudget(meter({"2": 1.25, "3": 1.5, "4": 1.75}))
    assert budget.choose([0.8, 0.5, 0.1], draft_seconds=0.5) == 2


def test_calibration_scales_the_path_probabilities_from_what_was_accepted():
    budget = TreeBudget(meter({"2": 1.25, "3": 1.5, "4": 1.75}), prior=1.0)
    assert budget.scale() == pytest.approx(1.0)
    budget.choose([0.2, 0.1, 0.1], draft_seconds=0.5)  # 1 node predicted 0.2 accepted tokens
    budget.observe(1)  # ... and 1 was accepted: (1 + 1) / (1 + 0.2)
    assert budget.scale() == pytest.approx(2.0 / 1.2)
    assert budget.expected_accepted([0.9, 0.3]) == pytest.approx(1.0 + 0.3 * 2.0 / 1.2)  # a node counts at most 1
    for _ in range(50):  # a draft whose paths are never accepted: the scale drops, trees shrink to one node
        budget.choose([0.9, 0.8, 0.7], draft_seconds=0.5)
        budget.observe(0)
    assert budget.scale() == pytest.approx(0.05) and budget.choose([0.9, 0.8, 0.7], 0.5) == 1


def test_without_costs_the_whole_tree_is_verified_and_bad_input_is_refused():
    assert TreeBudget().choose([0.5, 0.4, 0.3], draft_seconds=0.0) == 3
    with pytest.raises(ValueError, match="at least one"):
        TreeBudget().choose([], draft_seconds=0.0)
    with pytest.raises(ValueError, match="prior"):
        TreeBudget(prior=0.0)


def test_a_policy_prices_what_its_engine_verifies():
    """A tree that verifies its root's 10 children anyway pays only a draft step per deeper level."""
    chain, tree = seeded(), seeded()  # verify 0.1 s per extra token, draft 0.2 s, 1 token/s to beat
    tree.verify_tokens = lambda levels: min(59, 10 + levels - 1) + 1
    assert tree.verify_tokens(1) == 11 and tree.round_cost(1) == pytest.approx(0.2 + 2.0)
    drafted = [step(1.5, i) for i in range(3)]  # P(accept) ~ 0.53 each
    assert [chain.continue_drafting(s) for s in drafted[:2]] == [True, False]
    assert [tree.continue_drafting(s) for s in drafted[:2]] == [True, False]  # same marginal price (0.3 s)
    wide = seeded()
    wide.verify_tokens = lambda levels: 1 if levels <= 1 else 60  # level 2 would add 59 tokens: 5.9 s
    assert not wide.continue_drafting(step(0.01))


def test_the_adaptive_tree_grows_a_level_only_if_the_size_rule_would_gain_by_it():
    """Issue 33 (EAGLE's sets, AMD Zen 5): the depth rule grew 2.25 levels a round while the size rule verified 3.8
    nodes of top_k 3, so most deeper levels were drafted for nothing. A level grows only if the size rule's best
    rate rises with its best node (the last level's best times its parent's top-1 probability) for a draft step."""
    import torch

    from svip.adapters.eagle.adaptive import AdaptiveTreeRule

    def tree(best_of_level_2: float) -> tuple[bool, bool]:
        rule = AdaptiveTreeRule(seeded(), top_k=3, total=16)  # verify 1 s + 0.1 s a token, draft 0.2 s a level
        rule.start_draft()
        root_children = torch.tensor([0.9, 0.05, 0.04])
        level_2 = torch.full((3, 3), 1e-4)  # one row per expanded node, best first (0.9, 0.05, 0.04)
        level_2[0, 0] = best_of_level_2
        return rule.grow_deeper(0.01, 1, root_children.log()), rule.grow_deeper(0.01, 2, level_2.log())

    # at H = 0.01 the depth rule alone grows on (0.96 * 0.75 = 0.72 tokens for 0.3 s). The size rule by hand:
    # after level 1, 1 node: 1.9 / 1.1 = 1.73 tokens/s; a level 2 child of 0.9 * 0.9: 2.71 / 1.4 = 1.94 -> grow.
    # after level 2 at 0.8: 2 nodes 2.7 / 1.2 = 2.25; its child 0.8 * 0.8 / 0.9 = 0.71: 3.41 / 1.5 = 2.27 -> grow
    assert tree(0.8) == (True, True)
    # at 0.3 level 2 is worth verifying (2.2 / 1.2 = 1.83 > 1.73) but not growing below: its child 0.1 makes
    # at best 2.2 / 1.4 = 1.57
    assert tree(0.3) == (True, False)
    assert tree(1e-4) == (True, False)
    rule = AdaptiveTreeRule(seeded(), top_k=3, total=16)
    rule.start_draft()
    assert rule.grow_deeper(0.01, 1) and rule.grow_deeper(0.01, 2)  # without the nodes: the depth rule alone


def test_each_tree_size_keeps_its_own_calibration():
    """Issue 33: big trees' deep paths were overconfident on unseen prompts while small ones were not."""
    budget = TreeBudget(meter({"2": 1.0, "64": 1.0}), prior=1.0)
    big = [0.5, 0.3, 0.2, 0.2, 0.15, 0.15, 0.1, 0.1]  # 1.7 forecast accepted tokens at scale 1
    for _ in range(10):
        assert budget.choose(big, draft_seconds=0.1) == 8  # free verification: the whole tree (bucket 5-8)
        budget.observe(1)
    overall = budget.scale()  # (1 + 10) / (1 + 17)
    assert overall == pytest.approx(11 / 18)
    assert budget.scale_for(2) == pytest.approx(overall)  # no tree of 2 nodes yet: the overall scale
    assert budget.scale_for(8) == pytest.approx((10 + overall) / (17 + 1))
    assert budget.scale_for(7) == budget.scale_for(8) and budget.scale_for(9) == pytest.approx(overall)
    assert budget.expected_accepted(big) == pytest.approx(sum(min(1.0, budget.scale_for(8) * p) for p in big))


def test_the_tree_log_buckets_rounds_by_size_with_forecasts_beside_measurements():
    from svip.adapters.eagle.adaptive import TreeRound
    from svip.eval.eagle.tree_log import bucket_rounds

    log = [
        TreeRound(2, 10, 1.2, 1, 0.20, 0.22, 0.03),
        TreeRound(3, 14, 1.0, 2, 0.21, 0.20, 0.04),
        TreeRound(4, 30, 1.4, 0, 0.25, 0.30, 0.05),
    ]
    small, big = bucket_rounds(log)
    assert (small["nodes_up_to"], small["rounds"], small["mean_nodes"], small["accepted"]) == (16, 2, 12, 1.5)
    assert small["expected_accepted"] == pytest.approx(1.1) and small["verify_ms"] == pytest.approx(210.0)
    assert (big["nodes_up_to"], big["rounds"], big["predicted_verify_ms"], big["verify_ms"]) == (32, 1, 250.0, 300.0)
