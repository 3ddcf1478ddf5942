"""The streamlined vanilla speculative-decoding loop (batch size 1).

A rebuild of the SVIP repository's ``vanilla-sd`` loop on the current
transformers cache API: a ``DraftProposer`` drafts under a draft-length
policy, a ``TargetScorer`` verifies in one forward pass, and both caches are
cropped back to the committed sequence after every round. Without a draft
model (or policy) the same engine decodes target-only, so every speedup is
measured against the same code path.
"""

from __future__ import annotations

import time
from typing import Collection, Sequence

import torch
from transformers import PreTrainedModel

from svip.entropy import cross_entropy
from svip.policies import DraftLengthPolicy

from .cached_model import CachedCausalLM, context_limit
from .proposer import DraftProposer
from .sampling import SamplingConfig
from .scorer import TargetScorer
from .stats import GenerationResult, RoundStats

__all__ = ["InputError", "SpeculativeEngine", "vocab_size"]


class InputError(ValueError):
    """A prompt or request the engine cannot serve (raised before any decoding)."""


def vocab_size(model: PreTrainedModel) -> int:
    """Rows of the LM head: the size of the distribution the model emits."""
    return int(model.get_output_embeddings().weight.shape[0])


class SpeculativeEngine:
    """Target-only or speculative decoding with any ``DraftLengthPolicy``."""

    def __init__(
        self,
        target: PreTrainedModel,
        draft: PreTrainedModel | None = None,
        *,
        sampling: SamplingConfig = SamplingConfig(),
        record_cross_entropy: bool = False,
    ) -> None:
        """``record_cross_entropy`` stores H(q, p) of every drafted token (the
        paper's Figure 3); its cost is timed and left out of ``wall_time``."""
        if draft is not None and vocab_size(draft) != vocab_size(target):
            raise InputError(
                f"draft and target vocabularies differ ({vocab_size(draft)} vs {vocab_size(target)} entries): "
                "speculative decoding needs both models to share one tokenizer"
            )
        self.sampling = sampling
        self.record_cross_entropy = record_cross_entropy
        self.vocab_size = vocab_size(target)
        self.target = TargetScorer(CachedCausalLM(target.eval()), sampling)
        self.draft = DraftProposer(CachedCausalLM(draft.eval()), sampling) if draft is not None else None
        limits = [limit for m in (target, draft) if m is not None and (limit := context_limit(m))]
        self.max_length = min(limits) if limits else None

    def _check_request(self, prompt: Sequence[int], max_new_tokens: int) -> None:
        if len(prompt) == 0:
            raise InputError("empty prompt: give at least one token")
        if max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if min(prompt) < 0 or max(prompt) >= self.vocab_size:
            raise InputError(f"prompt holds token ids outside the vocabulary [0, {self.vocab_size})")
        if self.max_length is not None and len(prompt) + max_new_tokens > self.max_length:
            raise InputError(
                f"prompt ({len(prompt)} tokens) + max_new_tokens ({max_new_tokens}) exceeds the "
                f"models' context of {self.max_length} tokens; shorten the prompt or lower max_new_tokens"
            )

    @torch.inference_mode()
    def generate(
        self,
        prompt: Sequence[int],
        *,
        policy: DraftLengthPolicy | None = None,
        max_new_tokens: int = 128,
        stop_tokens: Collection[int] = (),
        seed: int | None = None,
        proposer=None,
    ) -> GenerationResult:
        """Decode up to ``max_new_tokens`` after ``prompt`` (token ids), stopping at a stop token.

        Speculative when the engine has a draft model and a policy is given,
        target-only otherwise. ``seed`` makes sampling reproducible.
        ``proposer`` replaces the plain draft loop with another drafter on the
        same draft cache (``CascadeProposer``); ``policy`` still bounds rounds.
        """
        prompt = [int(t) for t in prompt]
        self._check_request(prompt, max_new_tokens)
        stop_tokens = frozenset(int(t) for t in stop_tokens)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.target.model.reset()
        self._diagnostic_seconds = 0.0
        start = time.perf_counter()
        if self.draft is None or policy is None:
            rounds, sequence = self._target_only(prompt, max_new_tokens, stop_tokens, generator)
            method = "target-only"
        else:
            self.draft.model.reset()
            rounds, sequence = self._speculative(prompt, policy, max_new_tokens, stop_tokens, generator, proposer or self.draft)
            method = getattr(proposer, "spec", policy.spec)
        tokens = sequence[len(prompt) :]
        stopped_by = "eos" if tokens and tokens[-1] in stop_tokens else "max_new_tokens"
        wall_time = time.perf_counter() - start - self._diagnostic_seconds
        return GenerationResult(len(prompt), tokens, rounds, wall_time, method, stopped_by)

    def _target_only(self, prompt, max_new_tokens, stop_tokens, generator):
        sequence, rounds = list(prompt), []
        for _ in range(max_new_tokens):
            step_start = time.perf_counter()
            token = self.target.next_token(sequence, generator)
            sequence.append(token)
            rounds.append(RoundStats(drafted=0, accepted=0, emitted=1, verify_time=time.perf_counter() - step_start))
            if token in stop_tokens:
                break
        return rounds, sequence

    def _speculative(self, prompt, policy, max_new_tokens, stop_tokens, generator, drafter):
        sequence, rounds = list(prompt), []
        policy.start_sequence()
        while (generated := len(sequence) - len(prompt)) < max_new_tokens:
            remaining = max_new_tokens - generated
            proposal = drafter.propose(
                sequence,
                generated=generated,
                budget=max(1, min(policy.round_budget(), remaining)),
                policy=policy,
                stop_tokens=stop_tokens,
                generator=generator,
            )
            accepted, token, verify_seconds, target_logits = self.target.verify(sequence, proposal, generator)
            policy.observe(len(proposal.tokens), accepted)
            emitted = _clip(proposal.tokens[:accepted] + [token], stop_tokens, remaining)
            sequence.extend(emitted)
            # Both caches keep only committed tokens; the newest one is fed next round.
            self.target.model.crop(len(sequence) - 1)
            self.draft.model.crop(len(sequence) - 1)
            stats = RoundStats(len(proposal.tokens), accepted, len(emitted), proposal.entropies, proposal.seconds, verify_seconds)
            stats.draft_forwards = proposal.draft_forwards
            if self.record_cross_entropy:
                stats.cross_entropies = self._cross_entropies(proposal.logits, target_logits)
            rounds.append(stats)
            if emitted[-1] in stop_tokens:
                break
        return rounds, sequence


    def _cross_entropies(self, draft_logits: list[torch.Tensor], target_logits: torch.Tensor) -> list[float]:
        if not draft_logits:  # a drafter without a neural model (Max-Gram tokens only)
            return []
        start = time.perf_counter()
        values = cross_entropy(torch.stack(draft_logits), target_logits[: len(draft_logits)]).tolist()
        self._diagnostic_seconds += time.perf_counter() - start
        return values


def _clip(tokens: list[int], stop_tokens: frozenset[int], limit: int) -> list[int]:
    """Cut after the first stop token and to at most ``limit`` tokens."""
    for i, token in enumerate(tokens[:limit]):
        if token in stop_tokens:
            return tokens[: i + 1]
    return tokens[:limit]
