"""``vllm:k=K`` and ``vllm+<policy>``: one method string -> one vLLM engine and the request's rule.

=====================================  ==============================================================
``target-only`` (in a vllm run)        vLLM with no ``speculative_config``
``vllm:k=3``                           vLLM's own fixed K (a stock ``draft_model`` engine, no plugin code runs)
``vllm+constant:k=3``                  the plugin's engine, the request drafting 3 (its loop ends there)
``vllm+svip[:h=..,gamma=..]``          the plugin's entropy stop, per request
``vllm+svip-adaptive`` (and the rest)  any core policy, one instance per request
``vllm:uniform=1+svip``                the same rules, one length per round for the whole batch
=====================================  ==============================================================

The plugin's engine serves every ``vllm+<policy>`` method of a run: the rule
travels with the request (``SamplingParams.extra_args``), capped by the
engine's K (``--vllm-max-draft``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from svip.grammar import MethodSpec, MethodSpecError
from svip.method import Decoded, GenerationRequest, InputError, SpeculativeMethod, clip
from svip.policies import refuse_dropping
from svip.results import RoundStats
from svip.sampling import SamplingConfig
from svip.spec import make_policy

from .engine import Answer, VllmEngine, VllmEngineError
from .rounds import RequestStats

__all__ = ["VLLM", "VllmMethod", "VllmSpec", "rounds_from_stats", "rounds_from_steps"]

VLLM = "vllm"
POLICY_KEY = "svip_policy"  # SamplingParams.extra_args key naming a request's rule (proposer.py reads it)


@dataclass(frozen=True)
class VllmSpec:
    """A parsed ``vllm`` method: vLLM's fixed K (``k``) or a core policy run by the plugin (``policy``)."""

    k: int | None = None
    policy: str | None = None
    uniform: bool = False  # the plugin's rounds: one length per batch (the loop's) instead of each request's own

    @classmethod
    def from_spec(cls, spec: MethodSpec) -> "VllmSpec":
        unknown = sorted(set(spec.params) - {"k", "uniform"})
        if unknown:
            raise MethodSpecError(
                f"vllm takes k=K (vLLM's fixed draft length) or uniform=1 (+policy), got {', '.join(unknown)}"
            )
        uniform = spec.params.get("uniform", "0")
        if uniform not in ("0", "1"):
            raise MethodSpecError(f"vllm: uniform must be 0 or 1, got {uniform!r}")
        k = spec.params.get("k")
        if k is not None:
            try:
                k = int(k)
            except ValueError:
                raise MethodSpecError(f"vllm: k must be an integer >= 1, got {k!r}") from None
            if k < 1:
                raise MethodSpecError(f"vllm: k must be an integer >= 1, got {k}")
        policy = None
        if spec.policy:
            built = make_policy(spec.policy)
            refuse_dropping(built, "vLLM's draft loop")
            policy = built.spec
        if (k is None) == (policy is None):
            raise MethodSpecError(
                "vllm needs one of :k=K (vLLM's fixed K) or +<policy> (the plugin's per-request rule); "
                "its target-only is the run's target-only"
            )
        if uniform == "1" and policy is None:
            raise MethodSpecError("vllm: uniform=1 applies to the plugin's rules (vllm:uniform=1+svip)")
        return cls(k, policy, uniform == "1")

    @property
    def text(self) -> str:
        if self.k is not None:
            return f"{VLLM}:k={self.k}"
        return f"{VLLM}{':uniform=1' if self.uniform else ''}+{self.policy}"


def rounds_from_stats(stats: RequestStats | None, new_tokens: int) -> list[RoundStats]:
    """The plugin's rounds of one request: its prefill's token, each verified round, the last one from the count.

    The first token comes from the prefill (a target-only step). A round
    whose verdict the proposer never saw (the request ended with it) emitted
    whatever tokens are left, at most its draft plus one.
    """
    rounds = [RoundStats(drafted=0, accepted=0, emitted=1)] if new_tokens else []
    if stats is not None:
        for drafted, accepted, entropies in zip(stats.drafted, stats.accepted, stats.entropies):
            rounds.append(RoundStats(drafted=drafted, accepted=accepted, emitted=accepted + 1, entropies=entropies))
        left = new_tokens - sum(r.emitted for r in rounds)
        if stats.unverified is not None and left > 0:
            drafted = stats.unverified
            entropies = stats.entropies[len(stats.drafted)] if len(stats.entropies) > len(stats.drafted) else []
            emitted = min(left, drafted + 1)
            rounds.append(RoundStats(drafted=drafted, accepted=emitted - 1, emitted=emitted, entropies=entropies))
    return _settle(rounds, new_tokens)


def rounds_from_steps(drafted: Sequence[int], accepted: Sequence[int], new_tokens: int) -> list[RoundStats]:
    """Rounds from vLLM's own per-step record (``per_request_spec_decode_metrics="detailed"``): a stock engine's."""
    rounds = [RoundStats(drafted=0, accepted=0, emitted=1)] if new_tokens else []
    rounds += [RoundStats(drafted=d, accepted=a, emitted=a + 1) for d, a in zip(drafted, accepted)]
    return _settle(rounds, new_tokens)


def _settle(rounds: list[RoundStats], new_tokens: int) -> list[RoundStats]:
    """Clip the last rounds to the tokens really returned (EOS, the limit); fill the rest with target-only steps."""
    emitted = sum(r.emitted for r in rounds)
    while rounds and emitted > new_tokens:
        excess = min(emitted - new_tokens, rounds[-1].emitted)
        rounds[-1].emitted -= excess
        emitted -= excess
        if rounds[-1].emitted == 0:
            rounds.pop()
    rounds += [RoundStats(drafted=0, accepted=0, emitted=1) for _ in range(new_tokens - emitted)]
    return rounds


class VllmMethod(SpeculativeMethod):
    """One method on its engine; ``batch`` decodes several requests together (the batch bench)."""

    def __init__(self, engine: VllmEngine, method: VllmSpec | None, sampling: SamplingConfig, context_length: int):
        self.engine, self.method, self.sampling = engine, method, sampling
        self.spec = method.text if method is not None else "target-only"
        self.context_length = context_length

    def params(self, request: GenerationRequest):
        from vllm import SamplingParams

        greedy = self.sampling.temperature <= 0
        extra = {POLICY_KEY: self.method.policy} if self.method is not None and self.method.policy else None
        return SamplingParams(
            max_tokens=request.max_new_tokens,
            temperature=0.0 if greedy else self.sampling.temperature,
            top_p=1.0 if greedy else self.sampling.top_p,
            seed=request.seed if request.seed is not None else 0,
            stop_token_ids=sorted(request.stop_tokens),
            ignore_eos=True,  # the harness's stop set is the one rule (stop_token_ids), as in every engine here
            detokenize=False,
            extra_args=extra,
        )

    def batch(self, requests: Sequence[GenerationRequest]) -> list[tuple[Decoded, float]]:
        """Decode ``requests`` submitted together: each one's tokens and rounds, and its latency (seconds)."""
        try:
            answers = self.engine.generate([r.prompt for r in requests], [self.params(r) for r in requests])
        except VllmEngineError as error:
            raise InputError(str(error)) from None
        decoded = []
        for request, answer in zip(requests, answers):
            tokens = clip(answer.tokens, request.stop_tokens, request.max_new_tokens)
            decoded.append((Decoded(tokens, self._rounds(answer, len(tokens))), answer.latency))
        return decoded

    def _decode(self, request: GenerationRequest, reference: Sequence[int] | None) -> Decoded:
        return self.batch([request])[0][0]

    def _rounds(self, answer: Answer, new_tokens: int) -> list[RoundStats]:
        if self.method is None:
            return [RoundStats(drafted=0, accepted=0, emitted=1) for _ in range(new_tokens)]
        if self.method.policy is not None:  # the plugin's record: entropies too
            return rounds_from_stats(self.engine.drafter.svip_rules.take(answer.request_id), new_tokens)
        return rounds_from_steps(answer.drafted or [], answer.accepted or [], new_tokens)
