"""Method names the harness accepts, and the one place that runs each kind.

- ``target-only``                        -- the vanilla engine without a draft
- a policy spec (``svip:h=0.3``, ...)    -- the vanilla engine under that policy
- ``hf-`` + a policy spec                -- transformers' assisted generation:
  ``hf-constant:k=5``, ``hf-heuristic:k0=5`` and ``hf-confidence:p_min=0.4``
  use transformers' own schedules; any other (``hf-svip``) runs our policy
  through ``svip.adapters.hf.enable``.
- ``cascade:k=5,mag=5,sub=10,lenience=1`` -- CS Drafting in the vanilla engine (``svip.adapters.cascade``);
  ``cascade:...,handoff=1+svip:h=0.3,gamma=0.15`` -- any policy after ``+`` governs its draft level
  (``handoff=1``: Max-Gram takes the rest of the round after the policy's stop, ``0``: the round ends)
- ``eagle2[:...]`` / ``eagle2-svip[:...]``  -- the patched upstream EAGLE-2 (``svip.adapters.eagle``);
  in such a run ``target-only`` decodes on EAGLE's own base model.

Every kind returns the vanilla engine's ``GenerationResult``, so records,
tables and plots treat all methods alike.
"""

from __future__ import annotations

from typing import Collection, Sequence

from svip import make_policy
from svip.adapters.cascade import CascadeMethod, MaxGram, is_cascade_method
from svip.adapters.eagle import EagleMethod, is_eagle_method
from svip.adapters.vanilla import GenerationResult, SamplingConfig, SpeculativeEngine

from .metrics import HF_PREFIX, TARGET_ONLY, split_method

__all__ = ["HF_PREFIX", "TARGET_ONLY", "MethodRunner", "canonical_method"]

HF_NATIVE = frozenset({"constant", "heuristic", "confidence"})


def canonical_method(method: str) -> str:
    """One spelling per method (``hf-svip`` -> ``hf-svip:h=0.3,gamma=0.15,max=40``); raises on unknown ones."""
    if method == TARGET_ONLY:
        return method
    if is_eagle_method(method):
        return EagleMethod.parse(method).spec
    if is_cascade_method(method):
        return CascadeMethod.parse(method).spec
    hf, spec = split_method(method)
    return (HF_PREFIX if hf else "") + make_policy(spec).spec


class MethodRunner:
    """Runs any method on one prompt with shared models."""

    def __init__(self, target, draft, sampling: SamplingConfig, *, record_cross_entropy: bool = False, tokenizer=None) -> None:
        """``tokenizer`` is needed by cascade methods only (Max-Gram's bigram table is counted with it)."""
        self.engine = SpeculativeEngine(target, draft, sampling=sampling, record_cross_entropy=record_cross_entropy)
        self._target, self._draft, self._sampling = target, draft, sampling
        self._assisted = None
        self._eagle = None
        self._tokenizer, self._maxgram = tokenizer, None

    @classmethod
    def around(cls, engine: SpeculativeEngine) -> "MethodRunner":
        """Vanilla-engine methods only, on an engine the caller already built."""
        runner = cls.__new__(cls)
        runner.engine, runner._target, runner._draft, runner._sampling = engine, None, None, engine.sampling
        runner._assisted = None
        runner._eagle = None
        runner._tokenizer, runner._maxgram = None, None
        return runner

    @classmethod
    def for_eagle(cls, generator) -> "MethodRunner":
        """``target-only`` and ``eagle2*`` methods, all on one ``EagleGenerator``."""
        runner = cls.__new__(cls)
        runner.engine, runner._target, runner._draft, runner._sampling = None, None, None, generator.sampling
        runner._assisted, runner._eagle = None, generator
        return runner

    def _cascade(self, method: str, prompt, *, max_new_tokens, stop_tokens, seed, reference) -> GenerationResult:
        from svip.adapters.cascade.bigram import cached_bigram_table
        from svip.adapters.cascade.proposer import CascadeProposer

        from .models import cache_root

        if self.engine is None or self.engine.draft is None:
            raise ValueError("cascade methods need a draft model")
        cascade = CascadeMethod.parse(method)
        if cascade.policy is not None and cascade.policy.startswith("oracle") and not self.engine.sampling.greedy:
            raise ValueError("the oracle policy is defined for greedy decoding only")
        if self._maxgram is None:
            if self._tokenizer is None:
                raise ValueError("cascade methods need the tokenizer (MethodRunner(..., tokenizer=...)) for Max-Gram's bigram table")
            self._maxgram = MaxGram(cached_bigram_table(self._tokenizer, self.engine.vocab_size, cache_root() / "bigram"))
        proposer = CascadeProposer(self.engine.draft.model, self.engine.sampling, self._maxgram, cascade, self.engine.vocab_size)
        policy = cascade.engine_policy(reference=list(reference or []))
        return self.engine.generate(prompt, policy=policy, max_new_tokens=max_new_tokens, stop_tokens=stop_tokens, seed=seed, proposer=proposer)

    def _assisted_generator(self):
        if self._assisted is None:
            from svip.adapters.hf import AssistedGenerator

            if self._draft is None:
                raise ValueError("hf-* methods need the target and draft models (MethodRunner(target, draft, ...))")
            self._assisted = AssistedGenerator(self._target, self._draft, self._sampling)
        return self._assisted

    def run(
        self,
        method: str,
        prompt: Sequence[int],
        *,
        max_new_tokens: int,
        stop_tokens: Collection[int],
        seed: int | None,
        reference: Sequence[int] | None = None,
    ) -> GenerationResult:
        """Decode ``prompt`` with ``method``; ``reference`` (target-only output) feeds the oracle."""
        if self._eagle is not None:
            if method != TARGET_ONLY and not is_eagle_method(method):
                raise ValueError(f"this runner drives EAGLE only; {method!r} needs the vanilla engine (a run without --eagle-head)")
            eagle = None if method == TARGET_ONLY else EagleMethod.parse(method)
            return self._eagle.generate(prompt, eagle, max_new_tokens=max_new_tokens, stop_tokens=stop_tokens, seed=seed)
        if is_eagle_method(method):
            raise ValueError(f"{method} runs on EAGLE's EaModel: give the run an EAGLE head (--eagle-head)")
        if is_cascade_method(method):
            return self._cascade(method, prompt, max_new_tokens=max_new_tokens, stop_tokens=stop_tokens, seed=seed, reference=reference)
        if method == TARGET_ONLY:
            return self.engine.generate(prompt, policy=None, max_new_tokens=max_new_tokens, stop_tokens=stop_tokens, seed=seed)
        hf, spec = split_method(method)
        policy = make_policy(spec, reference=list(reference or []))
        if hf:
            native = policy.name in HF_NATIVE
            return self._assisted_generator().generate(
                prompt, policy=policy, native=native, max_new_tokens=max_new_tokens, stop_tokens=stop_tokens, seed=seed
            )
        return self.engine.generate(prompt, policy=policy, max_new_tokens=max_new_tokens, stop_tokens=stop_tokens, seed=seed)
