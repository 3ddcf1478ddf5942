"""SVIP inside transformers' assisted generation (svip.adapters.hf), on real SmolLM2 weights (fp32).

- greedy output under every hf-* method equals plain ``target.generate()``;
- the round bookkeeping adds up (emitted tokens = output length);
- the SVIP rule stops exactly where the entropy crosses h^2/gamma, measured on
  the raw logits of the distribution transformers drafted from;
- ``disable`` leaves the draft exactly as it was; user kwargs pass through.
"""

from __future__ import annotations

import pytest
import torch

from svip import entropy, make_policy
from svip.adapters import hf
from svip.adapters.hf import AssistedGenerator
from svip.adapters.vanilla import SamplingConfig
from svip.eval.datasets import load_questions, per_category
from svip.eval.methods import MethodRunner
from svip.eval.prompts import encode_prompt, stop_token_ids
from svip.spec import PolicySpecError

pytestmark = pytest.mark.slow

NEW_TOKENS = 20
HF_METHODS = [
    "hf+constant:k=5",
    "hf+heuristic:k0=5",
    "hf+confidence:p_min=0.4",
    "hf+svip:h=0.3,gamma=0.15",
    "hf+svip-adaptive",
]


@pytest.fixture(scope="module")
def prompts(smol_tokenizer):
    """The shortest question of each Spec-Bench category, the four shortest of those (cheap prefills)."""
    encoded = [
        encode_prompt(smol_tokenizer, q.turns[0]) for q in per_category(load_questions("spec-bench"), 1, shortest=True)
    ]
    return sorted(encoded, key=len)[:4]


def _plain_generate(target, prompt, config, **kwargs):
    ids = torch.tensor([prompt])
    return target.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config, **kwargs)[
        0, len(prompt) :
    ].tolist()


def test_greedy_equals_plain_generate(smol_target, smol_mid_draft, smol_tokenizer, prompts):
    stops = stop_token_ids(smol_tokenizer, smol_target)
    runner = MethodRunner(smol_target, smol_mid_draft, SamplingConfig())
    config = AssistedGenerator(smol_target, smol_mid_draft).generation_config(NEW_TOKENS, stops)
    drafted = {m: 0 for m in HF_METHODS}
    for prompt in prompts:
        reference = _plain_generate(smol_target, prompt, config)
        for method in HF_METHODS:
            result = runner.run(method, prompt, max_new_tokens=NEW_TOKENS, stop_tokens=stops, seed=None)
            assert result.tokens == reference, method
            assert sum(r.emitted for r in result.rounds) == len(result.tokens), method
            assert all(0 <= r.accepted <= r.drafted for r in result.rounds), method
            drafted[method] += result.drafted
    assert all(drafted.values()), drafted  # every method really drafted
    assert drafted["hf+svip:h=0.3,gamma=0.15"] != drafted["hf+constant:k=5"]


def test_svip_stops_where_raw_entropy_crosses_threshold(smol_target, smol_mid_draft, smol_tokenizer, prompts):
    stops = stop_token_ids(smol_tokenizer, smol_target)
    policy = make_policy("svip:h=0.3,gamma=0.15")
    threshold = policy.h**2 / policy.gamma
    result = AssistedGenerator(smol_target, smol_mid_draft).generate(
        prompts[0], policy=policy, native=False, max_new_tokens=40, stop_tokens=stops
    )
    rounds = [r for r in result.rounds if r.drafted]
    assert rounds and all(len(r.entropies) == r.drafted for r in rounds)
    for r in rounds:
        assert all(h <= threshold for h in r.entropies[:-1]), r.entropies  # kept drafting: below threshold
    # rounds not cut by the token budget, the length limit or EOS end on an entropy above the threshold
    assert sum(r.entropies[-1] > threshold for r in rounds) >= len(rounds) - 2


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_entropy_is_measured_on_the_drafting_distribution(
    smol_target, smol_mid_draft, smol_tokenizer, prompts, temperature
):
    """The adapter's entropies line up, token by token, with the distributions the draft sampled from.

    At T=1 the draft samples from softmax(raw logits): the same numbers. At T<1 transformers samples the
    draft from temperature-scaled scores; transformers 5.23.0 applies the temperature twice on the assistant
    side (the target's processors are forwarded *and* the assistant config's own temperature is applied), so
    q = softmax(raw / T^2). It uses that same q in the acceptance test, so sampling stays lossless; the
    adapter keeps the paper's definition, the entropy of the raw logits.
    """
    captured = []
    class_generate = type(smol_mid_draft).generate

    def recording_generate(*args, **kwargs):
        output = class_generate(smol_mid_draft, *args, **kwargs)
        if getattr(kwargs.get("generation_config"), "is_assistant", False):
            captured.extend(s[0] for s in output.scores)
        return output

    smol_mid_draft.generate = recording_generate  # enable() wraps this; disable() removes both
    hooks = []
    try:
        generator = AssistedGenerator(smol_target, smol_mid_draft, SamplingConfig(temperature=temperature))
        original_configure = generator._configure
        generator._configure = lambda policy, native: hooks.append(original_configure(policy, native)) or hooks[-1]
        stops = stop_token_ids(smol_tokenizer, smol_target)
        generator.generate(
            prompts[1], policy=make_policy("svip"), native=False, max_new_tokens=24, stop_tokens=stops, seed=0
        )
    finally:
        smol_mid_draft.__dict__.pop("generate", None)
    measured = [h for r in hooks[0].rounds for h in r.entropies]
    assert len(measured) == len(captured) > 3
    if temperature == 1.0:
        assert measured == pytest.approx([float(entropy(s, kind="logits")) for s in captured], rel=1e-3, abs=1e-3)
        return
    scales = [temperature, temperature**2]  # raw = scores * T (as documented) or * T^2 (what 5.23.0 does)
    matching = [
        k
        for k in scales
        if measured == pytest.approx([float(entropy(s * k, kind="logits")) for s in captured], rel=1e-3, abs=1e-3)
    ]
    assert matching, "the measured entropies do not line up with the drafted distributions"
    assert measured != pytest.approx(
        [float(entropy(s, kind="logits")) for s in captured], rel=1e-3, abs=1e-3
    )  # raw, not scores


def test_disable_restores_the_draft_and_user_kwargs_pass_through(smol_target, smol_mid_draft, smol_tokenizer, prompts):
    draft = smol_mid_draft
    before = {
        k: getattr(draft.generation_config, k)
        for k in ("num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold")
    }
    head_hooks = len(draft.get_output_embeddings()._forward_hooks)
    stops = stop_token_ids(smol_tokenizer, smol_target)
    config = AssistedGenerator(smol_target, draft).generation_config(16, stops)
    user_kwargs = {"no_repeat_ngram_size": 2}  # a user's own processor must reach both loops
    plain = _plain_generate(smol_target, prompts[2], config, **user_kwargs)
    direct_draft = _plain_generate(draft, prompts[2], config)

    hook = hf.enable(draft, h=0.4)
    assert hook.policy.spec == "svip:h=0.4,gamma=0.15,max=40"
    assert draft.generation_config.num_assistant_tokens == 40
    assert _plain_generate(draft, prompts[2], config) == direct_draft  # not an assistant: untouched
    assisted = _plain_generate(smol_target, prompts[2], config, assistant_model=draft, **user_kwargs)
    assert assisted == plain
    assert hook.rounds and sum(r.drafted for r in hook.rounds) > 0
    hf.disable(draft)

    assert hf.hook_of(draft) is None and "generate" not in draft.__dict__
    assert {k: getattr(draft.generation_config, k) for k in before} == before
    assert len(draft.get_output_embeddings()._forward_hooks) == head_hooks
    hf.disable(draft)  # idempotent


def test_enable_rejects_bad_settings(smol_mid_draft):
    with pytest.raises(PolicySpecError):
        hf.enable(smol_mid_draft, h=-1.0)
    with pytest.raises(PolicySpecError):
        hf.enable(smol_mid_draft, "nonsense")
    with pytest.raises(ValueError, match="policy name"):
        hf.enable(smol_mid_draft, make_policy("svip"), h=0.3)
    assert hf.hook_of(smol_mid_draft) is None
