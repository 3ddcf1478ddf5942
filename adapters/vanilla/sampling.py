"""Token selection and the lossless verification rules.

Greedy: accept the longest draft prefix that equals the target's argmax.
Sampling: standard speculative rejection sampling (Leviathan et al. 2023,
Chen et al. 2023): accept draft token x ~ q with probability
min(1, p(x)/q(x)); on rejection draw from norm(max(0, p - q)); if every
draft token is accepted draw a bonus token from p. The output is then
distributed exactly as sampling from p, whatever q is, provided q is the
distribution the draft token was actually drawn from.
"""

from __future__ import annotations

import torch

from svip.sampling import SamplingConfig

__all__ = [
    "SamplingConfig",
    "acceptance_probability",
    "residual_distribution",
    "to_probs",
    "select_token",
    "verify_greedy",
    "verify_sampled",
]


def to_probs(logits: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """The sampling distribution (fp32) for a sampling config; rows along the last dim."""
    scaled = logits.float() / config.temperature
    probs = torch.softmax(scaled, dim=-1)
    if config.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs
        # Keep the smallest prefix whose mass reaches top_p (always the top token).
        sorted_probs = torch.where(before < config.top_p, sorted_probs, torch.zeros_like(sorted_probs))
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def select_token(
    logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator | None
) -> tuple[int, torch.Tensor | None]:
    """Pick one token from a ``(vocab,)`` logit row; also return the distribution sampled from."""
    if config.greedy:
        return int(logits.argmax()), None
    probs = to_probs(logits, config)
    return int(torch.multinomial(probs, 1, generator=generator)), probs


def acceptance_probability(p: torch.Tensor, q: torch.Tensor, token: int) -> float:
    """min(1, p(x)/q(x)) for a token drawn from q (so q(x) > 0)."""
    q_x = float(q[token])
    if q_x <= 0:
        raise ValueError(f"draft token {token} has zero probability under the draft distribution")
    return min(1.0, float(p[token]) / q_x)


def residual_distribution(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """norm(max(0, p - q)); falls back to p when p == q (rejection then has probability 0)."""
    residual = (p - q).clamp_min(0)
    total = residual.sum()
    return residual / total if total > 0 else p


def verify_greedy(target_logits: torch.Tensor, draft_tokens: list[int]) -> tuple[int, int]:
    """Return (accepted count, next token) for greedy decoding.

    ``target_logits`` has ``len(draft_tokens) + 1`` rows: row i predicts the
    token at draft position i; the last row gives the bonus token.
    """
    target_choice = target_logits.argmax(dim=-1).tolist()
    accepted = 0
    for drafted, chosen in zip(draft_tokens, target_choice):
        if drafted != chosen:
            break
        accepted += 1
    return accepted, int(target_choice[accepted])


def verify_sampled(
    target_logits: torch.Tensor,
    draft_tokens: list[int],
    draft_probs: list[torch.Tensor],
    config: SamplingConfig,
    generator: torch.Generator | None,
    residual=residual_distribution,
) -> tuple[int, int]:
    """Return (accepted count, next token) by speculative rejection sampling.

    ``residual`` is injectable only so tests can prove that a broken
    residual is detected; production code never passes it.
    """
    target_probs = to_probs(target_logits, config)
    for i, (token, q) in enumerate(zip(draft_tokens, draft_probs)):
        p = target_probs[i]
        u = float(torch.rand((), generator=generator))
        if u < acceptance_probability(p, q, token):
            continue
        fallback = residual(p, q)
        return i, int(torch.multinomial(fallback, 1, generator=generator))
    bonus = target_probs[len(draft_tokens)]
    return len(draft_tokens), int(torch.multinomial(bonus, 1, generator=generator))
