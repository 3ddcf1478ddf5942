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

from svip.costs import RoundTiming
from svip.entropy import cross_entropy
from svip.interfaces import Proposal, Proposer
from svip.method import Decoded, GenerationRequest, InputError, SpeculativeMethod, clip
from svip.policies import DraftLengthPolicy
from svip.results import GenerationResult, RoundStats
from svip.sampling import SamplingConfig
from svip.spec import PolicyFactory

from .cached_model import CachedCausalLM, context_limit
from .proposer import DraftProposer
from .scorer import TargetScorer

__all__ = ["EngineMethod", "InputError", "SpeculativeEngine", "vocab_size"]


def vocab_size(model: PreTrainedModel) -> int:
    """Rows of the LM head: the size of the distribution the model emits."""
    return int(model.get_output_embeddings().weight.shape[0])


class SpeculativeEngine:
    """Target-only or speculative decoding with any ``DraftLengthPolicy`` and any ``Proposer``."""

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

    def generate(
        self,
        prompt: Sequence[int],
        *,
        policy: DraftLengthPolicy | None = None,
        max_new_tokens: int = 128,
        stop_tokens: Collection[int] = (),
        seed: int | None = None,
        proposer: Proposer | None = None,
    ) -> GenerationResult:
        """Decode ``prompt`` once with a policy object already built (``None``: target-only).

        ``proposer`` replaces the plain draft loop with another drafter on the
        same draft cache (``CascadeProposer``); ``policy`` still bounds rounds.
        The harness builds ``EngineMethod`` objects instead (one per method string).
        """
        if policy is None or self.draft is None:  # target-only, as the class promises
            method = EngineMethod(self, None, spec="target-only")
        else:
            method = EngineMethod(
                self, lambda _reference: policy, proposer=proposer, spec=getattr(proposer, "spec", policy.spec)
            )
        return method.generate(prompt, max_new_tokens=max_new_tokens, stop_tokens=stop_tokens, seed=seed)

    @torch.inference_mode()
    def decode(
        self, request: GenerationRequest, policy: DraftLengthPolicy | None, proposer: Proposer | None = None
    ) -> Decoded:
        """The rounds for a checked request: speculative with a draft model and a policy, else target-only."""
        generator = torch.Generator().manual_seed(request.seed) if request.seed is not None else None
        self.target.model.reset()
        self._diagnostic_seconds = 0.0
        if self.draft is None or policy is None:
            rounds, sequence = self._target_only(
                list(request.prompt), request.max_new_tokens, request.stop_tokens, generator
            )
        else:
            self.draft.model.reset()
            drafter = proposer or self.draft
            rounds, sequence = self._speculative(
                list(request.prompt), policy, request.max_new_tokens, request.stop_tokens, generator, drafter
            )
        return Decoded(sequence[len(request.prompt) :], rounds, excluded_seconds=self._diagnostic_seconds)

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

    def _speculative(self, prompt, policy, max_new_tokens, stop_tokens, generator, drafter: Proposer):
        sequence, rounds = list(prompt), []
        policy.start_sequence()
        while (generated := len(sequence) - len(prompt)) < max_new_tokens:
            remaining = max_new_tokens - generated
            budget = min(policy.round_budget(), remaining)
            if budget <= 0:  # the policy judged that drafting does not pay: one target-only step
                stats = self._target_step(sequence, policy, generator, prefill=generated == 0)
            else:
                stats = self._round(sequence, policy, budget, remaining, stop_tokens, generator, drafter, generated)
            rounds.append(stats)
            if sequence[-1] in stop_tokens:
                break
        return rounds, sequence

    def _target_step(self, sequence, policy, generator, *, prefill: bool) -> RoundStats:
        start = time.perf_counter()
        sequence.append(self.target.next_token(sequence, generator))
        seconds = time.perf_counter() - start
        policy.observe(0, 0)
        policy.observe_timing(RoundTiming(0, None, 1, None if prefill else seconds))
        return RoundStats(drafted=0, accepted=0, emitted=1, verify_time=seconds)

    def _round(self, sequence, policy, budget, remaining, stop_tokens, generator, drafter, generated) -> RoundStats:
        """Draft, verify, commit: one speculative round; ``sequence`` grows by the emitted tokens."""
        draft_behind = len(sequence) - self.draft.model.cached_length  # > 2: a prefill or a catch-up
        proposal = drafter.propose(
            sequence, generated=generated, budget=budget, policy=policy, stop_tokens=stop_tokens, generator=generator
        )
        target_prefill = self.target.model.cached_length == 0
        verification = self.target.verify(sequence, proposal, generator)
        accepted, token, verify_seconds, target_logits, path = verification
        chain_accepted = accepted if path is None else _leading_chain_nodes(path, len(proposal.tokens))
        policy.observe(len(proposal.tokens), chain_accepted)  # the policy drafted the chain; alternatives are CaPE's
        policy.observe_timing(
            RoundTiming(
                proposal.draft_forwards,
                _steady_draft_seconds(proposal, draft_behind),
                proposal.verified_tokens,
                None if target_prefill else verify_seconds,
            )
        )
        kept = proposal.tokens[:accepted] if path is None else [proposal.tree.tokens[i] for i in path]
        emitted = clip(kept + [token], stop_tokens, remaining)
        committed = len(sequence)
        sequence.extend(emitted)
        # Both caches keep only committed tokens; the newest one is fed next round. The draft's cache
        # holds its own chain: past a node off the chain (an alternative) it is stale.
        self.target.model.crop(len(sequence) - 1)
        self.draft.model.crop(min(len(sequence) - 1, committed + chain_accepted))
        stats = RoundStats(
            len(proposal.tokens), accepted, len(emitted), proposal.entropies, proposal.seconds, verify_seconds
        )
        stats.draft_forwards = proposal.draft_forwards
        if self.record_cross_entropy:
            stats.cross_entropies = self._cross_entropies(proposal.logits, target_logits)
        return stats

    def _cross_entropies(self, draft_logits: list[torch.Tensor], target_logits: torch.Tensor) -> list[float]:
        if not draft_logits:  # a drafter without a neural model (Max-Gram tokens only)
            return []
        start = time.perf_counter()
        values = cross_entropy(torch.stack(draft_logits), target_logits[: len(draft_logits)]).tolist()
        self._diagnostic_seconds += time.perf_counter() - start
        return values


def _steady_draft_seconds(proposal: Proposal, draft_behind: int) -> float | None:
    """Seconds of the proposal's draft steps alone, or ``None`` when a prefill or catch-up is mixed in."""
    if proposal.catch_up_seconds is not None:
        return proposal.seconds - proposal.catch_up_seconds
    return None if draft_behind > 2 else proposal.seconds


def _leading_chain_nodes(path: list[int], chain_length: int) -> int:
    """How many accepted nodes, from the root, are the drafted chain's own (nodes ``0..chain_length-1`` in order)."""
    count = 0
    while count < len(path) and path[count] == count and count < chain_length:
        count += 1
    return count


class EngineMethod(SpeculativeMethod):
    """A method on the vanilla engine: target-only (``policy=None``) or a policy, optionally with another proposer.

    ``policy`` builds a fresh policy per generation from the reference (the
    oracle needs it; every other policy ignores it), so state never leaks
    between prompts.
    """

    def __init__(
        self, engine: SpeculativeEngine, policy: PolicyFactory | None, *, proposer: Proposer | None = None, spec: str
    ) -> None:
        if policy is not None and engine.draft is None:
            raise InputError(f"{spec} needs a draft model")
        self.engine, self.policy, self.proposer, self.spec = engine, policy, proposer, spec
        self.vocab_size, self.context_length = engine.vocab_size, engine.max_length

    def _decode(self, request: GenerationRequest, reference: Sequence[int] | None) -> Decoded:
        policy = self.policy(reference) if self.policy is not None else None
        return self.engine.decode(request, policy, self.proposer)
