"""Run ``target.generate(assistant_model=draft)`` and report it like the vanilla engine.

The harness compares transformers' assisted generation with the vanilla
engine, so this returns the same ``GenerationResult``: tokens, wall time,
and the rounds ``PolicyCandidateGenerator`` recorded (drafted, transformers'
own ``num_matches``, emitted; drafting time, and verify time = the target
forward plus transformers' acceptance test), so the rest of wall time is
transformers' loop overhead, which explains gaps between the two loops.

Methods: transformers' own schedules (``constant`` = fixed
``num_assistant_tokens``, ``heuristic`` = its +2/-1 schedule, ``confidence``
= ``assistant_confidence_threshold``), or any svip policy through ``enable``.
"""

from __future__ import annotations

from typing import Collection, Sequence

import torch
from transformers import GenerationConfig, PreTrainedModel

from svip.method import BoundDecode, Decoded, GenerationRequest
from svip.policies import ConfidencePolicy, ConstantPolicy, DraftLengthPolicy, HeuristicPolicy
from svip.results import GenerationResult
from svip.sampling import SamplingConfig

from ..vanilla.cached_model import context_limit
from ..vanilla.engine import vocab_size
from .hook import SvipHook, disable, enable

__all__ = ["AssistedGenerator", "sklearn_refit_available"]


def sklearn_refit_available() -> bool:
    """transformers re-fits the confidence threshold online (ROC) only when scikit-learn imports."""
    from transformers.utils import is_sklearn_available

    return bool(is_sklearn_available())


class AssistedGenerator:
    """transformers' assisted generation under a draft-length policy, measured."""

    def __init__(
        self, target: PreTrainedModel, draft: PreTrainedModel, sampling: SamplingConfig = SamplingConfig()
    ) -> None:
        self.target = target.eval()
        self.draft = draft.eval()
        self.sampling = sampling
        self.vocab_size = vocab_size(target)
        limits = [limit for m in (target, draft) if (limit := context_limit(m))]
        self.context_length = min(limits) if limits else None

    def _configure(self, policy: DraftLengthPolicy, native: bool) -> SvipHook:
        """transformers' own schedule for constant/heuristic/confidence when ``native``; else our policy."""
        if not native:
            return enable(self.draft, policy)
        refit = isinstance(policy, ConfidencePolicy) and bool(policy.refit)
        if refit and not sklearn_refit_available():
            raise ValueError(
                "hf+confidence:refit=1 is transformers' ROC re-fit, which needs scikit-learn: pip install 'svip[bench]'"
            )
        hook = enable(self.draft, None, transformers_refit=refit)  # records rounds only
        config = self.draft.generation_config
        config.assistant_confidence_threshold = 0.0
        config.num_assistant_tokens_schedule = "constant"
        if isinstance(policy, ConstantPolicy):
            config.num_assistant_tokens = policy.k
        elif isinstance(policy, HeuristicPolicy):
            config.num_assistant_tokens = policy.k0  # set per call: transformers' "heuristic" would carry it over
            config.num_assistant_tokens_schedule = "heuristic"
        elif isinstance(policy, ConfidencePolicy):
            config.num_assistant_tokens = policy.max_draft
            config.assistant_confidence_threshold = policy.p_min
        else:
            disable(self.draft)
            raise ValueError(f"transformers has no native schedule for {policy.spec!r}; run it through enable()")
        return hook

    def generation_config(self, max_new_tokens: int, stop_tokens: Collection[int]) -> GenerationConfig:
        """Explicit settings, so a checkpoint's own defaults (top_k, repetition_penalty) never leak in."""
        greedy = self.sampling.greedy
        eos = sorted(int(t) for t in stop_tokens) or None
        return GenerationConfig(
            max_new_tokens=max_new_tokens,
            min_new_tokens=0,
            do_sample=not greedy,
            temperature=None if greedy else self.sampling.temperature,
            top_p=None if greedy else self.sampling.top_p,
            top_k=None if greedy else 0,
            repetition_penalty=1.0,
            eos_token_id=eos,
            pad_token_id=eos[0] if eos else 0,
        )

    def generate(
        self,
        prompt: Sequence[int],
        *,
        policy: DraftLengthPolicy,
        native: bool,
        max_new_tokens: int = 128,
        stop_tokens: Collection[int] = (),
        seed: int | None = None,
    ) -> GenerationResult:
        """One assisted ``generate`` call with a policy object; ``native`` picks transformers' schedule over our policy."""
        return BoundDecode(
            f"hf+{policy.spec}",
            lambda request: self.decode(request, policy, native=native),
            vocab_size=self.vocab_size,
            context_length=self.context_length,
        ).generate(prompt, max_new_tokens=max_new_tokens, stop_tokens=stop_tokens, seed=seed)

    @torch.inference_mode()
    def decode(self, request: GenerationRequest, policy: DraftLengthPolicy, *, native: bool) -> Decoded:
        """The rounds of one assisted ``generate`` call for a checked request."""
        prompt = list(request.prompt)
        input_ids = torch.tensor([prompt], dtype=torch.long, device=self.target.device)
        config = self.generation_config(request.max_new_tokens, request.stop_tokens)
        hook = self._configure(policy, native)
        try:
            if request.seed is not None:
                torch.manual_seed(request.seed)
            output = self.target.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                assistant_model=self.draft,
                generation_config=config,
            )
        finally:
            disable(self.draft)
        return Decoded(output[0, len(prompt) :].tolist(), list(hook.rounds))
