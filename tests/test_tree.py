"""Token trees: structure, the target's mask and positions, greedy acceptance, one tree forward vs linear forwards."""

from __future__ import annotations

import pytest
import torch

from svip.adapters.vanilla.cached_model import CachedCausalLM
from svip.tree import ROOT, TokenTree

from helpers import tiny_llama

# root -> 5 -> 7 -> 9
#      |     \-> 8
#      \-> 6 -> 7
TREE = TokenTree(tokens=[5, 6, 7, 8, 7, 9], parents=[ROOT, ROOT, 0, 0, 1, 2])


def test_structure_and_bad_trees():
    assert TREE.depths() == [1, 1, 2, 2, 2, 3]
    assert TREE.path_to(5) == [0, 2, 5] and TREE.path_to(1) == [1]
    assert TokenTree.chain([4, 4, 4]).parents == [ROOT, 0, 1]
    with pytest.raises(ValueError, match="earlier node"):
        TokenTree([1, 2], [ROOT, 1])
    with pytest.raises(ValueError, match="same token"):
        TokenTree([1, 1], [ROOT, ROOT])
    with pytest.raises(ValueError, match="one parent per token"):
        TokenTree([1], [])
    grown = TokenTree.chain([1, 2])
    assert grown.add(3, ROOT) == 2 and grown.parents == [ROOT, 0, ROOT]
    with pytest.raises(ValueError, match="same token"):
        grown.add(2, 0)
    with pytest.raises(ValueError, match="earlier node"):
        grown.add(4, 3)
    assert len(grown) == 3  # a refused node is not added


def test_mask_and_positions_by_hand():
    mask = TokenTree([5, 6, 7], [ROOT, ROOT, 0]).attention_mask(cached=2, fed=2) == 0
    # keys: 2 cached, 2 fed (the second is the root), nodes 5, 6, 7
    assert mask[0, 0].int().tolist() == [
        [1, 1, 1, 0, 0, 0, 0],  # fed token 1: cache + itself
        [1, 1, 1, 1, 0, 0, 0],  # the root
        [1, 1, 1, 1, 1, 0, 0],  # 5
        [1, 1, 1, 1, 0, 1, 0],  # 6: not its sibling
        [1, 1, 1, 1, 1, 0, 1],  # 7 under 5
    ]
    assert TokenTree([5, 6, 7], [ROOT, ROOT, 0]).position_ids(cached=2, fed=2).tolist() == [[2, 3, 4, 4, 5]]


def test_greedy_acceptance_follows_the_targets_argmax():
    # predictions: after root, then after each node 0..5
    assert TREE.accept_greedy([5, 7, 0, 9, 0, 0, 3]) == ([0, 2, 5], 3)  # all the way down, then the bonus
    assert TREE.accept_greedy([6, 0, 7, 0, 0, 2, 0]) == ([1, 4], 2)  # the second branch
    assert TREE.accept_greedy([5, 8, 0, 0, 1, 0, 0]) == ([0, 3], 1)
    assert TREE.accept_greedy([4, 0, 0, 0, 0, 0, 0]) == ([], 4)  # no child matches: the correction


def test_one_tree_forward_scores_every_branch_as_linear_forwards_do():
    model = tiny_llama(vocab_size=16)
    prompt = [3, 1, 4, 1, 5, 9, 2, 6]
    tree_lm = CachedCausalLM(model)
    tree_lm.forward(prompt[:-2], 1)  # two committed tokens are fed with the tree (as after a full accept)
    logits = tree_lm.forward_tree(prompt[-2:], TREE)
    for node in range(len(TREE)):
        path = [TREE.tokens[i] for i in TREE.path_to(node)]
        linear = CachedCausalLM(model).forward(prompt + path, len(path) + 1)
        torch.testing.assert_close(logits[1 + node], linear[-1], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(logits[0], linear[0], rtol=1e-4, atol=1e-4)


def test_keeping_the_accepted_path_leaves_the_cache_of_a_linear_decode():
    model = tiny_llama(vocab_size=16, seed=1)
    prompt = [3, 1, 4, 1, 5]
    tree_lm = CachedCausalLM(model)
    tree_lm.forward(prompt[:-1], 1)
    base = tree_lm.cached_length + 1  # the root goes into the cache with the nodes
    tree_lm.forward_tree(prompt[-1:], TREE)
    path = TREE.path_to(4)  # 6 -> 7
    tree_lm.keep(base, path)
    assert tree_lm.cached_length == len(prompt) + 2
    continued = tree_lm.forward([11], 1)[-1]
    linear = CachedCausalLM(model).forward(prompt + [6, 7, 11], 1)[-1]
    torch.testing.assert_close(continued, linear, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="cannot keep"):
        tree_lm.keep(base, [40])
