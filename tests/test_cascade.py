"""Cascade Speculative Drafting: method strings, Max-Gram, the one-hot rejection test, the cascade
proposer's round structure, and losslessness (tiny random models for mechanics, SmolLM2 for real)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from svip.adapters.cascade import CascadeMethod, is_cascade_method
from svip.adapters.cascade.maxgram import MaxGram, bigram_table, stdlib_text
from svip.adapters.cascade.proposer import CascadeProposer
from svip.adapters.vanilla import SamplingConfig, SpeculativeEngine
from svip.adapters.vanilla.sampling import verify_sampled
from svip.eval.methods import canonical_method
from svip.policies import DraftLengthPolicy, SvipPolicy

from conftest import tiny_llama


# -- method strings -------------------------------------------------------------------------------
def test_method_strings_round_trip_with_upstream_defaults():
    assert CascadeMethod.parse("cascade") == CascadeMethod(k=5, mag=5, sub=10, lenience=1.0)
    with_svip = CascadeMethod.parse("cascade:h=0.3,handoff=0,k=8,mag=2")
    assert (with_svip.h, with_svip.gamma, with_svip.handoff, with_svip.budget) == (0.3, 0.15, 0, 10)
    for method in ("cascade", "cascade:k=3,mag=0,sub=4,lenience=2", "cascade:h=0.2,gamma=0.1,handoff=1,k=8,mag=2,sub=10,lenience=1"):
        parsed = CascadeMethod.parse(method)
        assert CascadeMethod.parse(parsed.spec) == parsed
    assert canonical_method("cascade:mag=2") == "cascade:k=5,mag=2,sub=10,lenience=1"
    assert is_cascade_method("cascade:k=2") and not is_cascade_method("constant:k=2")


@pytest.mark.parametrize(
    "method, message",
    [
        ("cascade:k=0", "k must be an integer >= 1"),
        ("cascade:mag=-1", "mag must be an integer >= 0"),
        ("cascade:lenience=0.5", "lenience must be >= 1"),
        ("cascade:k=60,mag=10", "k \\+ mag must be <= 64"),
        ("cascade:handoff=2", "handoff must be 0 or 1"),
        ("cascade:depth=3", "unknown parameter 'depth'"),
        ("cascade:k=two", "k must be an integer"),
        ("cascade:h=0.3,gamma=0", "gamma > 0"),
    ],
)
def test_bad_method_strings_are_refused_with_the_reason(method, message):
    with pytest.raises(ValueError, match=message):
        CascadeMethod.parse(method)


# -- Max-Gram -------------------------------------------------------------------------------------
def test_bigram_table_takes_the_most_frequent_successor():
    table = bigram_table([1, 2, 3, 1, 2, 4, 1, 2, 3, 5], vocab_size=10)
    assert table[1] == 2 and table[2] == 3  # 2->3 twice, 2->4 once
    assert table[3] == 1  # 3->1 and 3->5 once each: the smaller id
    assert table[7] == 1  # never seen: the most frequent token
    with pytest.raises(ValueError):
        bigram_table([4], vocab_size=10)


def test_maxgram_copies_from_the_prompt_then_the_answer_then_follows_bigrams():
    maxgram = MaxGram(bigram_table([1, 2, 3, 1, 2, 4, 1, 2, 3, 5], vocab_size=10))
    prompt = [7, 1, 2, 3, 9, 9]
    assert maxgram.propose(prompt, prompt + [5, 1, 2], 4) == [3, 9, 9, 1]  # "1 2" in the prompt, then bigram 9->1
    assert maxgram.propose([6], [6, 4, 8, 4, 8], 3) == [4, 1, 2]  # "4 8" earlier in the generated text
    assert maxgram.propose([6], [6, 0], 3) == [1, 2, 3]  # nothing matches: bigrams from the last token
    # the longest suffix wins over a more recent shorter one
    assert maxgram.propose([1, 2, 1, 3, 2, 1, 2, 9, 5, 2, 8], [1, 2, 1, 3, 2, 1, 2, 9, 5, 2, 8, 0, 2, 1, 2], 1) == [9]


def test_bigram_text_is_the_standard_library_not_eval_data():
    text = stdlib_text(limit_bytes=200_000)
    assert len(text) >= 200_000 and "def " in text and "import" in text


# -- the rejection test with a one-hot proposal ---------------------------------------------------
def test_one_hot_proposal_keeps_the_target_distribution():
    p_logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    rows = torch.stack([p_logits, p_logits])
    config = SamplingConfig(temperature=1.0)
    generator = torch.Generator().manual_seed(0)
    counts = Counter()
    n = 20000
    for _ in range(n):
        accepted, token = verify_sampled(rows, [3], [torch.tensor([0.0, 0.0, 0.0, 1.0])], config, generator)
        counts[3 if accepted else token] += 1  # accepted: the draft token is emitted (then a bonus token)
    # the first emitted token is the draft (accepted w.p. p(3)) or a residual sample: distributed as p
    for token, p in enumerate([0.5, 0.3, 0.15, 0.05]):
        assert abs(counts[token] / n - p) < 4 * (p * (1 - p) / n) ** 0.5 + 1e-3, (token, counts)


# -- the cascade proposer on tiny random models (mechanics) ---------------------------------------
def _engine_and_proposer(method: str, sampling: SamplingConfig = SamplingConfig(), vocab: int = 64):
    target, draft = tiny_llama(vocab, seed=0), tiny_llama(vocab, seed=1, layers=1)
    engine = SpeculativeEngine(target, draft, sampling=sampling)
    maxgram = MaxGram(np.arange(1, vocab + 1) % vocab)  # bigram: t -> t+1
    cascade = CascadeMethod.parse(method)
    return engine, CascadeProposer(engine.draft.model, sampling, maxgram, cascade, vocab), cascade


class _StopAfter(DraftLengthPolicy):
    def __init__(self, count: int, budget: int):
        super().__init__(max_draft=budget)
        self.count = count

    def continue_drafting(self, step) -> bool:
        return step.index + 1 < self.count


def test_round_is_draft_level_then_maxgram_tail_with_forward_counts():
    engine, proposer, cascade = _engine_and_proposer("cascade:k=4,mag=3,sub=2")
    prompt = [3, 9, 4, 10, 11]
    proposal = proposer.propose(prompt, generated=0, budget=cascade.budget, policy=DraftLengthPolicy(max_draft=7), stop_tokens=(), generator=None)
    assert len(proposal.tokens) == 7 and proposal.draft_forwards >= 2  # 4 draft-level tokens need >= 2 reviews of 2
    assert len(proposal.entropies) == len(proposal.logits) == 4  # only draft-level tokens carry draft numbers
    tail = proposal.tokens[4:]
    assert tail == [(proposal.tokens[3] + i + 1) % 64 for i in range(3)] or tail[0] in prompt  # Max-Gram continues
    assert proposer.model.cached_length == len(prompt) + 3  # cache holds the context up to the last draft token


def test_svip_stop_hands_the_rest_to_maxgram_or_ends_the_round():
    for handoff, expected in ((1, 7), (0, 1)):
        engine, proposer, cascade = _engine_and_proposer(f"cascade:h=0.3,handoff={handoff},k=4,mag=3,sub=2")
        proposal = proposer.propose([3, 9, 4], generated=0, budget=7, policy=_StopAfter(1, 7), stop_tokens=(), generator=None)
        assert len(proposal.tokens) == expected and len(proposal.entropies) == 1


def test_lenience_is_refused_under_sampling():
    with pytest.raises(ValueError, match="greedy-only"):
        _engine_and_proposer("cascade:lenience=2", SamplingConfig(temperature=1.0))


@pytest.mark.parametrize("method", ["cascade", "cascade:k=3,mag=4,sub=3,lenience=3", "cascade:h=0.1,handoff=1,k=6,mag=1,sub=2", "cascade:h=0.1,handoff=0,k=6,mag=1"])
def test_greedy_cascade_equals_target_only_on_tiny_models(method):
    engine, proposer, cascade = _engine_and_proposer(method)
    prompt = [5, 6, 7, 5, 6]
    reference = engine.generate(prompt, max_new_tokens=30).tokens
    policy = SvipPolicy(h=cascade.h, gamma=cascade.gamma, max_draft=cascade.budget) if cascade.h is not None else DraftLengthPolicy(max_draft=cascade.budget)
    result = engine.generate(prompt, policy=policy, max_new_tokens=30, proposer=proposer)
    assert result.tokens == reference
    assert result.method == cascade.spec and sum(r.emitted for r in result.rounds) == 30
    assert all(r.draft_forwards is not None and r.draft_forwards >= 1 for r in result.rounds)


def test_sampled_cascade_keeps_the_target_distribution_on_a_tiny_model():
    """First sampled token after a fixed prompt: cascade vs target-only, frequencies over many seeds."""
    sampling = SamplingConfig(temperature=1.0)
    engine, proposer, cascade = _engine_and_proposer("cascade:k=2,mag=2,sub=2", sampling, vocab=8)
    prompt = [1, 2, 3, 1, 2]
    policy = DraftLengthPolicy(max_draft=cascade.budget)
    n = 1500
    ours = Counter(tuple(engine.generate(prompt, policy=policy, max_new_tokens=2, seed=s, proposer=proposer).tokens) for s in range(n))
    theirs = Counter(tuple(engine.generate(prompt, max_new_tokens=2, seed=s + 10**6).tokens) for s in range(n))
    firsts_ours, firsts_theirs = Counter(), Counter()
    for pair, count in ours.items():
        firsts_ours[pair[0]] += count
    for pair, count in theirs.items():
        firsts_theirs[pair[0]] += count
    total_variation = 0.5 * sum(abs(firsts_ours[t] - firsts_theirs[t]) / n for t in range(8))
    assert total_variation < 0.06, (firsts_ours, firsts_theirs)


# -- real weights ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_greedy_cascade_variants_equal_target_only_on_smollm2(smol_target, smol_mid_draft, smol_tokenizer):
    from svip.eval.datasets import load_questions, per_category
    from svip.eval.methods import MethodRunner
    from svip.eval.prompts import encode_prompt, stop_token_ids

    runner = MethodRunner(smol_target, smol_mid_draft, SamplingConfig(), tokenizer=smol_tokenizer)
    stops = stop_token_ids(smol_tokenizer, smol_target)
    methods = ["cascade", "cascade:k=8,mag=3,sub=6,lenience=2", "cascade:h=0.3,gamma=0.15,handoff=1,k=8,mag=2", "cascade:h=0.3,handoff=0,k=8,mag=2"]
    for question in per_category(load_questions("spec-bench"), 1, shortest=True)[:3]:
        prompt = encode_prompt(smol_tokenizer, question.turns[0])
        reference = runner.run("target-only", prompt, max_new_tokens=20, stop_tokens=stops, seed=0).tokens
        for method in methods:
            result = runner.run(method, prompt, max_new_tokens=20, stop_tokens=stops, seed=0)
            assert result.tokens == reference, (question.question_id, method)
            assert sum(r.emitted for r in result.rounds) == len(result.tokens)


@pytest.mark.slow
def test_sampled_cascade_runs_on_smollm2_with_consistent_counts(smol_target, smol_mid_draft, smol_tokenizer):
    from svip.eval.methods import MethodRunner
    from svip.eval.prompts import encode_prompt

    runner = MethodRunner(smol_target, smol_mid_draft, SamplingConfig(temperature=1.0), tokenizer=smol_tokenizer)
    prompt = encode_prompt(smol_tokenizer, "List three uses of a paperclip.")
    first = runner.run("cascade:h=0.3,handoff=1,k=6,mag=2", prompt, max_new_tokens=24, stop_tokens=set(), seed=3)
    again = runner.run("cascade:h=0.3,handoff=1,k=6,mag=2", prompt, max_new_tokens=24, stop_tokens=set(), seed=3)
    assert first.tokens == again.tokens and len(first.tokens) == 24  # seeded: reproducible
    assert sum(r.emitted for r in first.rounds) == 24
    assert all(r.accepted <= r.drafted and r.emitted <= r.accepted + 1 for r in first.rounds)
