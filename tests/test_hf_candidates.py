"""The transformers adapter as a candidate generator: mechanics on tiny random models, and the pinned private hook.

Real-weight losslessness lives in ``test_hf_adapter.py`` (slow); here a random
2-layer target and a differently seeded draft check that transformers hands
``num_matches`` to our generator, that the rounds add up, that greedy output
equals plain ``generate()``, and that transformers still calls the one
private method we wrap.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from transformers import GenerationConfig
from transformers.generation.candidate_generator import AssistedCandidateGenerator
from transformers.generation.utils import GenerationMixin

from svip.adapters import hf
from svip.adapters.hf import AssistedGenerator, PolicyCandidateGenerator
from svip.sampling import SamplingConfig
from svip.spec import make_policy

from helpers import tiny_llama


@pytest.fixture(scope="module")
def pair():
    target = tiny_llama(seed=0)
    draft = tiny_llama(seed=0)
    with torch.no_grad():  # a draft close to the target (perturbed weights): acceptance between 0 and 1
        for p in draft.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return target, draft


def _plain(target, prompt, n, **kwargs):
    ids = torch.tensor([prompt])
    config = GenerationConfig(max_new_tokens=n, min_new_tokens=0, do_sample=False, pad_token_id=0)
    return target.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config, **kwargs)[
        0, len(prompt) :
    ].tolist()


def test_transformers_still_calls_the_private_hook_we_wrap():
    """Fails loudly on a transformers upgrade that renames or stops calling ``_get_candidate_generator``."""
    import transformers

    hf.install_dispatch()
    original = inspect.signature(hf.hook._ORIGINAL)
    assert list(original.parameters)[:6] == [
        "self",
        "generation_config",
        "input_ids",
        "inputs_tensor",
        "logits_processor",
        "model_kwargs",
    ]
    assert {"assistant_model", "target_tokenizer", "assistant_tokenizer"} <= set(original.parameters), (
        transformers.__version__
    )
    source = inspect.getsource(GenerationMixin._assisted_decoding)
    assert (
        "self._get_candidate_generator(" in source
        and "update_candidate_strategy(input_ids, new_logits, n_matches)" in source
    )
    assert set(inspect.signature(AssistedCandidateGenerator._prepare_generation_args).parameters) == {
        "self",
        "input_ids",
        "min_new_tokens",
        "max_new_tokens",
    }
    assert GenerationMixin._get_candidate_generator is hf.hook._get_candidate_generator


@pytest.mark.parametrize("policy", ["svip:h=0.3", "svip:h=100,max=6", "constant:k=3", "heuristic:k0=2"])
def test_policy_rounds_come_from_transformers_num_matches(pair, policy):
    target, draft = pair
    prompt = [3, 9, 27, 17, 51]
    reference = _plain(target, prompt, 30)
    generator = AssistedGenerator(target, draft, SamplingConfig())
    result = generator.generate(prompt, policy=make_policy(policy), native=False, max_new_tokens=30)
    assert result.tokens == reference  # greedy: lossless
    assert sum(r.emitted for r in result.rounds) == len(result.tokens) == 30
    assert all(0 <= r.accepted <= r.drafted and r.emitted <= r.accepted + 1 for r in result.rounds)
    assert all(r.draft_time >= 0 and r.verify_time > 0 for r in result.rounds)
    cap = make_policy(policy).round_budget() if policy.startswith("constant") else make_policy(policy).max_draft
    assert max(r.drafted for r in result.rounds) <= cap
    if policy == "svip:h=0.3":  # a random model's entropy is ~4 nats > h^2/gamma: one token per round
        assert all(r.drafted <= 1 for r in result.rounds) and all(len(r.entropies) == r.drafted for r in result.rounds)
    assert hf.hook_of(draft) is None  # the harness always disables


def test_native_schedule_keeps_transformers_in_charge(pair):
    target, draft = pair
    prompt = [5, 6, 7]
    result = AssistedGenerator(target, draft).generate(
        prompt, policy=make_policy("constant:k=4"), native=True, max_new_tokens=20
    )
    assert result.tokens == _plain(target, prompt, 20)
    drafted = [r.drafted for r in result.rounds]
    assert drafted[0] == 4 and max(drafted) == 4  # num_assistant_tokens = 4 (fewer only near the length limit)


def test_a_draft_without_a_hook_gets_transformers_own_generator(pair, monkeypatch):
    target, draft = pair
    hf.install_dispatch()
    built = []
    original = PolicyCandidateGenerator.__init__
    monkeypatch.setattr(
        PolicyCandidateGenerator, "__init__", lambda self, *a, **k: built.append(1) or original(self, *a, **k)
    )
    _plain(target, [1, 2, 3], 5, assistant_model=draft)
    assert not built
    hf.enable(draft, "constant:k=2")
    try:
        _plain(target, [1, 2, 3], 5, assistant_model=draft)
    finally:
        hf.disable(draft)
    assert built == [1]


@pytest.mark.parametrize("draft_cost", [0.2, 5.0], ids=["drafting", "fallback"])
def test_adaptive_policy_skips_drafting_inside_transformers_loop_losslessly(pair, draft_cost):
    """svip-adaptive's budget 0 becomes a round without candidates (a plain target step in transformers' loop)."""
    target, draft = pair
    policy = make_policy("svip-adaptive:probe=3")
    policy.seed_costs({"target_step_s": 1.0, "verify_over_step": {"2": 1.1, "4": 1.3}, "draft_over_step": draft_cost})
    generator = AssistedGenerator(target, draft, SamplingConfig())
    rounds, priced = [], 0
    for prompt in ([3, 9, 27, 17, 51], [5], [8, 1, 2, 60, 33, 7, 7, 12]):
        result = generator.generate(prompt, policy=policy, native=False, max_new_tokens=30)
        assert result.tokens == _plain(target, prompt, 30)
        assert sum(r.emitted for r in result.rounds) == 30
        rounds += result.rounds
        drafting = [r for r in result.rounds if r.drafted > 0]
        priced += max(0, len(drafting) - 1)  # all but the first, whose forward carries the prompt's prefill
    assert any(r.drafted > 0 for r in rounds)
    if draft_cost > 1:
        assert not policy.drafting_pays and any(r.drafted == 0 for r in rounds)
    # probes after target-only steps price a draft step too: the catch-up forward is timed apart
    assert policy.meter.draft_observations == min(priced, policy.meter.window)
    assert policy.meter.verify_points() and policy.first_evidence > 0


@pytest.mark.parametrize("refit", [0, 1])
def test_confidence_refit_is_transformers_own_code_in_its_loop(pair, monkeypatch, refit):
    """``hf+confidence:...,refit=1``: transformers' ROC re-fit runs (its own lists, its own sklearn call) and lands
    where ours lands on the same judged tokens; refit=0 keeps the threshold fixed. Greedy output unchanged."""
    pytest.importorskip("sklearn", reason="transformers' re-fit needs scikit-learn (pip install 'svip[bench]')")
    from svip.adapters.hf.candidates import PolicyCandidateGenerator
    from svip.roc import roc_threshold

    made = []
    original = PolicyCandidateGenerator.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(PolicyCandidateGenerator, "__init__", spy)
    target, draft = pair
    prompt = [5, 6, 7]
    policy = make_policy(f"confidence:p_min=0.4,refit={refit}")
    result = AssistedGenerator(target, draft).generate(prompt, policy=policy, native=True, max_new_tokens=40)
    assert result.tokens == _plain(target, prompt, 40)
    generator = made[-1]
    if not refit:
        assert not hasattr(generator, "probs") and generator.confidence_threshold == 0.4
        return
    assert len(generator.probs) == len(generator.matches) > 5 and {0, 1} <= set(generator.matches)
    expected = roc_threshold(generator.matches, generator.probs)
    assert generator.confidence_threshold == pytest.approx(expected) and expected != 0.4
