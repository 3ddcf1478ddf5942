"""Greedy losslessness on real weights: SmolLM2-135M (fp32) over Spec-Bench, all six categories.

(a) SmolLM2 drafting for itself: acceptance ~1, so long rounds, cache
    cropping after full acceptance and the bonus token are exercised;
(b) SmolLM2's first 4 layers as draft: acceptance ~0, so the rejection and
    correction path runs nearly every round.
"""

from __future__ import annotations

import pytest

from svip.adapters.vanilla import SpeculativeEngine
from svip.eval.datasets import load_questions, per_category
from svip.eval.lossless import check_greedy_lossless, format_report
from svip.eval.prompts import encode_prompt, stop_token_ids

pytestmark = pytest.mark.slow  # real weights

POLICIES = [
    "constant:k=5",
    "heuristic:k0=5",
    "confidence:p_min=0.4",
    "svip:h=0.3,gamma=0.15",
    "svip-adaptive",
    "hf+svip-adaptive",  # transformers' loop, budget-0 rounds included
    "oracle",
]


@pytest.fixture(scope="module")
def spec_bench_prompts(smol_tokenizer):
    questions = per_category(load_questions("spec-bench"), 4)
    assert {q.group for q in questions} == {"mt-bench", "translation", "summarization", "qa", "math_reasoning", "rag"}
    return [(f"{q.group}/{q.question_id}", encode_prompt(smol_tokenizer, q.turns[0])) for q in questions]


@pytest.mark.parametrize(
    "draft_fixture, acceptance_range", [("smol_self_draft", (0.95, 1.0)), ("smol_shallow_draft", (0.0, 0.35))]
)
def test_every_policy_is_lossless(
    request, smol_target, smol_tokenizer, spec_bench_prompts, draft_fixture, acceptance_range
):
    draft = request.getfixturevalue(draft_fixture)
    engine = SpeculativeEngine(smol_target, draft)
    rows = check_greedy_lossless(
        engine,
        spec_bench_prompts,
        POLICIES,
        max_new_tokens=24,
        stop_tokens=stop_token_ids(smol_tokenizer, smol_target),
        progress=False,
    )
    print(
        f"\n{draft_fixture}, {len(spec_bench_prompts)} Spec-Bench prompts, 24 new tokens, fp32\n{format_report(rows)}"
    )
    assert len(spec_bench_prompts) >= 20
    for row in rows:
        assert row.identical == row.prompts, f"{row.policy}: outputs differ on {row.mismatches}"
    low, high = acceptance_range
    constant = next(r for r in rows if r.policy.startswith("constant"))
    assert low <= constant.acceptance_rate <= high  # the draft really is the regime the case claims
