"""CaPE on real weights: SmolLM2-135M (fp32) target, its first 12 layers as draft, 6 Spec-Bench prompts.

(24 prompts, the first 4 per category, passed too -- 4 min on 2 cores; CI runs the shortest of each.)

Greedy output must be target-only's token for token with trees in every round,
and the alternatives must really be accepted now and then (more tokens per
target forward than the same chain alone).
"""

from __future__ import annotations

import pytest

from svip.adapters.vanilla import SamplingConfig
from svip.eval.prompts import encode_prompt, stop_token_ids

from helpers import spec_bench_ci_questions

pytestmark = pytest.mark.slow  # real weights

METHODS = ["cape", "cape+svip:h=0.3,gamma=0.15"]


def test_cape_and_cape_svip_are_lossless_and_accept_alternatives(smol_target, smol_mid_draft, smol_tokenizer):
    from svip.eval.methods import MethodRunner

    runner = MethodRunner(smol_target, smol_mid_draft, SamplingConfig(), tokenizer=smol_tokenizer)
    stops = stop_token_ids(smol_tokenizer, smol_target)
    questions = spec_bench_ci_questions(1)
    tokens = {m: 0 for m in ["constant:k=4", *METHODS]}
    rounds = dict(tokens)
    for question in questions:
        prompt = encode_prompt(smol_tokenizer, question.turns[0])
        reference = runner.run("target-only", prompt, max_new_tokens=16, stop_tokens=stops, seed=0).tokens
        for method in tokens:
            result = runner.run(method, prompt, max_new_tokens=16, stop_tokens=stops, seed=0)
            assert result.tokens == reference, (question.question_id, method)
            tokens[method] += len(result.tokens)
            rounds[method] += len(result.rounds)
    tau = {m: tokens[m] / rounds[m] for m in tokens}
    print(f"\ntokens per target forward, {len(questions)} prompts: {tau}")
    assert tau["cape"] > tau["constant:k=4"]  # the same 4-token chain, plus CaPE's alternatives
