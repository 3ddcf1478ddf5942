"""CaPE on the vanilla engine: the tree it builds, greedy output = target-only, and clear refusals."""

from __future__ import annotations

import pytest
import torch

from svip.adapters.cape.method import UPSTREAM_BINS, CapeMethod
from svip.adapters.cape.proposer import expand
from svip.adapters.vanilla import SamplingConfig, SpeculativeEngine
from svip.adapters.vanilla.engine import EngineMethod
from svip.eval.methods import MethodRunner, canonical_method
from svip.grammar import parse_method
from svip.method import InputError
from svip.spec import make_policy
from svip.tree import ROOT

from helpers import tiny_llama


def _logits(top1: float, order: list[int], vocab: int = 10) -> torch.Tensor:
    """A row whose softmax puts ``top1`` on order[0] and the rest, decreasing, on the next tokens of ``order``."""
    probs = torch.full((vocab,), 1e-6)
    rest = (1 - top1) / (len(order) - 1)
    for rank, token in enumerate(order):
        probs[token] = top1 if rank == 0 else rest * (1 - 0.01 * rank)
    return probs.log()


def test_unsure_positions_get_more_candidates_as_upstreams_bins_say():
    chain = [3, 4]
    logits = [_logits(0.35, [3, 7, 8, 9, 1, 2, 5]), _logits(0.95, [4, 6, 0])]
    tree = expand(chain, logits, CapeMethod())
    assert CapeMethod().candidates(0.35) == UPSTREAM_BINS[3] == 6 and CapeMethod().candidates(1.0) == 2
    assert tree.tokens[:2] == chain and tree.parents[:2] == [ROOT, 0]  # the chain stays nodes 0..n-1
    assert tree.tokens[2:] == [7, 8, 9, 1, 2, 6]  # 5 alternatives at the root, 1 under node 0, best first
    assert tree.parents[2:] == [ROOT] * 5 + [0]
    capped = expand(chain, logits, CapeMethod(nodes=4))
    assert len(capped) == 4 and capped.tokens == [3, 4, 7, 8]


def test_method_strings():
    assert canonical_method("cape") == "cape:bins=8/8/8/6/6/6/4/4/2/2/2/2,nodes=64+constant:k=4"
    assert canonical_method("cape:nodes=20+svip").endswith("nodes=20+svip:h=0.3,gamma=0.15,max=40")
    for bad, message in [
        ("cape:bins=8/x", "integers joined by '/'"),
        ("cape:bins=8/8", "11\\+ integers"),
        ("cape:nodes=0", "nodes must be an integer in"),
        ("cape:h=0.3", "unknown parameter 'h'"),
    ]:
        with pytest.raises(ValueError, match=message):
            CapeMethod.from_spec(parse_method(bad))


@pytest.fixture(scope="module")
def pair():
    return tiny_llama(vocab_size=16, seed=0), tiny_llama(vocab_size=16, seed=5)


def _run(engine: SpeculativeEngine, method: str, prompt: list[int]):
    from svip.adapters.cape.proposer import CapeProposer

    cape = CapeMethod.from_spec(parse_method(method))
    runner = EngineMethod(
        engine, lambda _ref: make_policy(cape.policy), proposer=CapeProposer(engine.draft, cape), spec=cape.spec
    )
    return runner.generate(prompt, max_new_tokens=24)


def test_greedy_output_is_target_only_and_alternatives_are_accepted(pair):
    engine = SpeculativeEngine(*pair)
    every = "/".join(
        ["16"] * 12
    )  # every token a candidate at every position: the first level always holds the target's
    for prompt in ([1, 2, 3], [7, 7, 1, 9, 4], [15, 0, 3, 3]):
        reference = engine.generate(prompt, max_new_tokens=24).tokens
        for method in ("cape", "cape+svip:h=0.3", "cape:nodes=6+constant:k=2", f"cape:bins={every}+constant:k=3"):
            result = _run(engine, method, prompt)
            assert result.tokens == reference, (prompt, method)
            assert sum(r.emitted for r in result.rounds) == len(result.tokens)
        full = _run(engine, f"cape:bins={every}+constant:k=3", prompt)
        assert all(r.accepted >= 1 for r in full.rounds)  # the target's token is always among the root's children
        chain = engine.generate(prompt, policy=make_policy("constant:k=3"), max_new_tokens=24)
        capped = _run(engine, "cape:nodes=2+constant:k=4", prompt)
        assert capped.tokens == reference and all(r.drafted <= 2 for r in capped.rounds)  # the cap cuts the chain
        assert len(full.rounds) < len(chain.rounds)  # alternatives were accepted: fewer target forwards


def test_sampling_is_refused_with_the_reason(pair):
    runner = MethodRunner(*pair, SamplingConfig(temperature=1.0))
    with pytest.raises(InputError, match="greedy only"):
        runner.run("cape+svip", [1, 2, 3], max_new_tokens=4, stop_tokens=set(), seed=0)
