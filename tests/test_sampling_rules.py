"""Sampling stays the target's distribution under the published rivals' stop rules (tiny models: mechanics).

Why a test per rule: a rule that stops on what it sampled, or that leaves a
sampled token out of the round (AdaEDL's stop *before* a token), could bias
what verification emits if the drafter got its bookkeeping wrong. The exact
marginal of the third generated token under the target is computed exactly
(the models are bigram tables made of tiny Llamas), and the engine's samples under each rule must match
it within the Monte Carlo noise; the same check with a broken residual fails,
so the test can tell.
"""

from __future__ import annotations

import functools

import pytest
import torch

from svip import make_policy
from svip.adapters.vanilla import SamplingConfig, SpeculativeEngine
from svip.adapters.vanilla import scorer as scorer_module
from svip.adapters.vanilla.sampling import verify_sampled

from helpers import tiny_llama

VOCAB = 16
PROMPT = [1, 2, 3]
SAMPLES = 2000
RULES = ["adaedl", "adaedl:drop=0", "bandit:ks=3", "confidence:p_min=0.4,refit=1"]


def bigram(logits: torch.Tensor, seed: int):
    """A tiny Llama whose next-token logits depend on the last token only: row ``t`` of ``logits`` after token t.

    Its attention and MLP outputs are zeroed, so the last position's hidden state is the normed embedding of the
    last token, and the head maps those states onto the given table. Why: the exact distribution of any later
    token is then a matrix power, and the table can be made far from uniform (so a biased sampler shows).
    """
    model = tiny_llama(vocab_size=VOCAB, seed=seed)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        states = model.model.norm(model.model.embed_tokens.weight)  # (vocab, hidden), hidden > vocab
        model.lm_head.weight.copy_((torch.linalg.pinv(states) @ logits).T)
        assert torch.allclose(model(torch.tensor([PROMPT])).logits[0, -1], logits[PROMPT[-1]], atol=1e-3)
    return model


@pytest.fixture(scope="module")
def tables() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    target = 3.0 * torch.randn(VOCAB, VOCAB, generator=generator)
    draft = target + 6.0 * torch.randn(VOCAB, VOCAB, generator=generator)  # accepted at times, often wrong
    return target, draft


@pytest.fixture(scope="module")
def models(tables):
    target, draft = tables
    return bigram(target, seed=0), bigram(draft, seed=1)


@pytest.fixture(scope="module")
def third_token_marginal(tables) -> torch.Tensor:
    """P(third generated token) under the target alone: the last prompt token's row times the table, twice."""
    transition = torch.softmax(tables[0].double(), dim=-1)
    return transition[PROMPT[-1]] @ transition @ transition


def third_token_tv(engine: SpeculativeEngine, spec: str, exact: torch.Tensor) -> tuple[float, int]:
    counts = torch.zeros(VOCAB, dtype=torch.float64)
    drafted = 0
    policy = make_policy(spec)
    for seed in range(SAMPLES):
        result = engine.generate(PROMPT, policy=policy, max_new_tokens=3, seed=seed)
        counts[result.tokens[2]] += 1
        drafted += result.drafted
    return float((counts / SAMPLES - exact).abs().sum() / 2), drafted


def test_each_rule_samples_the_targets_distribution(models, third_token_marginal, monkeypatch):
    target, draft = models
    engine = SpeculativeEngine(target, draft, sampling=SamplingConfig(temperature=1.0))
    noise = float(0.5 * third_token_marginal.sqrt().sum() / SAMPLES**0.5)  # ~ E|empirical - exact| summed / 2
    for spec in RULES:
        tv, drafted = third_token_tv(engine, spec, third_token_marginal)
        assert drafted > SAMPLES, f"{spec}: drafted {drafted} tokens in {SAMPLES} generations"
        assert tv < 2 * noise, f"{spec}: TV {tv:.3f} to the target's marginal, noise scale {noise:.3f}"
    broken = functools.partial(verify_sampled, residual=lambda p, q: p)  # resample from p: a classic bug
    monkeypatch.setattr(scorer_module, "verify_sampled", broken)
    tv, _ = third_token_tv(engine, "adaedl", third_token_marginal)
    assert tv > 2 * noise, f"the broken sampler must be caught: TV {tv:.3f}, noise scale {noise:.3f}"
