"""Sampling losslessness end to end on SmolLM2 with a partly-agreeing draft.

The engine's first sampled token must follow the target's distribution p
exactly. We sample it many times through the full engine (draft, verify,
residual) and bound the total-variation distance to p; the same test with
the residual step broken must fail, so the bound is not vacuous.
"""

from __future__ import annotations

import functools

import pytest
import torch

from svip import make_policy
from svip.adapters.vanilla import SamplingConfig, SpeculativeEngine
from svip.adapters.vanilla import scorer as scorer_module
from svip.adapters.vanilla.sampling import residual_distribution, to_probs, verify_sampled
from svip.eval.loading import load_model
from svip.eval.prompts import encode_prompt

pytestmark = pytest.mark.slow  # real weights

SAMPLES = 1000  # noise scale 0.035 here, the broken sampler's exact TV 0.100 (2.9x): distinguishable, in CI's budget
PROMPT = "Write a haiku about rain."
BUCKETS = 8  # TV over p's top-8 tokens + "everything else": equal distributions stay equal, noise stays small


def bucketed(x: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    return torch.cat([x[top], (1 - x[top].sum()).reshape(1)])


@torch.inference_mode()
def first_token_tv(engine: SpeculativeEngine, prompt: list[int], p: torch.Tensor) -> float:
    """Sample the first token SAMPLES times through the engine's proposer and scorer.

    The prompt is prefilled once; after each sample both caches are cropped
    back to it, exactly as the engine does after a round (seeds 0..N-1: reproducible).
    """
    counts = torch.zeros_like(p)
    policy = make_policy("constant:k=1")
    for side in (engine.target.model, engine.draft.model):
        side.reset()
        side.forward(prompt[:-1], 1)
    for seed in range(SAMPLES):
        generator = torch.Generator().manual_seed(seed)
        proposal = engine.draft.propose(
            prompt, generated=0, budget=1, policy=policy, stop_tokens=(), generator=generator
        )
        accepted, token, *_ = engine.target.verify(prompt, proposal, generator)
        counts[proposal.tokens[0] if accepted else token] += 1
        engine.target.model.crop(len(prompt) - 1)
        engine.draft.model.crop(len(prompt) - 1)
    top = p.topk(BUCKETS).indices
    return float((bucketed(counts / SAMPLES, top) - bucketed(p, top)).abs().sum() / 2)


def broken_residual(p, q):
    return p


@pytest.fixture(scope="module")
def flat_draft():
    """The target with its LM head halved (untied): q is flatter than p, acceptance ~0.3.

    Truncated-layer drafts of SmolLM2 have acceptance ~0 at T=1, where a
    broken residual is invisible; this draft overlaps p partly, as real drafts do.
    """
    model = load_model("smollm2-135m")
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=False)
    head.weight.data = model.lm_head.weight.data.clone() * 0.5
    model.lm_head = head
    return model


@pytest.fixture(scope="module")
def setting(smol_target, flat_draft, smol_tokenizer):
    config = SamplingConfig(temperature=1.0, top_p=0.9)
    prompt = encode_prompt(smol_tokenizer, PROMPT)
    engine = SpeculativeEngine(smol_target, flat_draft, sampling=config)
    with torch.inference_mode():
        p = to_probs(smol_target(torch.tensor([prompt])).logits[0, -1].float(), config)
        q = to_probs(flat_draft(torch.tensor([prompt])).logits[0, -1].float(), config)
    return engine, prompt, p, q


def verification_output(p: torch.Tensor, q: torch.Tensor, residual) -> torch.Tensor:
    """Closed form of the token one verification step emits: q*a + (rejected mass) * residual."""
    accept = torch.where(q > 0, torch.minimum(torch.ones_like(p), p / q.clamp_min(1e-30)), torch.zeros_like(p))
    return q * accept + float((q * (1 - accept)).sum()) * residual(p, q)


def exact_broken_tv(p: torch.Tensor, q: torch.Tensor) -> float:
    """Bucketed TV to p of the output distribution when the residual is replaced by p."""
    output = verification_output(p, q, broken_residual)
    top = p.topk(BUCKETS).indices
    return float((bucketed(output, top) - bucketed(p, top)).abs().sum() / 2)


def test_real_distributions_exact(setting):
    _, _, p, q = setting
    assert torch.allclose(verification_output(p, q, residual_distribution), p, atol=1e-6)


def test_engine_samples_follow_the_target(setting, monkeypatch):
    engine, prompt, p, q = setting
    top = p.topk(BUCKETS).indices
    # Expected |empirical - true| summed over buckets: ~0.4 * sum sqrt(p_i) / sqrt(N).
    noise = float(0.4 * bucketed(p, top).sqrt().sum() / SAMPLES**0.5)
    broken_exact = exact_broken_tv(p, q)
    assert broken_exact > 2 * noise, "the broken sampler must be distinguishable from noise here"
    good = first_token_tv(engine, prompt, p)
    monkeypatch.setattr(scorer_module, "verify_sampled", functools.partial(verify_sampled, residual=broken_residual))
    bad = first_token_tv(engine, prompt, p)
    print(
        f"\nbucketed TV to p: real sampler {good:.3f}, broken sampler {bad:.3f} (exact {broken_exact:.3f}), noise scale {noise:.3f}"
    )
    assert good < 1.5 * noise
    assert bad > 1.5 * noise


def test_generate_samples_whole_sequences(setting):
    """The full loop with sampling: reproducible per seed, and different seeds differ."""
    engine, prompt, _, _ = setting
    policy = make_policy("svip:h=0.3,gamma=0.15")
    first = engine.generate(prompt, policy=policy, max_new_tokens=12, seed=1)
    assert engine.generate(prompt, policy=policy, max_new_tokens=12, seed=1).tokens == first.tokens
    outputs = {tuple(engine.generate(prompt, policy=policy, max_new_tokens=12, seed=s).tokens) for s in range(2, 6)}
    assert len(outputs) > 1
    assert first.drafted > 0 and 0 < first.accepted <= first.drafted
    adaptive = make_policy("svip-adaptive")
    once = engine.generate(prompt, policy=adaptive, max_new_tokens=12, seed=1)
    assert len(once.tokens) == 12 and once.drafted > 0
