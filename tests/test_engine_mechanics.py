"""Engine bookkeeping on tiny random models (mechanics only; quality claims use real weights)."""

from __future__ import annotations

import pytest
import torch

from svip import make_policy
from svip.adapters.vanilla import InputError, SamplingConfig, SpeculativeEngine
from svip.eval.lossless import check_greedy_lossless

from helpers import tiny_llama

POLICIES = [
    "constant:k=1",
    "constant:k=4",
    "heuristic:k0=2",
    "svip:h=0.3,gamma=0.15",
    "svip:h=2.0,gamma=0.15,max=7",
    "confidence:p_min=0.05",
    "svip-adaptive",
    "svip-adaptive:probe=2,max=5",
    "oracle",
]


@pytest.fixture(scope="module")
def engine():
    return SpeculativeEngine(tiny_llama(seed=0), tiny_llama(seed=1))


@pytest.fixture(scope="module")
def prompts():
    generator = torch.Generator().manual_seed(0)
    return [
        (f"p{i}", torch.randint(0, 64, (length,), generator=generator).tolist())
        for i, length in enumerate([1, 3, 9, 17])
    ]


def test_greedy_is_identical_to_target_only(engine, prompts):
    rows = check_greedy_lossless(engine, prompts, POLICIES, max_new_tokens=60, progress=False)
    for row in rows:
        assert row.identical == row.prompts, (row.policy, row.mismatches)


def test_target_only_matches_transformers_generate(engine, prompts):
    target = engine.target.model.model
    for _, prompt in prompts:
        ids = torch.tensor([prompt])
        expected = target.generate(
            ids, max_new_tokens=30, min_new_tokens=30, do_sample=False, attention_mask=torch.ones_like(ids)
        )
        assert engine.generate(prompt, max_new_tokens=30).tokens == expected[0, len(prompt) :].tolist()


def test_an_engine_without_a_draft_decodes_target_only_under_any_policy(engine, prompts):
    alone = SpeculativeEngine(engine.target.model.model)
    prompt = prompts[0][1]
    result = alone.generate(prompt, policy=make_policy("svip"), max_new_tokens=12)
    assert result.method == "target-only" and result.drafted == 0
    assert result.tokens == engine.generate(prompt, max_new_tokens=12).tokens


def test_round_statistics_add_up(engine, prompts):
    prompt = prompts[2][1]
    result = engine.generate(prompt, policy=make_policy("constant:k=4"), max_new_tokens=50)
    assert len(result.tokens) == 50
    assert sum(r.emitted for r in result.rounds) == 50
    for r in result.rounds:
        assert 0 <= r.accepted <= r.drafted <= 4
        assert len(r.entropies) == r.drafted
        assert r.emitted <= r.accepted + 1
    emitted_before = 0
    for r in result.rounds:  # constant(k) drafts k, clipped only by what is left to generate
        assert r.drafted == min(4, 50 - emitted_before)
        emitted_before += r.emitted
    record = result.to_dict()
    assert record["new_tokens"] == 50 and record["decoding_steps"] == len(result.rounds)
    assert record["accept_lengths"] == [r.emitted for r in result.rounds]


def test_svip_stops_on_high_entropy(engine, prompts):
    # A random tiny model is near-uniform over 64 tokens (H ~ 4 nats > 0.6): SVIP drafts one token per round.
    result = engine.generate(prompts[1][1], policy=make_policy("svip"), max_new_tokens=20)
    assert all(r.drafted == 1 for r in result.rounds)
    never = engine.generate(prompts[1][1], policy=make_policy("svip:h=100,max=6"), max_new_tokens=30)
    assert max(r.drafted for r in never.rounds) == 6


def test_stop_token_ends_generation(engine, prompts):
    prompt = prompts[3][1]
    free = engine.generate(prompt, max_new_tokens=40).tokens
    stop = free[10]
    first = free.index(stop)
    for policy in (None, make_policy("constant:k=5")):
        result = engine.generate(prompt, policy=policy, max_new_tokens=40, stop_tokens={stop})
        assert result.tokens == free[: first + 1]
        assert result.stopped_by == "eos"


def test_sampling_is_reproducible_with_a_seed(engine, prompts):
    sampler = SpeculativeEngine(
        engine.target.model.model, engine.draft.model.model, sampling=SamplingConfig(temperature=1.0, top_p=0.9)
    )
    policy = make_policy("svip:h=2.0")
    first = sampler.generate(prompts[1][1], policy=policy, max_new_tokens=25, seed=7).tokens
    assert sampler.generate(prompts[1][1], policy=policy, max_new_tokens=25, seed=7).tokens == first
    assert len(first) == 25


def test_bad_requests_fail_before_decoding(engine):
    with pytest.raises(InputError, match="empty prompt"):
        engine.generate([], max_new_tokens=5)
    with pytest.raises(InputError, match="max_new_tokens"):
        engine.generate([1, 2], max_new_tokens=0)
    with pytest.raises(InputError, match="outside the vocabulary"):
        engine.generate([1, 64], max_new_tokens=5)
    with pytest.raises(InputError, match="context of 128 tokens"):
        engine.generate([1] * 120, max_new_tokens=20)
    with pytest.raises(ValueError, match="set_reference"):
        engine.generate([1, 2], policy=make_policy("oracle"), max_new_tokens=5)


def test_vocabulary_mismatch_is_refused():
    with pytest.raises(InputError, match="vocabularies differ"):
        SpeculativeEngine(tiny_llama(vocab_size=64), tiny_llama(vocab_size=80))
